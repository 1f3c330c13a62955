"""One run's sandbox: its configuration, its set-up while the preflight runs, the sandboxes
of the Case and the fake baseline, and what the report records of it.

`CTO_HARNESS_CASE_SANDBOX` is `on` (the default) or `off`, the one explicit opt-out: no
sandbox for the Case, its checks or the baseline, recorded in the report, failed by
`validate` (never evidence for a model) and shown on the dashboard. Where the sandbox is on
and cannot be set up, the run is blocked with a reason starting `sandbox:` — never a
silent run without it. `CTO_HARNESS_CASE_SANDBOX_RO` / `_RW` add folders a real agent needs
(`os.pathsep`-separated absolute paths). `CTO_HARNESS_CASE_SECCOMP=off` runs the sandbox
without its seccomp filter (core/sandbox/seccomp.py): recorded, failed by `validate`. The
old `CTO_HARNESS_CASE_NETWORK` is retired: the sandbox decides the network (only the
relay), so a run that still sets it is blocked saying so, rather than leaving two knobs
that half overlap.
"""

from __future__ import annotations

import asyncio
import copy
import os
import stat
import tempfile
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from core.evidence.models import CaseSandbox
from core.sandbox.bwrap import (
    HARNESS_DIR,
    NAMESPACES,
    NPROC,
    Bind,
    Sandboxes,
    SandboxUnavailable,
    Spec,
    base_python,
)
from core.sandbox.home import SANDBOX_HOME
from core.sandbox.limits import LimitsUnavailable, RunLimits, Settings, settings_from
from core.sandbox.paths import (
    SYSTEM_DIRS,
    PathProblem,
    is_within,
    masks,
    parse_paths,
    private_places,
    program_binds,
    system_covered,
)
from core.sandbox.seccomp import FILTERED
from core.sandbox.status import StatusPipe
from core.settings import Resolved

SANDBOX_VAR = "CTO_HARNESS_CASE_SANDBOX"
RO_VAR = f"{SANDBOX_VAR}_RO"
RW_VAR = f"{SANDBOX_VAR}_RW"
SECCOMP_VAR = "CTO_HARNESS_CASE_SECCOMP"
RETIRED_NETWORK_VAR = "CTO_HARNESS_CASE_NETWORK"
WORKSPACE = "/workspace"
TASK_FILE = "/task/TASK.md"
NAIVE = "/task/naive"
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"
"""The Case's PATH when none of the host's folders is shown in its sandbox."""


@dataclass
class Launch:
    """A sandbox ready to start: its whole command, the fds it inherits, and the status
    pipe its first process reports its set-up on (core/sandbox/status.py)."""

    command: list[str]
    fds: tuple[int, ...]
    status: StatusPipe | None = None


class RunSandbox:
    def __init__(self, resolved: Resolved, runs_root: Path,
                 limits: Settings | None = None) -> None:
        self.limits = RunLimits(limits or settings_from({}))
        self.baseline_limits = RunLimits(self.limits.settings)
        self.problem: str | None = None
        self.ready = False
        self.detail = ""
        self.case_spec: Spec | None = None
        self.network: Literal["relay-only", "none"] = "relay-only"
        self._setup: asyncio.Future[str] | None = None
        choice = resolved.case_sandbox.lower()
        self.enabled = choice != "off"
        extra_ro: list[Path] = []
        extra_rw: list[Path] = []
        if resolved.case_network is not None:
            self.problem = (f"sandbox: {RETIRED_NETWORK_VAR} is retired: the Case always "
                            "runs in the sandbox, where only the relay answers; unset it "
                            f"({SANDBOX_VAR}=off is the one opt-out)")
        elif choice not in ("on", "off"):
            self.problem = (f"sandbox: {SANDBOX_VAR} must be 'on' (the default) or 'off', "
                            f"not {resolved.case_sandbox!r}")
        elif resolved.case_seccomp.lower() not in ("on", "off"):
            self.problem = (f"sandbox: {SECCOMP_VAR} must be 'on' (the default) or 'off', "
                            f"not {resolved.case_seccomp!r}")
        else:
            try:
                extra_ro = parse_paths(RO_VAR, resolved.case_sandbox_ro)
                extra_rw = parse_paths(RW_VAR, resolved.case_sandbox_rw)
            except PathProblem as exc:
                self.problem = f"sandbox: {exc}"
        self.sandboxes = Sandboxes(private=private_places(runs_root, os.environ),
                                   runs_root=runs_root, extra_ro=extra_ro, extra_rw=extra_rw,
                                   seccomp=resolved.case_seccomp.lower() != "off")
        if not self.enabled:
            self.detail = (f"{SANDBOX_VAR}=off: the Case, its checks and the fake baseline "
                           "ran unsandboxed on the host, with its network")

    def start(self) -> None:
        """Set up while the preflight runs (off the critical path)."""
        if self.enabled and self.problem is None:
            self._setup = asyncio.ensure_future(asyncio.to_thread(self.sandboxes.prepare))

    async def blocker(self) -> str | None:
        """Why the run cannot go on (a reason starting `sandbox:`), or None."""
        if self.problem is None and self._setup is not None:
            try:
                found = await self._setup
                self.sandboxes.lend_extra()
                self.ready = True
                self.detail = (f"bubblewrap {self.sandboxes.version}: own "
                               f"{', '.join(NAMESPACES)} namespaces; no capability; "
                               f"processes run as host uid {self.sandboxes.uid}; "
                               + ("seccomp filter" if self.sandboxes.seccomp else
                                  f"no seccomp filter ({SECCOMP_VAR}=off)")
                               + f" (probe: {found.split(' pids=')[0]})")
            except SandboxUnavailable as exc:
                self.problem = f"sandbox: {exc}"
        if self.problem is None and self.ready:
            try:
                self.limits.setup()
                self.baseline_limits.setup()
                self.sandboxes.tmp_size = self.limits.tmp_size
            except LimitsUnavailable as exc:
                self.problem = f"limits: {exc}"
        if self.problem is not None:
            self.detail = self.problem
        return self.problem

    # -- the sandboxes of a run --------------------------------------------------------
    def case(self, case_bin: str, path_env: str, workspace: Path, task_file: Path,
             home: Path, relay: tuple[Path, int] | None) -> tuple[str, Spec]:
        """(the program's absolute path, the Case's sandbox); PathProblem when a folder it
        needs cannot be shown."""
        program, needed = program_binds(case_bin, path_env)
        binds = [Bind(workspace, WORKSPACE, writable=True), Bind(task_file, TASK_FILE),
                 Bind(home, SANDBOX_HOME, writable=True)]
        for folder in dict.fromkeys(needed):
            try:
                self.sandboxes.check(folder, "the Case needs the folder")
            except SandboxUnavailable as exc:
                raise PathProblem(str(exc)) from None
            binds.append(Bind(folder, str(folder)))
        self._reachable(program, list(dict.fromkeys(needed)))
        self.network = "relay-only" if relay else "none"
        self.case_spec = Spec(binds=binds, cwd=WORKSPACE, relay=relay)
        return str(program), self.case_spec

    def path_inside(self, path_env: str, spec: Spec) -> str:
        """The Case's PATH in the sandbox: the host PATH's folders the sandbox shows (the
        system's and the ones bound for it), in their order; never the host PATH verbatim,
        which names the harness user's folders (~/.cargo/bin, ~/.pyenv/shims ...) that are
        not there anyway."""
        shown = [b.source for b in self.sandboxes.binds_for(spec) if b.dest == str(b.source)]
        hidden = masks([*map(Path, SYSTEM_DIRS), *shown], self.sandboxes.private)
        kept: list[str] = []
        for entry in path_env.split(os.pathsep):
            folder = Path(entry)
            if not entry or not folder.is_absolute() or entry in kept:
                continue
            if any(is_within(folder, m) for m in hidden):
                continue
            if system_covered(folder) or any(is_within(folder, s) for s in shown):
                kept.append(entry)
        return os.pathsep.join(kept) or DEFAULT_PATH

    def _reachable(self, program: Path, folders: list[Path]) -> None:
        """As root the sandbox runs as an unused uid, which file modes apply to: a Case
        kept in a private (0700) folder would fail to start inside ("Permission denied",
        blamed on the Case). Each folder shown for it must let that uid in, and the program
        be executable (and readable, a script) by it; PathProblem names what and the fix.
        (Above a shown folder the sandbox makes its own 0755 folders: only the folders
        themselves and what lies between them and the program matter.)"""
        if not self.sandboxes.as_root:
            return
        uid = self.sandboxes.uid
        for folder in folders:
            if not _lets_in(folder, uid, 0o1):
                raise PathProblem(
                    f"the Case needs {folder}, which the sandbox's uid cannot enter (its "
                    f"mode is {_mode(folder)}, and as root the sandbox runs as an unused "
                    f"uid): chmod o+x {folder} (o+rx to list it), or keep the Case in a "
                    "folder other accounts may read")
        real = program.resolve()
        top = next((f for f in sorted(folders, key=lambda f: len(f.parts))
                    if f in real.parents), None)
        if top is not None:
            for folder in [p for p in reversed(real.parents) if top in p.parents]:
                if not _lets_in(folder, uid, 0o1):
                    raise PathProblem(
                        f"the Case binary {program} is under {folder}, which the "
                        f"sandbox's uid cannot enter (mode {_mode(folder)}): chmod o+x "
                        f"{folder}, or keep the Case in a folder other accounts may read")
        if not _lets_in(real, uid, 0o5):
            raise PathProblem(
                f"the Case binary {program} cannot be read and run by the sandbox's uid "
                f"(mode {_mode(real)}; as root the sandbox runs as an unused uid): chmod "
                f"o+rx {real}")

    def probe_case(self, case_bin: str, path_env: str) -> tuple[str, list[str]]:
        """A throwaway sandbox laid out as the Case's (its folders, their masks), started
        and checked, bounded in time: (what it found, the masked files, whose paths the
        Case can read in /proc/self/mountinfo), or SandboxUnavailable / PathProblem naming
        what stops it. Call after prepare()."""
        with tempfile.TemporaryDirectory(prefix="cto-harness-probe-") as scratch:
            root = Path(scratch)
            (root / "workspace").mkdir()
            (root / "home").mkdir()
            (root / "TASK.md").write_text("probe\n")
            _, spec = self.case(case_bin, path_env, root / "workspace", root / "TASK.md",
                                root / "home", None)
            found = self.sandboxes.run_probe(spec)
            masked = [m for m in self.sandboxes.recorded(spec)[2] if not _real_dir(Path(m))]
            return found, masked

    def fake_engine(self, script: Path, workspace: Path, task_file: Path, naive: Path
                    ) -> tuple[list[str], Spec]:
        """The fake engine's argv and sandbox: no network, its workspace the only
        writable place; `script` (core/run/fake_engine.py) imports nothing but the standard
        library."""
        binds = [Bind(workspace, WORKSPACE, writable=True), Bind(task_file, TASK_FILE),
                 Bind(script, f"{HARNESS_DIR}/fake_engine.py")]
        at = NAIVE
        if naive.is_dir():
            # A task folder is untrusted input: its naive solution is bound like every
            # folder shown at its own path, with the private-place check and the masks
            # over what it holds (the `*_FILE` secret, ~/.ssh ...).
            naive = naive.resolve()
            try:
                self.sandboxes.check(naive, "the task's naive solution")
            except SandboxUnavailable as exc:
                raise PathProblem(str(exc)) from None
            at = str(naive)
            binds.append(Bind(naive, at))
        argv = [base_python(), "-I", f"{HARNESS_DIR}/fake_engine.py", "--task-file",
                TASK_FILE, "--workspace", WORKSPACE, "--naive", at]
        return argv, Spec(binds=binds, cwd=WORKSPACE)

    def command(self, spec: Spec, argv: list[str]) -> tuple[list[str], tuple[int, ...]]:
        """The sandbox's whole command, started inside the run's limits."""
        command, fds = self.sandboxes.command(spec, argv)
        return self.limits.wrap(command), fds

    def launch(self, spec: Spec, argv: list[str]) -> Launch:
        """The command with a status pipe: a sandbox that fails to set up is told from a
        command that ran and exited (the pipe's fds are the caller's to close)."""
        status = StatusPipe()
        command, fds = self.sandboxes.command(spec, argv, status.write_fd)
        return Launch(self.limits.wrap(command), fds, status)

    def for_baseline(self) -> RunSandbox:
        """The run's sandboxes under limits of their own, for the fake baseline: it runs
        beside the Case's checks, and a limit one of them reaches must end only its own
        processes (a hit ends every process of its cgroup) and be counted only against it."""
        twin = copy.copy(self)
        twin.limits = self.baseline_limits
        return twin

    @property
    def limit_folders(self) -> list[Path]:
        """Every cgroup folder of the run (the warden removes them should the harness die)."""
        return self.limits.folders + self.baseline_limits.folders

    @property
    def limits_hit(self) -> list[str]:
        return self.limits.hits + self.baseline_limits.hits

    def watch(self, who: str, *paths: Path) -> AbstractAsyncContextManager[None]:
        """Around one sandboxed process: its limits watched (`paths`: where its writes go,
        counted against the disk budget), what it reached recorded."""
        return self.limits.watch(who, list(paths))

    def close(self) -> None:
        self.limits.close()
        self.baseline_limits.close()
        self.sandboxes.close()

    def record(self) -> CaseSandbox:
        if not self.enabled:
            return CaseSandbox(mode="off", ready=self.problem is None, network="host",
                               limits_mode="off", limits_detail=f"{SANDBOX_VAR}=off: no "
                               "memory, process or disk limit either",
                               detail=self.problem or self.detail)
        box = self.sandboxes
        ro, rw, masked = box.recorded(self.case_spec) if self.case_spec else ([], [], [])
        return CaseSandbox(
            mode="bwrap", ready=self.ready, bwrap_version=box.version or None,
            namespaces=list(NAMESPACES) if self.ready else [],
            host_uid=box.uid if self.ready else None,
            ro_paths=ro, rw_paths=rw, masked=masked,
            extra_ro=[str(p) for p in box.extra_ro], extra_rw=[str(p) for p in box.extra_rw],
            network=self.network if self.ready else "none",
            limits={"nproc": NPROC, **self.limits.record()} if self.ready else {},
            limits_mode=self.limits.mode if self.ready else None,
            limits_detail=self.limits.detail, limits_hit=self.limits_hit,
            detail=self.detail,
            seccomp=("on" if box.seccomp else "off") if self.ready else None,
            seccomp_filtered=list(FILTERED) if self.ready and box.seccomp else [])


def _lets_in(path: Path, uid: int, bits: int) -> bool:
    """The permission `bits` (0o1 x, 0o4 r) hold for `uid`, which has no group of any
    account (the sandbox's: the owner's bits when it owns the entry, else the others')."""
    try:
        st = os.stat(path)
    except OSError:
        return False
    mode = (st.st_mode >> 6) & 0o7 if st.st_uid == uid else st.st_mode & 0o7
    return mode & bits == bits


def _mode(path: Path) -> str:
    try:
        st = os.stat(path)
    except OSError as exc:
        return f"unknown: {exc.strerror}"
    return f"{stat.S_IMODE(st.st_mode):04o}, owner uid {st.st_uid}"


def probe(resolved: Resolved, runs_root: Path, path_env: str) -> tuple[bool, str]:
    """`cto-harness readiness`'s sandbox check: (ready, detail). The run's own set-up
    (bwrap, the user namespace, seccomp, a throwaway sandbox), then a throwaway sandbox laid
    out as the Case's, each bounded in time; a failure is named as the run would be
    blocked with it."""
    box = RunSandbox(resolved, runs_root)
    if box.problem is not None:
        return False, box.problem
    if not box.enabled:
        return True, box.detail + " (the explicit opt-out: never evidence for a model)"
    masked: list[str] = []
    try:
        found = box.sandboxes.prepare()
        if resolved.case_bin:
            found, masked = box.probe_case(resolved.case_bin, path_env)
    except (SandboxUnavailable, PathProblem) as exc:
        return False, f"sandbox: {exc}"
    finally:
        box.sandboxes.close()
    said = found.split(" pids=")[0]
    named = ""
    if masked:
        # Not a blocker (its content stays hidden), but the layout is the user's to change.
        named = (f"; masked over, yet named to the Case by /proc/self/mountinfo: "
                 f"{', '.join(masked)} (keep *_FILE files outside the folders the sandbox "
                 "shows)")
    return True, (f"bubblewrap {box.sandboxes.version}: a throwaway sandbox"
                  + (" laid out as the Case's" if resolved.case_bin else "")
                  + f" started ({said}){named}")


def _real_dir(path: Path) -> bool:
    """A folder (a mask over it is an empty tmpfs; over a file, /dev/null)."""
    return path.is_dir() and not path.is_symlink()
