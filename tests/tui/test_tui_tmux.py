"""The installed `cto-harness-tui` in a real terminal (tmux): keys in, screen read back.

On a tmux server of its own (`-L`): on the shared default server, another process's last
session ending takes the server down under this test's `new-session` or `capture-pane`
("server exited unexpectedly", "no server running"), which is how this test failed beside
other tmux users (other test runs, screen-shot tools)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.harness import missing_machinery
from tests.support.signing import harness_setting
from tests.support.tui_fixtures import make_runs_root

pytestmark = pytest.mark.tmux
TUI = Path(sys.executable).parent / "cto-harness-tui"


SOCKET = f"cto-tui-test-{os.getpid()}"
SCREEN_TIMEOUT_S = 60.0
"""A failure bound only (screen_shows returns as soon as the words show): a first start on a
loaded machine imports Textual and reads the runs for several seconds."""


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", "-L", SOCKET, *args], capture_output=True, text=True,
                          check=True, timeout=30).stdout


@pytest.fixture
def session(tmp_path: Path) -> Iterator[str]:
    if shutil.which("tmux") is None:
        missing_machinery("tmux is not installed: the real-terminal test cannot run here")
    if not TUI.exists():
        missing_machinery(f"{TUI} is not installed (run `uv sync`)")
    runs = make_runs_root(tmp_path / "runs")
    name = f"cto-tui-{os.getpid()}"
    # COLUMNS/LINES (set in the test process by a plugin) would pin the app at 80x24.
    env = " ".join(f"-u {n}" for n in (*os.environ, "COLUMNS", "LINES")
                   if harness_setting(n) or n in ("COLUMNS", "LINES"))
    command = (f"env {env} TERM=xterm-256color {TUI} --runs-root {tmp_path / 'runs'} "
               f"--run {runs['passed'].name}; echo EXITED $?; sleep 60")
    tmux("new-session", "-d", "-s", name, "-x", "140", "-y", "40", command)
    try:
        yield name
    finally:
        subprocess.run(["tmux", "-L", SOCKET, "kill-server"], capture_output=True, timeout=30)


def screen_shows(session: str, *words: str, timeout: float = SCREEN_TIMEOUT_S) -> str:
    deadline = time.monotonic() + timeout
    while True:
        text = tmux("capture-pane", "-p", "-t", session)
        if all(w in text for w in words):
            return text
        if time.monotonic() > deadline:
            raise AssertionError(f"{words} not on screen:\n{text}")
        time.sleep(0.2)


def screen_lacks(session: str, word: str, timeout: float = SCREEN_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while word in (text := tmux("capture-pane", "-p", "-t", session)):
        if time.monotonic() > deadline:
            raise AssertionError(f"{word!r} still on screen:\n{text}")
        time.sleep(0.2)


def line_with(session: str, word: str) -> str:
    """The line showing `word`, with its colours and attributes (the cursor among them)."""
    text = tmux("capture-pane", "-p", "-e", "-t", session)
    return next((line for line in text.splitlines() if word in line), "")


def focus_moved_to(session: str, word: str, before: str) -> None:
    """Wait until the line showing `word` is drawn otherwise than `before`: a focused
    Input draws its cursor there. Keys typed sooner would go to the screen, not the box."""
    deadline = time.monotonic() + SCREEN_TIMEOUT_S
    while line_with(session, word) == before:
        if time.monotonic() > deadline:
            raise AssertionError(f"the line with {word!r} never changed: focus did not move")
        time.sleep(0.1)


def keys(session: str, *names: str) -> None:
    tmux("send-keys", "-t", session, *names)


def test_installed_dashboard_in_a_real_terminal(session: str) -> None:
    live = screen_shows(session, "Readiness", "Fallback guard", "3 requests, all qwen3.6-35b-a3b",
                        "Conversation · v", "No exchanges recorded")
    assert "\x1b" not in live and "pwned" not in live
    keys(session, "2")
    runs = screen_shows(session, "interrupted", "unreadable", "tripped", "7 shown")
    assert runs.index("interrupted") < runs.index("passed"), "newest first"
    unfocused = line_with(session, "filter: task")
    keys(session, "/")
    focus_moved_to(session, "filter: task", unfocused)
    keys(session, "blocked", "Enter")
    screen_shows(session, "1 shown")
    keys(session, "Enter")
    screen_shows(session, "Summary", "Evidence (cto-harness validate)", "endpoint_config_supplied")
    keys(session, "Escape", "Escape", "?")
    screen_shows(session, "Keys", "retry the selected or current run")
    keys(session, "Escape")
    screen_lacks(session, "retry the selected or current run")
    keys(session, "q")
    screen_shows(session, "EXITED 0")
