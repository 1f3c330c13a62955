"""Ends the harness's process groups when the harness dies, however it dies.

`python -I -S core/run/warden.py` reads, on its stdin, a pipe whose only write end the harness
holds (see core/run/process.py). The harness writes `+PGID` when it starts a process group and
`-PGID` once it has ended it; `=PATH` when it makes a run's cgroup (core/sandbox/limits.py)
and `!PATH` once it has removed it. End of input means the harness is gone (exited, crashed
or SIGKILLed): every group still listed gets SIGTERM, a short grace, then SIGKILL; then
every cgroup still listed is emptied (SIGKILL to what is left in it) and removed.

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


CGROUPS = "/sys/fs/cgroup/"
CGROUP_NAME = "/cto-harness-"
"""Only folders like these are ever removed: a run's cgroups, nothing else."""
REMOVE_ROUNDS = 100


def watch(fd: int) -> tuple[set[int], set[str]]:
    """Follow the harness's messages until its end of the pipe closes; the groups and
    cgroups left."""
    groups: set[int] = set()
    folders: set[str] = set()
    pending = b""
    while chunk := os.read(fd, 4096):
        *lines, pending = (pending + chunk).split(b"\n")
        for line in lines:
            kind, value = line[:1], line[1:]
            if kind == b"+":
                groups.add(int(value))
            elif kind == b"-":
                groups.discard(int(value))
            elif kind == b"=":
                folders.add(value.decode())
            elif kind == b"!":
                folders.discard(value.decode())
    return groups, folders


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


def remove(folders: set[str]) -> None:
    """Empty each cgroup (SIGKILL to every member, round after round) and remove it."""
    for folder in folders:
        if not folder.startswith(CGROUPS) or CGROUP_NAME not in folder or ".." in folder:
            continue
        for _ in range(REMOVE_ROUNDS):
            try:
                os.rmdir(folder)
                break
            except FileNotFoundError:
                break
            except OSError:
                try:
                    with open(os.path.join(folder, "cgroup.procs")) as fh:
                        members = [int(p) for p in fh.read().split()]
                except (OSError, ValueError):
                    members = []
                for pid in members:
                    _kill(pid)
                time.sleep(POLL_S)


def _kill(pid: int) -> None:
    try:  # noqa: SIM105 - contextlib's import costs the warden's start
        os.kill(pid, SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


if __name__ == "__main__":
    left, cgroups = watch(sys.stdin.fileno())
    end(left)
    remove(cgroups)
