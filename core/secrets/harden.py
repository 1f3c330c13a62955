"""Harden the harness process that holds the secret endpoint.

Non-dumpable (prctl PR_SET_DUMPABLE 0): another process of the same user can then read
neither this process's memory nor /proc/<pid>/environ, and no core dump holds the secret.
"""

from __future__ import annotations

import ctypes
import sys

PR_SET_DUMPABLE = 4
PR_GET_DUMPABLE = 3


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:  # the symbols already loaded (libc's among them): no `find_library` subprocesses
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


def harden_process() -> bool:
    """Make this process non-dumpable; True when the kernel took it."""
    libc = _libc()
    if libc is None:
        return False
    return libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == 0


def is_dumpable() -> bool | None:
    libc = _libc()
    return None if libc is None else bool(libc.prctl(PR_GET_DUMPABLE, 0, 0, 0, 0))
