"""One run, start to verdict: preflight (Stage 1), the Case on the task with its checks and
the same-run fake baseline (Stage 2), the guard's verdict, the leak scan, the report.

Every stage leaves its trace event as it happens; whatever goes wrong, a report is written.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import secrets
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core import __version__
from core.evidence.models import (
    EXIT_CODES,
    BaselineOutcome,
    CaseNetwork,
    CaseSetup,
    CheckCounts,
    Comparison,
    Durations,
    Engine,
    Evidence,
    LeakFinding,
    Manifest,
    Readiness,
    RedactionCounters,
    RelayRecord,
    RelayTotals,
    Report,
    RunStatus,
    ScanSummary,
)
from core.evidence.rundir import (
    RunPaths,
    RunWriter,
    artifact_hashes,
    enclosing_repository,
    fresh_dir,
    new_run_id,
    reclaim,
    utcnow,
)
from core.evidence.runs import process_start_ticks
from core.relay.server import Relay
from core.run.admission import check_admission
from core.run.caseconf import (
    CaseConfigError,
    case_argv,
    case_env,
    recorded_env,
    seed_home,
    stdin_mode,
)
from core.run.checks import run_checks
from core.run.guard import Guard
from core.run.process import Outcome, run_group
from core.run.readiness import check_readiness
from core.run.task import Task, load_task
from core.sandbox.home import SANDBOX_HOME, prepare_home
from core.sandbox.paths import PathProblem
from core.sandbox.run import TASK_FILE, WORKSPACE, RunSandbox
from core.secrets.redact import Redactor
from core.secrets.runscan import max_bytes_from_env, scan_run, scan_seconds
from core.secrets.scan import scrub
from core.settings import API_KEY_VAR, ENDPOINT_VAR, ConfigError, Resolved

ENV_ALLOWLIST = ("PATH", "HOME", "LANG", "TMPDIR", "TERM")
FAKE = "fake"
FAKE_ENGINE = Path(__file__).with_name("fake_engine.py")
UDS_PATH_MAX = 107
"""A Unix socket path longer than this (sun_path less its NUL) cannot be bound."""

Listener = Callable[[dict[str, Any]], None]


@dataclass
class RunRequest:
    profile: str = "case-qwen"
    task: str = "r1-string-slugify"
    engine: Engine = "case"
    baseline: bool = True
    timeout: float = 1800.0
    retry_of: str | None = None
    demo: bool = False
    tasks_dir: str | None = None
    """Where `task` is looked up (--tasks); None: CTO_HARNESS_TASKS_DIR or the bundled."""
    job_id: str | None = None
    attempt: int | None = None


@dataclass
class _State:
    """What the run has learned so far; the report is built from it whatever happens."""

    stage: int = 1
    reasons: list[str] = field(default_factory=list)
    admission: str = "missing_file"
    case_started: bool = False
    case: Outcome | None = None
    checks: CheckCounts = field(default_factory=CheckCounts)
    baseline: BaselineOutcome = field(default_factory=lambda: BaselineOutcome(status="skipped"))
    leaks: list[LeakFinding] = field(default_factory=list)
    log_redactions: int = 0
    other_redactions: int = 0
    durations: Durations = field(default_factory=Durations)
    records: list[RelayRecord] = field(default_factory=list)
    scan: ScanSummary = field(default_factory=ScanSummary)
    unhashed: set[str] = field(default_factory=set)
    unhashed_folders: set[str] = field(default_factory=set)
    digests: dict[str, str] = field(default_factory=dict)
    network: CaseNetwork = "host"
    network_detail: str = "the Case did not start"
    case_setup: CaseSetup | None = None


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


def unavailable_text(reasons: list[str]) -> str:
    return (
        "This run was blocked before the Case process started.\n\n"
        "What is missing or wrong:\n"
        + "".join(f"  - {r}\n" for r in reasons)
        + "\nWays to supply the local endpoint (its value is never written anywhere):\n"
        f"  - export {ENDPOINT_VAR}=<http(s)://host:port/v1> in the shell that runs the harness\n"
        f"  - or put it on the first line of a file and export {ENDPOINT_VAR}_FILE=<that file>\n"
        "  - or type it into the dashboard (cto-harness-tui, key e): memory only\n"
        f"An API key, if the endpoint needs one: {API_KEY_VAR} or {API_KEY_VAR}_FILE.\n"
        "The Case binary: CTO_HARNESS_CASE_BIN. Admitted models: "
        "CTO_HARNESS_CASE_MODEL_ADMISSION_FILE.\n"
        "Check with: cto-harness readiness\n"
    )


class Runner:
    def __init__(self, request: RunRequest, resolved: Resolved, runs_root: Path,
                 listener: Listener | None = None) -> None:
        self.request = request
        self.task = load_task(request.task, request.tasks_dir)  # a bad task: usage error, no run
        self.resolved = resolved
        self.listener = listener
        self.cancel = asyncio.Event()
        self.token = secrets.token_urlsafe(24)
        self.scan_bytes = max_bytes_from_env()
        self.scan_seconds = scan_seconds(request.timeout)
        self.case_timeout = request.timeout - self.scan_seconds
        """--timeout bounds the Case and the leak scan together (README, "Secret safety")."""
        self.redactor = Redactor({"relay_token": self.token, **resolved.secrets()})
        run_id = new_run_id(self.task.id)
        root = runs_root / run_id
        n = 1
        while root.exists():
            n += 1
            root = runs_root / f"{run_id}.{n}"
        try:
            root.mkdir(parents=True)
        except OSError as exc:
            raise ConfigError(
                f"runs root {runs_root}: cannot create a run directory there ({exc.strerror}); "
                "choose another with --runs-root or CTO_HARNESS_RUNS_ROOT") from None
        self.paths = RunPaths(root)
        self.repository = enclosing_repository(runs_root)
        """A git work tree the runs root sits in (`./harness-runs` run from a target
        repository's folder): the runs are written into it, so every run says so."""
        if self.repository is not None:
            print(f"cto-harness: warning: the runs root {runs_root} is inside the git "
                  f"repository {self.repository}; this run is written there. Set "
                  "CTO_HARNESS_RUNS_ROOT (or --runs-root) to a folder outside it.",
                  file=sys.stderr)
        self.state = _State()
        self.writer = RunWriter(self.paths, self._redact_counted)
        self.started = time.monotonic()
        self.started_at = utcnow()
        self.guard = Guard(resolved.model, resolved.fallback_markers, on_trip=self._on_trip,
                           on_warning=self._on_warning)
        self.sandbox = RunSandbox(resolved, runs_root)

    def _redact_counted(self, text: str) -> str:
        """Every JSON file and trace line passes here; the report counts what it masked."""
        safe, count = self.redactor.redact_counted(text)
        self.state.other_redactions += count
        return safe

    # -- trace ----------------------------------------------------------------------
    def event(self, name: str, **fields: Any) -> None:
        record = self.writer.event(name, **fields)
        if self.listener is not None:
            self.listener(record)

    def _on_trip(self, evidence: Evidence) -> None:
        self.event("guard_tripped", evidence=evidence.model_dump(exclude_none=True))

    def _on_warning(self, evidence: Evidence) -> None:
        self.event("guard_warning", evidence=evidence.model_dump(exclude_none=True))

    def _on_record(self, record: RelayRecord) -> None:
        self.state.records.append(record)
        self.guard.on_relay(record, len(self.state.records))

    # -- the run --------------------------------------------------------------------
    async def run(self) -> Report:
        loop = asyncio.get_running_loop()
        handled = []
        # Ctrl-C, kill, or the terminal closing: end the Case's group and still report.
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, self.cancel.set)
                handled.append(sig)
        try:
            try:
                status = await self._run()
            except Exception as exc:  # the harness's own failure still gets a report
                self.state.reasons.append(f"harness error: {type(exc).__name__}: {exc}")
                status = "error"
            finally:
                self.sandbox.close()
            # Still under our handlers: a Ctrl-C now must not cut the leak scan's scrub or
            # the report short (the run is over; the report says how it ended).
            return self._finish(status)
        finally:
            for sig in handled:
                loop.remove_signal_handler(sig)

    async def _run(self) -> RunStatus:
        req, res, task = self.request, self.resolved, self.task
        self.sandbox.start()  # set up while the preflight runs: off the critical path
        self.writer.write_json(self.paths.manifest, Manifest(
            run_id=self.paths.run_id, task=task.id, engine=req.engine, profile=req.profile,
            provider=res.provider, model=res.model, harness_version=__version__,
            started_at=self.started_at, harness_pid=os.getpid(),
            harness_start_ticks=process_start_ticks(os.getpid()), retry_of=req.retry_of,
            demo=req.demo, argv=sys.argv,
            case_bin_name=Path(res.case_bin).name if res.case_bin and req.engine != FAKE
            else None,
            task_folder=None if task.bundled else str(task.folder), job_id=req.job_id,
            attempt=req.attempt,
        ))
        self.event("run_started", run_id=self.paths.run_id, task=task.id, engine=req.engine,
                   profile=req.profile, demo=req.demo, retry_of=req.retry_of)
        self.event("config_resolved", endpoint_configured=res.endpoint_usable,
                   endpoint_source=res.endpoint_source, case_bin=res.case_bin,
                   admission_file=str(res.admission_file) if res.admission_file else None,
                   provider=res.provider, model=res.model,
                   redaction_forms=len(self.redactor.forms),
                   unmaskable_forms=self.redactor.unmaskable,
                   runs_root_in_repository=str(self.repository) if self.repository else None)
        blockers = await self._preflight()
        self.state.durations.preflight_s = round(time.monotonic() - self.started, 3)
        if self.cancel.is_set():
            self.state.reasons.append("cancelled before the Case started")
            return "cancelled"
        if blockers:
            self.state.reasons.extend(blockers)
            self.writer.write_text(self.paths.unavailable, unavailable_text(blockers))
            self.event("run_blocked", reasons=blockers,
                       marker=str(self.paths.unavailable.relative_to(self.paths.root)))
            return "blocked"
        self.state.stage = 2
        return await self._stage2(task)

    async def _preflight(self) -> list[str]:
        res = self.resolved
        admission = check_admission(res.admission_file, res.provider, res.model)
        if self.request.engine == FAKE:
            self.event("readiness_checked", ready=True, skipped="fake engine calls no model")
            self.state.admission = admission.status
            self.event("admission_checked", status=admission.status, detail=admission.detail)
            sandbox = await self.sandbox.blocker()
            return [sandbox] if sandbox else []
        readiness: Readiness = await asyncio.to_thread(check_readiness, res,
                                                       redact=self.redactor.redact)
        self.writer.write_json(self.paths.readiness, readiness)
        self.event("readiness_checked", ready=readiness.ready,
                   checks={c.name: c.state for c in readiness.checks})
        self.state.admission = admission.status
        self.event("admission_checked", status=admission.status, detail=admission.detail)
        blockers = [f"{c.name}: {c.detail}" for c in readiness.checks
                    if c.state not in ("ok", "skipped")]
        if admission.status != "admitted" and not any(
            b.startswith("admission") for b in blockers
        ):
            blockers.append(f"admission: {admission.detail}")
        sandbox = await self.sandbox.blocker()
        return [*blockers, sandbox] if sandbox else blockers

    async def _stage2(self, task: Task) -> RunStatus:
        req, _res = self.request, self.resolved
        task_dir = self.paths.root / "task"
        task_dir.mkdir()
        task_file = task_dir / task.prompt_file.name
        task_file.write_bytes(task.prompt_file.read_bytes())
        task.fresh_workspace(self.paths.workspace)
        if req.engine == FAKE:
            self._network("fake engine: asks no model; " + (
                "no network in its sandbox" if self.sandbox.enabled else "the host network"))
            self.state.case = await self._fake_engine(task, task_file, self.paths.workspace,
                                                      self.paths.case_log)
            self.state.case_started = True
        else:
            outcome = await self._case(task_file)
            if outcome is None:
                return "blocked"
            self.state.case = outcome
        case = self.state.case
        self.state.durations.case_s = round(case.duration_s, 3)
        if case.start_error:
            self.state.reasons.append(f"the Case could not start: {case.start_error}")
            return "error"
        if self.cancel.is_set():
            self.state.reasons.append("cancelled while the Case ran")
            return "cancelled"
        if case.timed_out:
            self.state.reasons.append(
                f"the Case ran past its timeout ({self.case_timeout:g} s of the run's "
                f"--timeout {req.timeout:g} s; the rest is the leak scan's)")
        t0 = time.monotonic()
        self.state.checks = await run_checks(task, self.paths.workspace, self.paths.checks,
                                             self.redactor.redact, self.cancel, self._boxes())
        self.state.durations.checks_s = round(time.monotonic() - t0, 3)
        self.event("checks_completed", **self.state.checks.model_dump())
        if self.cancel.is_set():
            return "cancelled"
        if req.engine != FAKE and req.baseline:
            await self._baseline(task, task_file)
            if self.cancel.is_set():
                return "cancelled"
        return "timed_out" if case.timed_out else "failed"  # refined in _verdict

    async def _case(self, task_file: Path) -> Outcome | None:
        res, box = self.resolved, self.sandbox
        inside = box.enabled
        # Judged before the relay starts (its port is not known yet; the URL's shape is).
        if self._case_command(task_file, "http://127.0.0.1:0/v1") is None:
            return None
        home = prepare_home(self.paths.root)
        seed_home(res.case_home_template, home)
        sock_dir = self._socket_dir() if inside else None
        if inside and sock_dir is None:
            return None
        uds = sock_dir / "relay.sock" if sock_dir else None
        relay = Relay(upstream=res.endpoint, api_key=res.api_key, model=res.model,
                      token=self.token, ledger=self.paths.relay, redact=self.redactor.redact,
                      on_record=self._on_record, uds=uds)
        try:
            await relay.start()
            self.event("relay_started", url=relay.base_url)
            command = self._case_command(task_file, relay.base_url)
            assert command is not None, "judged above with the same settings"
            argv, extra_env, stdin = command
            task_at, workspace_at = self._case_paths(task_file)
            env = case_environment(relay.base_url, self.token, res, task_at, workspace_at,
                                   SANDBOX_HOME if inside else str(home), sandboxed=inside)
            env.update(extra_env)
            self.guard.check_env(env)
            self.guard.markers_warn = inside
            if not inside:
                self._network(box.detail)
                return await self._supervise(argv, env, self.paths.workspace,
                                             self.paths.case_log, self.case_timeout,
                                             scan=True, stdin=stdin)
            assert uds is not None
            uds.chmod(0o666)  # its folder is 0700: only the sandbox's uid gets this far
            try:
                program, spec = box.case(argv[0], env.get("PATH", ""), self.paths.workspace,
                                         task_file, home, (uds, relay.port))
            except PathProblem as exc:
                return self._block_late(f"sandbox: {exc}")
            argv[0] = program
            self._network("own network namespace: only the relay is reachable")
            box.sandboxes.hand_over(self.paths.workspace, home)
            try:
                return await self._supervise(argv, env, self.paths.workspace,
                                             self.paths.case_log, self.case_timeout,
                                             scan=True, launch=box.command(spec, argv),
                                             stdin=stdin)
            finally:
                box.sandboxes.take_back(self.paths.workspace, home)
        finally:
            await relay.stop()
            if sock_dir is not None:
                with contextlib.suppress(OSError):
                    (sock_dir / "relay.sock").unlink(missing_ok=True)
                    sock_dir.rmdir()

    def _case_command(self, task_file: Path, base_url: str
                      ) -> tuple[list[str], dict[str, str], Path | None] | None:
        """The Case's argv, extra environment and stdin from CTO_HARNESS_CASE_ARGS / _ENV /
        _STDIN; None (the run blocked, naming the variable) when they are unusable or would
        hand the Case a secret or a hosted provider."""
        res = self.resolved
        task_at, workspace_at = self._case_paths(task_file)
        values = {"task_file": task_at, "workspace": workspace_at,
                  "model": res.model, "provider": res.provider, "base_url": base_url}
        try:
            task_text = task_file.read_text(encoding="utf-8", errors="replace")
            argv = case_argv(res.case_bin or "", res.case_args, {**values, "task": task_text})
            extra_env = case_env(res.case_env, values, self.redactor.redact)
            stdin = stdin_mode(res.case_stdin)
        except CaseConfigError as exc:
            return self._block_late(str(exc))
        if any(self.redactor.redact(a) != a for a in argv):
            return self._block_late("CTO_HARNESS_CASE_ARGS would put a secret in argv")
        self.state.case_setup = CaseSetup(
            bin_name=Path(argv[0]).name, stdin=stdin,  # type: ignore[arg-type]
            env=recorded_env(extra_env),
            home_template=str(res.case_home_template) if res.case_home_template else None)
        return argv, extra_env, task_file if stdin == "task" else None

    def _case_paths(self, task_file: Path) -> tuple[str, str]:
        """The task file and the workspace as the Case sees them (the sandbox's fixed
        paths, or the host's without it)."""
        if self.sandbox.enabled:
            return TASK_FILE, WORKSPACE
        return str(task_file), str(self.paths.workspace)

    def _socket_dir(self) -> Path | None:
        """A private (0700) directory for the relay's Unix socket, outside the run directory
        (whose every file is hashed and scanned). TMPDIR or /tmp, never guessed further
        (`tempfile.gettempdir` would probe with a file and may fall back to the cwd)."""
        parent = os.environ.get("TMPDIR") or "/tmp"
        try:
            sock_dir = Path(tempfile.mkdtemp(prefix="cto-harness-relay-", dir=parent))
        except OSError as exc:
            self._block_late(f"sandbox: cannot make a socket directory in {parent} "
                             f"({exc.strerror}); set TMPDIR to a writable directory")
            return None
        if len(os.fsencode(sock_dir / "relay.sock")) > UDS_PATH_MAX:
            sock_dir.rmdir()
            self._block_late(f"sandbox: {parent} is too long a path for a Unix socket; set "
                             "TMPDIR to a shorter one")
            return None
        return sock_dir

    def _network(self, detail: str) -> None:
        self.state.network = "isolated" if self.sandbox.enabled else "host"
        self.state.network_detail = detail

    def _boxes(self) -> RunSandbox | None:
        return self.sandbox if self.sandbox.enabled else None

    def _block_late(self, reason: str) -> None:
        self.state.stage = 1
        self.state.reasons.append(reason)
        self.writer.write_text(self.paths.unavailable, unavailable_text([reason]))
        self.event("run_blocked", reasons=[reason])

    async def _supervise(self, argv: list[str], env: dict[str, str], cwd: Path, log: Path,
                         timeout: float, *, scan: bool,
                         launch: tuple[list[str], tuple[int, ...]] | None = None,
                         stdin: Path | None = None) -> Outcome:
        """Run a process with its output redacted (streaming) into `log`; in its sandbox
        when `launch` (the sandbox's whole command and the fds it inherits) is given."""
        stream = self.redactor.stream()
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("wb", buffering=0) as fh:
            def sink(chunk: bytes) -> None:
                safe = stream.feed(chunk)
                if safe:
                    fh.write(safe)
                    if scan:
                        self.guard.scan_output(safe)

            def started(pid: int) -> None:
                self.state.case_started = True
                self.event("case_process_started", pid=pid, argv=argv,
                           network="isolated" if launch else "host",
                           sandbox="bwrap" if launch else "off")

            command, fds = launch or (argv, ())
            outcome = await run_group(command, cwd=cwd, env=env, sink=sink, pass_fds=fds,
                                      timeout=timeout, cancel=self.cancel,
                                      on_start=started if scan else None, stdin=stdin)
            tail = stream.flush()
            fh.write(tail)
            if scan:
                self.guard.scan_output(tail)
        self.state.log_redactions += stream.redactions
        if scan:
            self.event("case_process_exited", exit_code=outcome.exit_code,
                       duration_s=round(outcome.duration_s, 3), timed_out=outcome.timed_out,
                       cancelled=outcome.cancelled, output_bytes=outcome.bytes_read,
                       start_error=outcome.start_error)
        return outcome

    async def _fake_engine(self, task: Task, task_file: Path, workspace: Path,
                           log: Path) -> Outcome:
        env = {k: v for k, v in os.environ.items() if k in ENV_ALLOWLIST}
        scan = self.request.engine == FAKE
        if not self.sandbox.enabled:
            argv = [sys.executable, "-m", "core.run.fake_engine", "--task-file", str(task_file),
                    "--workspace", str(workspace), "--naive", str(task.naive_dir)]
            env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
            return await self._supervise(argv, env, workspace, log, self.case_timeout,
                                         scan=scan)
        argv, spec = self.sandbox.fake_engine(FAKE_ENGINE, workspace, task_file,
                                                task.naive_dir)
        env.update(HOME="/tmp", TMPDIR="/tmp")
        self.sandbox.sandboxes.hand_over(workspace)
        try:
            return await self._supervise(argv, env, workspace, log, self.case_timeout,
                                         scan=scan, launch=self.sandbox.command(spec, argv))
        finally:
            self.sandbox.sandboxes.take_back(workspace)

    async def _baseline(self, task: Task, task_file: Path) -> None:
        base = self.paths.baseline
        self.event("baseline_started", engine=FAKE)
        t0 = time.monotonic()
        fresh_dir(base)  # the Case may have planted it (a link out of the run, say)
        task.fresh_workspace(base / "workspace")
        outcome = await self._fake_engine(task, task_file, base / "workspace", base / "case.log")
        checks = CheckCounts(detail="not run")
        if outcome.exit_code == 0:
            checks = await run_checks(task, base / "workspace", base / "checks",
                                      self.redactor.redact, self.cancel)
        passed = checks.ran and checks.total > 0 and checks.passed == checks.total
        status = ("timed_out" if outcome.timed_out else "error" if outcome.exit_code != 0
                  else "passed" if passed else "failed")
        self.state.baseline = BaselineOutcome(status=status, exit_code=outcome.exit_code,
                                              checks=checks)
        self.state.durations.baseline_s = round(time.monotonic() - t0, 3)
        self.event("baseline_completed", status=status, checks=checks.model_dump())

    # -- the verdict ----------------------------------------------------------------
    def _verdict(self, status: RunStatus) -> RunStatus:
        """From what happened to the status; `passed` only with every proof in place."""
        s, reasons = self.state, self.state.reasons
        if status in ("blocked", "error", "cancelled", "timed_out"):
            return status
        if s.leaks:
            reasons.append("leak_detected: a secret form was found in the run's files")
        real = s.checks.ran and s.checks.total > 0 and s.checks.passed == s.checks.total
        if self.request.engine == FAKE:
            reasons.append("fake engine: a baseline run, never evidence for a model")
            return "passed" if real and not s.leaks and s.scan.complete else "failed"
        guard = self.guard.state()
        if guard == "tripped":
            reasons.append("fallback detected: see fallback_evidence")
        elif guard == "unproven":
            reasons.append(f"unproven: {self.guard.unproven_reason()}")
        if s.case and s.case.exit_code != 0:
            reasons.append(f"the Case exited with code {s.case.exit_code}")
        if not real:
            reasons.append(f"checks: {s.checks.detail or 'not all passed'}")
        if s.baseline.status == "skipped":
            reasons.append("no same-run baseline (--no-baseline): a pass claim needs it")
        elif s.baseline.status == "passed":
            reasons.append("the fake baseline passes the checks too: they prove nothing")
        elif s.baseline.status in ("error", "timed_out"):
            reasons.append(f"the fake baseline did not complete ({s.baseline.status})")
        return "failed" if reasons else "passed"

    def _scan_for_leaks(self) -> None:
        """Every name, link target and regular file of the run, within the scan's budget,
        scrubbed where a form is found. Links are never followed: a link the Case planted
        (to /proc/self/environ, say) is retargeted as text, so nothing outside the run is
        read, let alone copied in. What the budget left unread is listed, never skipped."""
        started = time.monotonic()
        reclaim(self.paths.root, deadline=started + self.scan_seconds)
        scan = scan_run(self.paths.root, self.redactor, self.scan_seconds, self.scan_bytes,
                        started=started)
        self.state.scan = scan.summary
        self.state.unhashed = scan.unscanned
        self.state.unhashed_folders = scan.unscanned_folders
        self.state.digests = scan.digests
        self.state.leaks = [leak.finding for leak in scan.leaks]  # reported if a scrub fails
        if scan.leaks:
            self.state.digests = {}  # scrubbed and renamed: hashed again where they are now
            self.state.leaks = scrub(scan.leaks, self.redactor, self.paths.root)
        for finding in self.state.leaks:
            self.event("leak_detected", **finding.model_dump())

    def _finish(self, status: RunStatus) -> Report:
        s, req, res = self.state, self.request, self.resolved
        guard = self.guard.state() if req.engine != FAKE else "unproven"
        if s.stage == 2 or s.case_started:
            self.event("guard_verdict", state=guard, evidence=len(self.guard.evidence),
                       proven_requests=self.guard.proven_requests)
        t0 = time.monotonic()
        try:
            self._scan_for_leaks()
        except Exception as exc:
            s.reasons.append(f"leak scan failed: {type(exc).__name__}")
            s.scan = ScanSummary(complete=False)
            status = "error"
        if not s.scan.complete:
            s.reasons.append(
                f"unscanned: {s.scan.unscanned_count} entries of the run were not scanned for "
                "leaks (see scan.unscanned), so it cannot claim the endpoint was not written")
        status = self._verdict(status)
        real = s.checks.ran and s.checks.total > 0 and s.checks.passed == s.checks.total
        fake_passed = None if s.baseline.status == "skipped" else s.baseline.status == "passed"
        comparison = None
        if s.case_started:
            comparison = Comparison(
                real_passed=real, fake_passed=fake_passed,
                discriminating=real and fake_passed is False,
                detail="real passed, fake failed" if real and fake_passed is False
                else f"real {'passed' if real else 'failed'}, fake "
                     + {None: "not run", True: "passed", False: "failed"}[fake_passed],
            )
        artifacts = artifact_hashes(self.paths, known=s.digests, unhashed=s.unhashed,
                                    unhashed_folders=s.unhashed_folders)
        s.durations.scan_s = round(time.monotonic() - t0, 3)
        s.durations.total_s = round(time.monotonic() - self.started, 3)  # the wall time
        report = Report(
            run_id=self.paths.run_id, status=status, exit_code=EXIT_CODES[status],
            stage=s.stage, stage2_passed=status == "passed" and req.engine != FAKE,
            reasons=s.reasons, task=self.task.id, engine=req.engine, demo=req.demo,
            retry_of=req.retry_of, case_model_provider=res.provider, case_model=res.model,
            case_model_admission_status=s.admission,  # type: ignore[arg-type]
            endpoint_configured=res.endpoint_usable,
            case_process_started=s.case_started,
            case_exit_code=s.case.exit_code if s.case else None,
            case_network=s.network, case_network_detail=s.network_detail,
            case_sandbox=self.sandbox.record(),
            fallback_detected=self.guard.tripped, fallback_evidence=self.guard.evidence,
            fallback_warnings=self.guard.warnings, guard_state=guard,
            case_setup=s.case_setup,
            relay=RelayTotals.of(s.records),
            checks=s.checks, baseline=s.baseline, comparison=comparison,
            redaction=RedactionCounters(forms=len(self.redactor.forms),
                                        unmaskable_forms=self.redactor.unmaskable,
                                        log_redactions=s.log_redactions,
                                        other_redactions=s.other_redactions),
            leak_detected=bool(s.leaks), leaks=s.leaks, durations=s.durations,
            started_at=self.started_at, finished_at=utcnow(),
            scan=s.scan, artifacts=artifacts, trace_head=self.writer.head,
        )
        text = self.writer.write_json(self.paths.report, report)
        self.event("report_written", status=status,
                   report_sha256=hashlib.sha256(text.encode("utf-8")).hexdigest())
        self.event("run_finished", status=status, exit_code=report.exit_code)
        self.writer.close()
        return report


def run_sync(request: RunRequest, resolved: Resolved, runs_root: Path,
             listener: Listener | None = None) -> tuple[Report, Path]:
    async def main() -> tuple[Report, Path]:
        runner = Runner(request, resolved, runs_root, listener)
        return await runner.run(), runner.paths.root

    return asyncio.run(main())
