"""Supervision: one process (the Case, or the fake engine) run as its own group, in its
sandbox when there is one, its output streamed through the redactor into its log (a secret
split across two reads is still caught) and, for the run's own engine, watched by the guard
as it comes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

from core.run.guard import Guard
from core.run.launch import ENV_ALLOWLIST, FAKE_ENGINE
from core.run.process import Outcome, run_group
from core.run.task import Task
from core.run.verdict import RunState
from core.sandbox.paths import PathProblem
from core.sandbox.run import Launch, RunSandbox
from core.secrets.redact import Redactor

Event = Callable[..., None]
"""The run's trace: `event(name, **fields)`."""

HEAD_BYTES = 2048
"""What is kept of a sandboxed process's first output until its sandbox says it is set up:
bwrap's own message when it could not lay a bind or a mask."""


class Supervisor:
    """Runs the run's processes; what it learns (the Case started, the log's redactions)
    goes to the run's state, what happens to its trace."""

    def __init__(self, redactor: Redactor, guard: Guard, cancel: asyncio.Event,
                 state: RunState, event: Event) -> None:
        self.redactor = redactor
        self.guard = guard
        self.cancel = cancel
        self.state = state
        self.event = event

    async def run(self, argv: list[str], env: dict[str, str], cwd: Path, log: Path,
                  timeout: float, *, scan: bool, launch: Launch | None = None,
                  stdin: Path | None = None,
                  watch: AbstractAsyncContextManager[None] | None = None) -> Outcome:
        """Run a process with its output redacted (streaming) into `log`; in its sandbox
        when `launch` is given. `scan`: the run's own engine — the guard reads its output
        and its start and exit are traced."""
        stream = self.redactor.stream()
        status = launch.status if launch else None
        head = bytearray()
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("wb", buffering=0) as fh:
            def sink(chunk: bytes) -> None:
                safe = stream.feed(chunk)
                if safe:
                    fh.write(safe)
                    if status is not None and not status.started and len(head) < HEAD_BYTES:
                        head.extend(safe[:HEAD_BYTES - len(head)])
                    if scan:
                        self.guard.scan_output(safe)

            def announce(pid: int) -> None:
                if not scan:
                    return
                self.state.case_started = True
                self.event("case_process_started", pid=pid, argv=argv,
                           network="isolated" if launch else "host",
                           sandbox="bwrap" if launch else "off")

            def started(pid: int) -> None:
                if status is None:
                    announce(pid)
                    return
                # In a sandbox the Case has started only once the sandbox says so (its
                # status pipe ends after `ready`): a setup failure is never the Case's.
                status.watch().add_done_callback(
                    lambda _: announce(pid) if status.started else None)

            command, fds = (launch.command, launch.fds) if launch else (argv, ())
            try:
                async with watch or contextlib.nullcontext():  # its limits (sandbox/limits)
                    outcome = await run_group(command, cwd=cwd, env=env, sink=sink,
                                              pass_fds=fds, timeout=timeout,
                                              cancel=self.cancel, on_start=started,
                                              stdin=stdin)
                if status is not None:
                    await status.close()  # its end, bounded: every holder is gone
                    outcome.setup_error = None if outcome.start_error else status.failure(
                        bytes(head).decode("utf-8", "replace"))
            finally:
                if status is not None:
                    await status.close()
            tail = stream.flush()
            fh.write(tail)
            if scan:
                self.guard.scan_output(tail)
        self.state.log_redactions += stream.redactions
        if scan and outcome.setup_error is None:
            self.event("case_process_exited", exit_code=outcome.exit_code,
                       duration_s=round(outcome.duration_s, 3), timed_out=outcome.timed_out,
                       cancelled=outcome.cancelled, output_bytes=outcome.bytes_read,
                       start_error=outcome.start_error)
        return outcome

    async def fake_engine(self, task: Task, task_file: Path, workspace: Path, log: Path,
                          sandbox: RunSandbox, timeout: float, *, scan: bool) -> Outcome:
        """The fake engine on `workspace`: in its own sandbox (no network, the workspace
        handed over for its run), or as a plain child without one."""
        env = {k: v for k, v in os.environ.items() if k in ENV_ALLOWLIST}
        if not sandbox.enabled:
            argv = [sys.executable, "-m", "core.run.fake_engine", "--task-file", str(task_file),
                    "--workspace", str(workspace), "--naive", str(task.naive_dir)]
            env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
            return await self.run(argv, env, workspace, log, timeout, scan=scan)
        try:
            argv, spec = sandbox.fake_engine(FAKE_ENGINE, workspace, task_file, task.naive_dir)
        except PathProblem as exc:
            return Outcome(exit_code=None, start_error=f"sandbox: {exc}")
        env.update(HOME="/tmp", TMPDIR="/tmp")
        sandbox.sandboxes.hand_over(workspace)
        try:
            return await self.run(argv, env, workspace, log, timeout, scan=scan,
                                  launch=sandbox.launch(spec, argv),
                                  watch=sandbox.watch("the fake engine", workspace))
        finally:
            sandbox.sandboxes.take_back(workspace)
