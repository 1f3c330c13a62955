"""Run a child (the Case, the fake engine, the checks) as a process group we fully control.

The child gets its own session so timeout and Ctrl-C end the whole tree (TERM, grace,
KILL), grandchildren included. Its stdout and stderr share one pipe, drained as it comes
(in the event loop) and passed through a sink (the streaming redactor and the
guard) before reaching disk. We own the pipe's read end and the child's pidfd, so a
grandchild that escapes the group and keeps the pipe open cannot hang us: once the child
has exited we read on only for a short grace, then close our end. Should the harness die
without ending a group (SIGKILL, a crash), the warden (core/run/warden.py) ends it.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

READ_SIZE = 1 << 20
PIPE_SIZE = 1 << 20
"""A 1 MiB pipe and 1 MiB reads: a Case that floods its output blocks less and each read
costs the redactor one pass instead of sixteen."""
F_SETPIPE_SZ = 1031
COALESCE_S = 0.002
"""After a short read, wait this long before the next: a Case writing many tiny lines is then
read in large chunks (far less work per byte) for at most 2 ms of added latency."""
KILL_GRACE_S = 3.0
DRAIN_GRACE_S = 1.0
WARDEN = Path(__file__).with_name("warden.py")
WARDEN_ENV = {"PATH": "/usr/bin:/bin"}
"""The warden's whole environment: none of the harness's, which may hold the secret."""


@dataclass
class Outcome:
    exit_code: int | None
    timed_out: bool = False
    cancelled: bool = False
    duration_s: float = 0.0
    bytes_read: int = 0
    start_error: str | None = None
    setup_error: str | None = None
    """Its sandbox could not be set up (a reason starting `sandbox:`): it never ran."""


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


class _Lifeline:
    """The write end of the warden's pipe, which this process alone holds: close-on-exec and
    never passed on (every child is spawned with close_fds), and closed in a child forked
    without exec. Its closing, when we die, is what tells the warden to end our groups."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.fd: int | None = None
        self.warden: subprocess.Popen[bytes] | None = None

    def _start(self) -> None:
        read_end, write_end = os.pipe()
        try:
            self.warden = subprocess.Popen(
                [sys.executable, "-I", "-S", str(WARDEN)], stdin=read_end,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd="/",
                start_new_session=True, env=WARDEN_ENV)
        except OSError:
            os.close(write_end)
            return
        finally:
            os.close(read_end)
        os.set_blocking(write_end, False)  # a stalled warden must never stall us
        self.fd = write_end

    def watch(self, pgid: int) -> None:
        """Have the warden end this group should we die first; it starts with the first."""
        with self.lock:
            if self.fd is None:
                self._start()
            self._tell(b"+%d\n" % pgid)

    def release(self, pgid: int) -> None:
        """The group is ended: its number may one day be another's."""
        with self.lock:
            self._tell(b"-%d\n" % pgid)

    def watch_folder(self, path: str) -> None:
        """Have the warden empty and remove this cgroup should we die first."""
        with self.lock:
            if self.fd is None:
                self._start()
            self._tell(b"=%s\n" % path.encode())

    def release_folder(self, path: str) -> None:
        with self.lock:
            self._tell(b"!%s\n" % path.encode())

    def _tell(self, message: bytes) -> None:
        if self.fd is not None:
            with contextlib.suppress(OSError):  # a warden gone or stalled: we carry on
                os.write(self.fd, message)

    def forget_in_child(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
        self.lock, self.fd, self.warden = threading.Lock(), None, None


_LIFELINE = _Lifeline()
os.register_at_fork(after_in_child=_LIFELINE.forget_in_child)


def warden_removes(path: Path) -> None:
    """The warden removes this cgroup (a run's, core/sandbox/limits.py) if we die first."""
    _LIFELINE.watch_folder(str(path))


def warden_forgets(path: Path) -> None:
    """It is removed: the warden need not."""
    _LIFELINE.release_folder(str(path))


class _Child:
    """A started child: its output fd and its exit, both watched by the event loop."""

    def __init__(self, proc: subprocess.Popen[bytes], sink: Callable[[bytes], None],
                 outcome: Outcome) -> None:
        self.proc = proc
        self.loop = asyncio.get_running_loop()
        self.sink = sink
        self.outcome = outcome
        self.eof = asyncio.Event()
        self.exited = asyncio.Event()
        assert proc.stdout is not None
        self.fd = proc.stdout.fileno()
        os.set_blocking(self.fd, False)
        with contextlib.suppress(OSError):  # Linux only; the default 64 KiB also works
            fcntl.fcntl(self.fd, F_SETPIPE_SZ, PIPE_SIZE)
        self.loop.add_reader(self.fd, self._readable)
        self.pidfd = os.pidfd_open(proc.pid)
        self.loop.add_reader(self.pidfd, self._reaped)

    def _readable(self) -> None:
        try:
            chunk = os.read(self.fd, READ_SIZE)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:
            self.close_output()
            return
        self.outcome.bytes_read += len(chunk)
        self.sink(chunk)
        if len(chunk) < READ_SIZE // 16:
            self.loop.remove_reader(self.fd)
            self.loop.call_later(COALESCE_S, self._resume)

    def _resume(self) -> None:
        if not self.eof.is_set():
            self.loop.add_reader(self.fd, self._readable)

    def _reaped(self) -> None:
        self.loop.remove_reader(self.pidfd)
        self.proc.wait()
        self.exited.set()

    def close_output(self) -> None:
        if not self.eof.is_set():
            self.loop.remove_reader(self.fd)
            self.proc.stdout.close()  # type: ignore[union-attr]
            self.eof.set()

    def close(self) -> None:
        self.close_output()
        if not self.exited.is_set():
            self.loop.remove_reader(self.pidfd)
        os.close(self.pidfd)

    async def end_group(self) -> None:
        """TERM the whole group, give it a grace, then KILL whatever is left."""
        _signal_group(self.proc.pid, signal.SIGTERM)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.exited.wait(), KILL_GRACE_S)
        _signal_group(self.proc.pid, signal.SIGKILL)
        await self.exited.wait()


async def run_group(
    argv: list[str],
    *,
    cwd: Path,
    env: dict[str, str],
    sink: Callable[[bytes], None],
    timeout: float | None,
    cancel: asyncio.Event,
    on_start: Callable[[int], None] | None = None,
    stdin: Path | None = None,
    pass_fds: tuple[int, ...] = (),
) -> Outcome:
    """Run `argv` to completion, timeout or cancel; every byte it prints goes to `sink`.
    Its stdin is /dev/null, or the file `stdin` (the task's prompt, for an agent that
    reads it there). A child ended by signal N exits 128+N, as a shell says it (and as the
    sandbox's first process reports a Case a signal ended), never Python's -N."""
    started = time.monotonic()
    try:
        with contextlib.ExitStack() as files:
            source = files.enter_context(stdin.open("rb")) if stdin else subprocess.DEVNULL
            proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=source,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    start_new_session=True, pass_fds=pass_fds)
    except OSError as exc:
        return Outcome(exit_code=None, start_error=f"{type(exc).__name__}: {exc.strerror}")
    _LIFELINE.watch(proc.pid)
    outcome = Outcome(exit_code=None)
    child = _Child(proc, sink, outcome)
    try:
        if on_start is not None:
            on_start(proc.pid)
        waiter = asyncio.create_task(child.exited.wait())
        cancelled = asyncio.create_task(cancel.wait())
        done, _ = await asyncio.wait({waiter, cancelled}, timeout=timeout,
                                     return_when=asyncio.FIRST_COMPLETED)
        cancelled.cancel()
        if waiter not in done:
            waiter.cancel()
            outcome.cancelled = cancelled in done
            outcome.timed_out = not outcome.cancelled
            await child.end_group()
        # The child is gone; a grandchild may still hold the pipe. Read on briefly, then
        # end what is left of the group and close our end.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(child.eof.wait(), DRAIN_GRACE_S)
        _signal_group(proc.pid, signal.SIGKILL)
    finally:
        if not child.exited.is_set():
            _signal_group(proc.pid, signal.SIGKILL)
            proc.wait()
        child.close()
        _LIFELINE.release(proc.pid)
    code = proc.returncode
    outcome.exit_code = 128 - code if code is not None and code < 0 else code
    outcome.duration_s = time.monotonic() - started
    return outcome
