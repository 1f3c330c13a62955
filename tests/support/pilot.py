"""What the dashboard's Pilot tests share: the terminal size, building the app over a runs
root, reading a Static as text, and `until`, the one way a test waits for the screen."""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from textual.pilot import Pilot
from textual.widgets import Static

from core.settings import resolve
from tui.app import Dashboard

SIZE = (150, 44)
# Generous, because it is only ever reached on a failure: `until` returns as soon as the
# condition holds, and a loaded CI machine (the whole suite, other suites beside it) can take
# many times longer than a quiet one to settle a screen. A caller whose wait is part of what
# it asserts passes its own.
UNTIL_TIMEOUT = 30.0


async def until(pilot: Pilot, ready: Callable[[], object],
                timeout: float = UNTIL_TIMEOUT) -> None:
    """Let the app run until `ready()` is true; fail naming what it waited for if it never is.
    Waits on the condition, never for a fixed time."""
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            code = getattr(ready, "__code__", None)
            what = code.co_names if code is not None else ready
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await pilot.pause(0.05)


def dashboard(root: Path, run: Path | None = None, **kwargs: object) -> Dashboard:
    """The dashboard over `root`, opened on `run` if given, configured from the environment."""
    return Dashboard(root, run_id=run.name if run else None, resolved=resolve(), **kwargs)


def text_of(widget: Static) -> str:
    """What a Static shows, as plain text."""
    console = Console(width=SIZE[0], file=io.StringIO(), record=True)
    console.print(widget.content)
    return console.export_text()
