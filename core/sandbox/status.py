"""The status pipe: how the harness tells "the sandbox could not be set up" from "the
Case ran and exited".

The sandbox's first process (core/sandbox/init.py, `--status-fd`) writes `ready` just
before it execs the command, `failed: WHY` when a step or the exec fails, and its copy
is close-on-exec; bwrap closes every other copy. So the end of the pipe arrives at the
exec, or when the sandbox died; what was written before it says which:

- `ready` and nothing after: the command was started (the Case's exit is its own);
- `failed: WHY`: the sandbox's own set-up failed (uid, limits, seccomp, the exec);
- nothing: bwrap failed before our first process ran (a bind or mask it could not lay),
  and its own message is the first thing in the process's output.

Why a pipe and not the exit code: a Case may exit 125 or 127 on its own, and bwrap exits 1
for both its failures and a Case's `exit 1`. A setup failure is never the Case's fault:
the run is blocked (core/run/runner.py), `case_process_started` never traced.
"""

from __future__ import annotations

import asyncio
import contextlib
import os

READY = "ready"
FAILED = "failed: "
LIMIT = 4096
"""More than any message init writes: a pipe that says more is not init's."""
END_GRACE_S = 5.0
"""After the process group has ended, how long the pipe's end may take to arrive: every
holder is then dead or dying (bwrap's PID namespace ends with its first process)."""


class StatusPipe:
    """One sandboxed process's status pipe: the write end handed to the sandbox, the read
    end watched by the event loop until its end."""

    def __init__(self) -> None:
        self.read_fd, self.write_fd = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        os.set_blocking(self.write_fd, True)
        self.data = b""
        self.ended: asyncio.Future[None] | None = None

    def watch(self) -> asyncio.Future[None]:
        """From now on the loop reads the pipe; the future is done at its end. Call once
        the process has been started (the write end is then closed here)."""
        self.close_writer()
        loop = asyncio.get_running_loop()
        self.ended = loop.create_future()
        loop.add_reader(self.read_fd, self._readable)
        return self.ended

    def _readable(self) -> None:
        try:
            chunk = os.read(self.read_fd, LIMIT)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        self.data = (self.data + chunk)[:LIMIT]
        if not chunk and self.ended is not None and not self.ended.done():
            asyncio.get_running_loop().remove_reader(self.read_fd)
            self.ended.set_result(None)

    @property
    def lines(self) -> list[str]:
        return self.data.decode("utf-8", "replace").splitlines()

    @property
    def started(self) -> bool:
        """The command was exec'd: `ready`, nothing failed after it, and the pipe ended."""
        return (self.ended is not None and self.ended.done() and READY in self.lines
                and not any(line.startswith(FAILED) for line in self.lines))

    def failure(self, output_head: str) -> str | None:
        """Why the sandbox was not set up (a reason starting `sandbox:`), or None when the
        command started. `output_head`: the process's first output, already redacted
        (where bwrap says what it could not do)."""
        if self.started:
            return None
        said = next((line.removeprefix(FAILED) for line in self.lines
                     if line.startswith(FAILED)), None)
        if said is not None:
            return f"sandbox: the Case was not started: {said}"
        first = next((line.strip() for line in output_head.splitlines() if line.strip()),
                     "")
        if self.ended is None or not self.ended.done():
            return ("sandbox: the sandbox did not report its set-up "
                    + (f"({first[:300]})" if first else "before the process ended"))
        return ("sandbox: bubblewrap could not set up the sandbox"
                + (f": {first[:300]}" if first else " (it said nothing)"))

    def close_writer(self) -> None:
        if self.write_fd >= 0:
            os.close(self.write_fd)
            self.write_fd = -1

    async def close(self) -> None:
        """Wait (bounded) for the end, then close the read end."""
        if self.ended is not None and not self.ended.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self.ended), END_GRACE_S)
            if not self.ended.done():
                asyncio.get_running_loop().remove_reader(self.read_fd)
        self.close_writer()
        if self.read_fd >= 0:
            os.close(self.read_fd)
            self.read_fd = -1
