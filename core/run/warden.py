"""Ends the harness's process groups when the harness dies, however it dies.

`python -I -S core/run/warden.py` reads, on its stdin, a pipe whose only write end the harness
holds (see core/run/process.py). The harness writes `+PGID` when it starts a process group and
`-PGID` once it has ended it. End of input means the harness is gone (exited, crashed or
SIGKILLed): every group still listed gets SIGTERM, a short grace, then SIGKILL.

Why a pipe rather than PR_SET_PDEATHSIG: the kernel closes a dead process's descriptors
whatever killed it and whichever of its threads spawned the child, while a death signal
fires when the forking *thread* exits and reaches one process, not its group. Why one
warden per harness rather than a supervisor in front of each child: that would put an
interpreter's start-up on every Case, fake engine and check; the warden starts once, in
parallel, and a group costs the harness one small write. It runs in a session of its own,
so a signal to the harness's group (Ctrl-C at the terminal, a kill of the job's group)
does not take it down with the harness.

Stdlib only, imports nothing of the harness: it starts in a few ms.
"""

from __future__ import annotations

import os
import sys
import time
from signal import SIGKILL, SIGTERM

GRACE_S = 0.5
"""TERM first, so a Case may exit cleanly; all of it must still be gone within ~1 s."""
POLL_S = 0.02


def watch(fd: int) -> set[int]:
    """Follow the harness's messages until its end of the pipe closes; the groups left."""
    groups: set[int] = set()
    pending = b""
    while chunk := os.read(fd, 4096):
        *lines, pending = (pending + chunk).split(b"\n")
        for line in lines:
            if line[:1] == b"+":
                groups.add(int(line[1:]))
            else:
                groups.discard(int(line[1:]))
    return groups


def _signal(pgid: int, sig: int) -> bool:
    """Whether the group still has a member (a zombie not yet reaped counts)."""
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def end(groups: set[int]) -> None:
    """TERM every group, wait for them to go for at most the grace, then KILL the rest."""
    left = {g for g in groups if _signal(g, SIGTERM)}
    deadline = time.monotonic() + GRACE_S
    while left and time.monotonic() < deadline:
        time.sleep(POLL_S)
        left = {g for g in left if _signal(g, 0)}
    for pgid in left:
        _signal(pgid, SIGKILL)


if __name__ == "__main__":
    end(watch(sys.stdin.fileno()))
