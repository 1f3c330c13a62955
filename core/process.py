"""Run a child (the Case, the fake engine, the checks) as a process group we fully control.

The child gets its own session so timeout and Ctrl-C end the whole tree (TERM, grace,
KILL), grandchildren included. Its stdout and stderr share one pipe, drained as it comes
and passed through a sink (the streaming redactor and the guard) before reaching disk.
A grandchild that escapes the group and keeps the pipe open cannot hang us: once the
child has exited we read on only for a short grace.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

READ_SIZE = 1 << 16
KILL_GRACE_S = 3.0
DRAIN_GRACE_S = 1.0


@dataclass
class Outcome:
    exit_code: int | None
    timed_out: bool = False
    cancelled: bool = False
    duration_s: float = 0.0
    bytes_read: int = 0
    start_error: str | None = None


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


async def _end_group(proc: asyncio.subprocess.Process) -> None:
    """TERM the whole group, give it a grace, then KILL whatever is left."""
    _signal_group(proc.pid, signal.SIGTERM)
    try:
        await asyncio.wait_for(proc.wait(), KILL_GRACE_S)
    except TimeoutError:
        pass
    _signal_group(proc.pid, signal.SIGKILL)
    await proc.wait()


async def run_group(
    argv: list[str],
    *,
    cwd: Path,
    env: dict[str, str],
    sink: Callable[[bytes], None],
    timeout: float | None,
    cancel: asyncio.Event,
    on_start: Callable[[int], None] | None = None,
) -> Outcome:
    """Run `argv` to completion, timeout or cancel; every byte it prints goes to `sink`."""
    started = time.monotonic()
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            cwd=cwd,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
            limit=READ_SIZE,
        )
    except OSError as exc:
        return Outcome(exit_code=None, start_error=f"{type(exc).__name__}: {exc.strerror}")
    if on_start is not None:
        on_start(proc.pid)
    outcome = Outcome(exit_code=None)
    assert proc.stdout is not None
    stdout = proc.stdout

    async def drain() -> None:
        while chunk := await stdout.read(READ_SIZE):
            outcome.bytes_read += len(chunk)
            sink(chunk)

    reader = asyncio.create_task(drain())
    waiter = asyncio.create_task(proc.wait())
    cancelled = asyncio.create_task(cancel.wait())
    done, _ = await asyncio.wait(
        {waiter, cancelled}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
    )
    if waiter not in done:
        outcome.cancelled = cancelled in done
        outcome.timed_out = not outcome.cancelled
        await _end_group(proc)
    cancelled.cancel()
    # The child is gone; a grandchild may still hold the pipe. Read on briefly, then end
    # the group (the child's exit does not end it) and stop reading.
    try:
        await asyncio.wait_for(asyncio.shield(reader), DRAIN_GRACE_S)
    except TimeoutError:
        _signal_group(proc.pid, signal.SIGKILL)
        try:
            await asyncio.wait_for(asyncio.shield(reader), DRAIN_GRACE_S)
        except TimeoutError:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
    _signal_group(proc.pid, signal.SIGKILL)
    outcome.exit_code = proc.returncode
    outcome.duration_s = time.monotonic() - started
    return outcome
