"""Launching a run: what was asked (`RunRequest`), the run's folder and its writers made
ready before anything runs (`prepare`), and what the Case is started with — its command,
its environment (an allowlist), the paths it sees, the relay's socket folder.

Everything that touches the disk or the terminal before the run starts is here, so that
`Runner`'s constructor only assembles what `prepare` made.
"""

from __future__ import annotations

import os
import secrets
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from core.evidence.models import CaseSetup, Engine
from core.evidence.rundir import RunPaths, RunWriter, enclosing_repository, new_run_id
from core.run.caseconf import CaseConfigError, case_argv, case_env, recorded_env, stdin_mode
from core.run.task import Task, load_task
from core.run.verdict import RunState
from core.sandbox.limits import settings_from as limits_from
from core.sandbox.paths import PathProblem
from core.sandbox.run import TASK_FILE, WORKSPACE, RunSandbox
from core.secrets.redact import Redactor
from core.secrets.runscan import max_bytes_from_env
from core.settings import DEFAULT_PROFILE, DEFAULT_TASK, ConfigError, Resolved

ENV_ALLOWLIST = ("PATH", "HOME", "LANG", "TMPDIR", "TERM")
FAKE_ENGINE = Path(__file__).with_name("fake_engine.py")
UDS_PATH_MAX = 107
"""A Unix socket path longer than this (sun_path less its NUL) cannot be bound."""


@dataclass
class RunRequest:
    profile: str = DEFAULT_PROFILE
    task: str = DEFAULT_TASK
    engine: Engine = "case"
    baseline: bool = True
    timeout: float = 1800.0
    retry_of: str | None = None
    demo: bool = False
    tasks_dir: str | None = None
    """Where `task` is looked up (--tasks); None: CTO_HARNESS_TASKS_DIR or the bundled."""
    job_id: str | None = None
    attempt: int | None = None
    node: str | None = None
    """The cluster node this trial runs on (`job --cluster`), for the manifest."""


@dataclass
class Prepared:
    """A run made ready: its task loaded, its folder made, its writer open. The state is
    the one the writer's redaction counts into."""

    request: RunRequest
    resolved: Resolved
    task: Task
    token: str
    """The relay's bearer token for this run's Case (a secret: redacted everywhere)."""
    redactor: Redactor
    paths: RunPaths
    repository: Path | None
    """A git work tree the runs root sits in (`./harness-runs` run from a target
    repository's folder): the runs are written into it, so every run says so."""
    scan_bytes: int
    """The leak scan's byte budget (CTO_HARNESS_SCAN_MAX_BYTES)."""
    state: RunState
    writer: RunWriter
    sandbox: RunSandbox


def make_run_dir(runs_root: Path, task_id: str) -> Path:
    """A new folder for the run (`.N` on a collision); ConfigError naming the runs root
    when it cannot be made."""
    run_id = new_run_id(task_id)
    root = runs_root / run_id
    n = 1
    while root.exists():
        n += 1
        root = runs_root / f"{run_id}.{n}"
    try:
        # Private: a run holds what the Case left, and other local accounts are adversaries
        # (they must neither run what it left nor rewrite the evidence). A runs root made
        # now is private too.
        runs_root.mkdir(parents=True, exist_ok=True, mode=0o700)
        root.mkdir(mode=0o700)
        root.chmod(0o700)  # whatever the umask
    except OSError as exc:
        raise ConfigError(
            f"runs root {runs_root}: cannot create a run directory there ({exc.strerror}); "
            "choose another with --runs-root or CTO_HARNESS_RUNS_ROOT") from None
    return root


def prepare(request: RunRequest, resolved: Resolved, runs_root: Path) -> Prepared:
    """Load the task (a bad task: a usage error, no run), make the run's folder, warn when
    it is inside a git repository, open its writer and set up its sandbox's settings."""
    task = load_task(request.task, request.tasks_dir)
    token = secrets.token_urlsafe(24)
    scan_bytes = max_bytes_from_env()  # a bad value: a config error before any folder
    limits = limits_from(os.environ)  # the same: a size that is not one exits 2 here
    redactor = Redactor({"relay_token": token, **resolved.secrets()})
    paths = RunPaths(make_run_dir(runs_root, task.id))
    repository = enclosing_repository(runs_root)
    if repository is not None:
        print(f"cto-harness: warning: the runs root {runs_root} is inside the git "
              f"repository {repository}; this run is written there. Set "
              "CTO_HARNESS_RUNS_ROOT (or --runs-root) to a folder outside it.",
              file=sys.stderr)
    state = RunState()

    def redact_counted(text: str) -> str:
        """Every JSON file and trace line passes here; the report counts what it masked."""
        safe, count = redactor.redact_counted(text)
        state.other_redactions += count
        return safe

    writer = RunWriter(paths, redact_counted)
    return Prepared(request=request, resolved=resolved, task=task, token=token,
                    redactor=redactor, scan_bytes=scan_bytes, paths=paths,
                    repository=repository, state=state, writer=writer,
                    sandbox=RunSandbox(resolved, runs_root, limits))


def case_environment(relay_url: str, token: str, resolved: Resolved, task_file: str,
                     workspace: str, home: str, sandboxed: bool) -> dict[str, str]:
    """An allowlist: nothing of the harness's own environment but these reaches the Case;
    its HOME is the run's own (and in the sandbox its /tmp is too)."""
    env = {k: v for k, v in os.environ.items() if k in ENV_ALLOWLIST or k.startswith("LC_")}
    env.update({
        "HOME": home,
        "OPENAI_BASE_URL": relay_url,
        "OPENAI_API_KEY": token,
        "CTO_HARNESS_CASE_MODEL": resolved.model,
        "CTO_HARNESS_CASE_MODEL_PROVIDER": resolved.provider,
        "CTO_HARNESS_TASK_FILE": task_file,
        "CTO_HARNESS_WORKSPACE": workspace,
        "PYTHONUNBUFFERED": "1",
    })
    if sandboxed:
        env["TMPDIR"] = "/tmp"
    return env


def case_paths(task_file: Path, workspace: Path, sandboxed: bool) -> tuple[str, str]:
    """The task file and the workspace as the Case sees them (the sandbox's fixed paths,
    or the host's without it)."""
    if sandboxed:
        return TASK_FILE, WORKSPACE
    return str(task_file), str(workspace)


@dataclass(frozen=True)
class CaseCommand:
    """How the Case is started: argv, the environment it adds, its stdin (the task file,
    or None), and what the report records of it."""

    argv: list[str]
    extra_env: dict[str, str]
    stdin: Path | None
    setup: CaseSetup


def case_command(resolved: Resolved, redactor: Redactor, task_file: Path,
                 paths_seen: tuple[str, str], base_url: str) -> CaseCommand:
    """The Case's command from CTO_HARNESS_CASE_ARGS / _ENV / _STDIN. CaseConfigError (one
    line naming the variable: the run is blocked with it) when they are unusable or would
    hand the Case a secret or a hosted provider."""
    task_at, workspace_at = paths_seen
    values = {"task_file": task_at, "workspace": workspace_at,
              "model": resolved.model, "provider": resolved.provider, "base_url": base_url}
    task_text = task_file.read_text(encoding="utf-8", errors="replace")
    argv = case_argv(resolved.case_bin or "", resolved.case_args, {**values, "task": task_text})
    extra_env = case_env(resolved.case_env, values, redactor.redact)
    stdin = stdin_mode(resolved.case_stdin)
    if any(redactor.redact(a) != a for a in argv):
        raise CaseConfigError("CTO_HARNESS_CASE_ARGS would put a secret in argv")
    setup = CaseSetup(
        bin_name=Path(argv[0]).name, stdin=stdin,  # type: ignore[arg-type]
        env=recorded_env(extra_env),
        home_template=str(resolved.case_home_template) if resolved.case_home_template
        else None)
    return CaseCommand(argv=argv, extra_env=extra_env,
                       stdin=task_file if stdin == "task" else None, setup=setup)


def socket_dir() -> Path:
    """A private (0700) directory for the relay's Unix socket, outside the run directory
    (whose every file is hashed and scanned). TMPDIR or /tmp, never guessed further
    (`tempfile.gettempdir` would probe with a file and may fall back to the cwd).
    PathProblem (the run is blocked with it) when it cannot be made or is too long."""
    parent = os.environ.get("TMPDIR") or "/tmp"
    try:
        sock_dir = Path(tempfile.mkdtemp(prefix="cto-harness-relay-", dir=parent))
    except OSError as exc:
        raise PathProblem(f"cannot make a socket directory in {parent} ({exc.strerror}); "
                          "set TMPDIR to a writable directory") from None
    if len(os.fsencode(sock_dir / "relay.sock")) > UDS_PATH_MAX:
        sock_dir.rmdir()
        raise PathProblem(f"{parent} is too long a path for a Unix socket; set TMPDIR to a "
                          "shorter one")
    return sock_dir
