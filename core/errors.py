"""One root for every error the harness raises on purpose: `HarnessError`.

Why a tree: the command line catches the root once and turns it into one line and an exit
code instead of a traceback; a bad-input error (`BadInput`: the user can fix it by changing an
argument, a file or a variable) exits 2, any other `HarnessError` that reaches the top is the
harness's own failure and exits 4 like any unexpected exception. Each error class lives beside
the code that raises it and derives from one of these two; the ones that used to have no home
of their own (`UsageError`) live here, so that the domain never imports the command line.

Stdlib only, and nothing else in core: the bottom layer. The scripts that run inside the
sandbox under `python -I -S` (sandbox/init.py, run/warden.py, run/fake_engine.py) do not
import core at all and keep their own exceptions.
"""

from __future__ import annotations


class HarnessError(Exception):
    """An error the harness raises on purpose; its message is one line that names the thing."""


class BadInput(HarnessError):
    """Bad arguments, files or settings: the message says which and what to do (exit 2)."""


class UsageError(BadInput):
    """Bad arguments or input; the message says which and what to do."""
