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
import os
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
from core.sandbox.paths import PathProblem, parse_paths, private_places, program_binds
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
        self.network = "relay-only" if relay else "none"
        self.case_spec = Spec(binds=binds, cwd=WORKSPACE, relay=relay)
        return str(program), self.case_spec

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

    def watch(self, who: str, *paths: Path) -> AbstractAsyncContextManager[None]:
        """Around one sandboxed process: its limits watched (`paths`: where its writes go,
        counted against the disk budget), what it reached recorded."""
        return self.limits.watch(who, list(paths))

    def close(self) -> None:
        self.limits.close()
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
            limits_detail=self.limits.detail, limits_hit=list(self.limits.hits),
            detail=self.detail,
            seccomp=("on" if box.seccomp else "off") if self.ready else None,
            seccomp_filtered=list(FILTERED) if self.ready and box.seccomp else [])
