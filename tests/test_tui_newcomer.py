"""The dashboard's bugs a newcomer met (issue 13), each driven through Pilot over runs that
change under the screen: selection by run id, cancel races, the palette."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from core.settings import resolve
from tests.test_tui_app import SIZE, until
from tests.tui_fixtures import make_running, make_runs_root
from tui.app import Dashboard
from tui.launcher import ChildRun, RunRequest
from tui.screens.detail import RunDetailScreen
from tui.screens.dialogs import ConfirmScreen
from tui.widgets.runs_table import RunsTable


@pytest.fixture(autouse=True)
def bare_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("CTO_HARNESS_"):
            monkeypatch.delenv(name)


@pytest.fixture
def runs(tmp_path: Path) -> dict[str, Path]:
    return make_runs_root(tmp_path / "runs")


def dashboard(root: Path, run: Path | None = None) -> Dashboard:
    return Dashboard(root, run_id=run.name if run else None, resolved=resolve())


@pytest.mark.parametrize("away", [False, True], ids=["watching", "on-live-meanwhile"])
async def test_runs_keeps_the_selected_run_when_a_newer_one_appears(
        runs: dict[str, Path], away: bool) -> None:
    root = runs["passed"].parent
    app = dashboard(root, runs["passed"])
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("2")
        table = app.screen.query_one(RunsTable)
        await until(pilot, lambda: table.row_count == 7)
        await pilot.press("down", "down", "down")
        chosen = table.selected_run_id()
        assert chosen == runs["tripped"].name
        if away:
            await pilot.press("1")
        make_running(root, minute=30)
        await until(pilot, lambda: table.row_count == 8)
        await pilot.pause(0.2)
        if away:
            await pilot.press("2")
            await pilot.pause(0.1)
        assert table.selected_run_id() == chosen
        assert table.cursor_row == 4, "the highlight moved down with its row"
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, RunDetailScreen))
        assert app.screen.run_dir.name == chosen


def sleeper() -> ChildRun:
    """A child that has not made its run folder yet (a harness still starting)."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    output = tempfile.TemporaryFile()  # noqa: SIM115 - closed by child.close()
    return ChildRun(RunRequest(), process, Path(tempfile.gettempdir()) / "no-such-root", output)


async def test_cancel_right_after_a_start_cancels_the_run_starting(
        runs: dict[str, Path]) -> None:
    app = dashboard(runs["passed"].parent, runs["passed"])
    child = sleeper()
    try:
        async with app.run_test(size=SIZE) as pilot:
            app.started_runs.append(child)
            await pilot.press("c")
            assert isinstance(app.screen, ConfirmScreen), [
                n.message for n in app._notifications]
            assert f"harness pid {child.pid}" in app.screen.question
            await pilot.press("enter")
            assert child.process.wait(timeout=10) == -signal.SIGINT
    finally:
        child.process.kill()
        child.process.wait()
        child.close()


async def test_the_cancel_dialog_closes_when_the_run_ends_under_it(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    running = make_running(root)
    app = dashboard(root, running.paths.root)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.screen.view.manifest is not None)  # type: ignore[attr-defined]
        await pilot.press("c")
        assert isinstance(app.screen, ConfirmScreen)
        running.report("passed", 9.0)
        await until(pilot, lambda: not isinstance(app.screen, ConfirmScreen), timeout=5)
        await until(pilot, lambda: any("ended before it was cancelled" in n.message
                                       for n in app._notifications))
        assert not any("cancelling" in n.message for n in app._notifications)


async def test_the_palette_offers_our_commands_only(runs: dict[str, Path]) -> None:
    app = dashboard(runs["passed"].parent)
    async with app.run_test(size=SIZE):
        commands = list(app.get_system_commands(app.screen))
        titles = {c.title for c in commands}
        assert not titles & {"Keys", "Maximize", "Minimize", "Screenshot", "Theme",
                             "Change theme"}
        quit_command = next(c for c in commands if c.title == "Quit")
        assert "as soon as possible" not in quit_command.help
        assert "asks first while a run started here goes" in quit_command.help
