"""Whether the process that writes a run or a job is still that process.

One helper for every reader and writer: the run's and the job's records name their harness by
pid and by its start time in clock ticks (a pid alone may have been reused by another
process since). Evidence layer: the readers (runs, jobs, the dashboard) and the writers (the
runner, the job runner) all sit above it.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Protocol


class HarnessOwned(Protocol):
    """A record that names the harness process writing it (a manifest, a job)."""

    @property
    def harness_pid(self) -> int: ...

    @property
    def harness_start_ticks(self) -> int | None: ...


def process_start_ticks(pid: int) -> int | None:
    """Field 22 of /proc/<pid>/stat: tells a live process from a reused pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def process_alive(pid: int, start_ticks: int | None) -> bool:
    """Process `pid` exists and, when its start time is known, is the one that started then.
    Another user's process (EPERM) counts as alive: it exists, we may just not signal it."""
    if pid <= 0:  # 0 and -N would ask about whole process groups
        return False
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):  # a pid no process can have
        return False
    except PermissionError:
        return True
    return start_ticks is None or process_start_ticks(pid) == start_ticks


def harness_alive(record: HarnessOwned) -> bool:
    """The harness that writes this run or job is still running."""
    return process_alive(record.harness_pid, record.harness_start_ticks)


def cancel_harness(record: HarnessOwned) -> bool:
    """SIGINT the harness of a run or a job started by another process, as Ctrl-C would
    (it ends its Cases and writes cancelled reports); False when that harness is already
    gone (or its pid is another process's now)."""
    if not harness_alive(record):
        return False
    try:
        os.kill(record.harness_pid, signal.SIGINT)
    except ProcessLookupError:
        return False
    return True
