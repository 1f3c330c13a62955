"""The dashboard's bugs a newcomer met (issue 13), each driven through Pilot over runs that
change under the screen: selection by run id, cancel races, the palette."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from textual.widgets import Static

from core.settings import resolve
from tests.support.pilot import SIZE, dashboard, until
from tests.support.tui_fixtures import FixtureRun, make_running, make_runs_root, run_id, stage2
from tui.app import Dashboard
from tui.launcher import ChildRun, ChildRunRequest
from tui.screens.detail import RunDetailScreen
from tui.screens.dialogs import ConfirmScreen
from tui.widgets.case_log import CaseLog
from tui.widgets.file_view import viewer_command
from tui.widgets.runs_table import RunsTable
from tui.widgets.status_panel import StatusPanel
from tui.widgets.timeline import StageTimeline

pytestmark = pytest.mark.usefixtures("bare_environment")


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
    # SIGINT's default action whatever the test process passes on (an ignored or blocked
    # SIGINT is inherited through exec), as the real harness installs its own handler.
    process = subprocess.Popen([sys.executable, "-c", (
        "import signal, time; signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT}); "
        "signal.signal(signal.SIGINT, signal.default_int_handler); time.sleep(60)")])
    output = tempfile.TemporaryFile()  # noqa: SIM115 - closed by child.close()
    return ChildRun(ChildRunRequest(), process, Path(tempfile.gettempdir()) / "no-such-root",
                    output)


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
            # Polled, not process.wait(): a blocking wait would hold the app's own event loop,
            # and on a loaded machine the dialog's answer (the SIGINT) runs only after it.
            try:
                await until(pilot, lambda: child.process.poll() is not None, timeout=15)
            except AssertionError:
                status = Path(f"/proc/{child.pid}/status").read_text().splitlines()
                raise AssertionError(
                    [line for line in status if line.startswith(("SigBlk", "SigIgn", "SigCgt"))],
                    type(app.screen).__name__, [n.message for n in app._notifications]) from None
            assert child.process.returncode == -signal.SIGINT
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


async def test_live_at_80_columns_shows_the_status_and_demo_label_first(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    first = make_runs_root(root)["passed"]
    retry = FixtureRun(root, run_id(40, 4001), demo=True, retry_of=first.name, minute=40)
    retry.preflight()
    stage2(retry)
    retry.report("passed", 9.5)
    app = dashboard(root, retry.paths.root)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.screen.view.report is not None)  # type: ignore[attr-defined]
        await pilot.pause(0.2)
        info = app.screen.query_one("#run-info", Static)
        shown = info.render_line(0).text  # what the 78 columns of the bar show
        assert "passed" in shown and "demo endpoint" in shown, shown
        assert shown.rstrip().endswith("…"), "the rest is cut with a marker"


async def test_the_footer_at_80_columns_keeps_help_and_quit_within_the_width(
        runs: dict[str, Path]) -> None:
    app = dashboard(runs["passed"].parent, runs["passed"])
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.3)
        keys = list(app.screen.query("FooterKey"))
        assert {str(k.key) for k in keys} >= {"question_mark", "q"}
        assert sum(k.outer_size.width for k in keys) <= 80
        await pilot.press("2")
        await pilot.pause(0.3)
        keys = list(app.screen.query("FooterKey"))
        assert {str(k.key) for k in keys} >= {"question_mark", "q"}
        assert sum(k.outer_size.width for k in keys) <= 80


async def test_a_narrowed_terminal_refits_the_footer(runs: dict[str, Path]) -> None:
    """Started wide, then narrowed to 80 columns: the footer chooses its keys again (help
    and quit kept), as it does when started narrow."""
    app = dashboard(runs["passed"].parent, runs["passed"])
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause(0.3)
        wide = {str(k.key) for k in app.screen.query("FooterKey")}
        await pilot.resize_terminal(80, 24)

        def refitted() -> bool:
            keys = list(app.screen.query("FooterKey"))
            return ({str(k.key) for k in keys} != wide
                    and sum(k.outer_size.width for k in keys) <= 80)

        await until(pilot, refitted)
        assert {str(k.key) for k in app.screen.query("FooterKey")} >= {"question_mark", "q"}


async def test_stages_fold_below_120_columns_and_s_shows_them(runs: dict[str, Path]) -> None:
    app = dashboard(runs["passed"].parent, runs["passed"])
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.3)
        timeline, log = app.screen.query_one(StageTimeline), app.screen.query_one(CaseLog)
        assert not timeline.display and log.display
        assert log.outer_size.width == 80, "the log takes the whole width"
        await pilot.press("s")
        await pilot.pause(0.1)
        assert timeline.display and timeline.outer_size.width == 80
    wide = dashboard(runs["passed"].parent, runs["passed"])
    async with wide.run_test(size=(160, 48)) as pilot:
        await pilot.pause(0.3)
        assert wide.screen.query_one(StageTimeline).display


async def test_runs_keys_move_sort_and_copy(runs: dict[str, Path]) -> None:
    app = dashboard(runs["passed"].parent)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("2")
        table = app.screen.query_one(RunsTable)
        await until(pilot, lambda: table.row_count == 7)
        await pilot.press("j", "j")
        assert table.cursor_row == 2
        await pilot.press("k")
        assert table.cursor_row == 1
        await pilot.press("G")
        assert table.selected_run_id() == runs["passed"].name
        await pilot.press("g")
        assert table.cursor_row == 0
        await pilot.press("y")
        assert app.clipboard == table.selected_run_id()
        await pilot.press("s")  # by status
        await pilot.pause(0.1)
        statuses = [str(table.get_row(key)[list(table.columns).index("status")])
                    for key in table.rows]
        assert statuses == sorted(statuses)


async def test_live_states_are_honest_about_what_is_known(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    cancelled = FixtureRun(root, run_id(0, 5001))
    cancelled.preflight()
    cancelled.event(0.4, "relay_started", url="http://127.0.0.1:40123/v1")
    cancelled.event(0.5, "case_process_started", pid=4242, argv=["case"], network="isolated")
    cancelled.report("cancelled", 2.0, guard_state="unproven", case_exit_code=130,
                     comparison=None)
    app = dashboard(root, cancelled.paths.root)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.screen.view.report is not None)  # type: ignore[attr-defined]
        guard = app.screen.query_one("#guard", StatusPanel).panel
        assert (guard.state, guard.reason) == (
            "no verdict", "run cancelled before any request for the model finished")
        results = str(app.screen.query_one("#results", Static).content)
        assert "real failed" not in results and "run cancelled" in results
        relay = app.screen.query_one("#relay", StatusPanel).panel
        assert relay.reason == "no request", "a finished run's relay lists nothing in flight"


async def test_demo_start_says_it_is_starting_never_blocked(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A machine slow to start the harness (as a loaded one is): its interpreter waits, before
    # it runs anything, until the test has looked at the first screen (a gate file, not a
    # sleep that a loaded machine could outlast).
    slow = tmp_path / "slow-start"
    slow.mkdir()
    gate = tmp_path / "gate"
    (slow / "sitecustomize.py").write_text(
        "import os, time\n"
        "deadline = time.monotonic() + 60\n"
        f"while not os.path.exists({str(gate)!r}) and time.monotonic() < deadline:\n"
        "    time.sleep(0.05)\n")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(slow), *filter(None, [os.environ.get("PYTHONPATH")])]))
    app = Dashboard(tmp_path / "runs", demo=True, resolved=resolve())
    try:
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: app.readiness[0] is not None)  # pre-run: blocked
            assert app.screen.run_dir is None, "the demo run has no folder yet"  # type: ignore[attr-defined]
            readiness = app.screen.query_one("#readiness", StatusPanel).panel
            guide = str(app.screen.query_one("#getting-started", Static).content)
            assert readiness.state == "demo"
            assert "Starting cto-harness run --demo" in guide
            assert "cto-harness-tui --demo" not in guide and "✗" not in guide
    finally:
        gate.touch()
        for child in app.started_runs:
            child.cancel()
            child.process.wait(timeout=30)


async def test_at_80x24_toasts_leave_the_logs_state_line_and_help_scrolls(
        runs: dict[str, Path]) -> None:
    app = dashboard(runs["passed"].parent, runs["passed"])
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await until(pilot, lambda: app.screen.view.report is not None)  # type: ignore[attr-defined]
        app.notify("a message long enough to need two lines of a toast, as most of ours do")
        await pilot.pause(0.5)
        log = app.screen.query_one(CaseLog)
        state_line = log.region.bottom - 1  # the border row that says following / paused
        toasts = list(app.screen.query("Toast"))
        assert toasts
        for toast in toasts:
            assert not toast.region.y <= state_line < toast.region.bottom, (
                toast.region, state_line)
        await pilot.press("question_mark")
        await pilot.pause(0.2)
        keys = app.screen.query_one("#help-keys")
        assert keys.max_scroll_y > 0, "at 24 rows the key table is longer than the dialog"
        for _ in range(40):
            await pilot.press("j")
        assert keys.scroll_y == keys.max_scroll_y, "j reaches the last key"


def test_o_falls_back_to_the_pager_then_less_when_no_editor_is_set(tmp_path: Path) -> None:
    """A newcomer with no $EDITOR still gets to read a file whole: `o` uses $PAGER, then
    `less`; a variable that is not a command (unbalanced quotes) is passed over."""
    paged = tmp_path / "paged"
    paged.mkdir()
    assert viewer_command({"EDITOR": "vi -R", "PAGER": "more"}) == ["vi", "-R"]
    assert viewer_command({"VISUAL": "code -w", "EDITOR": "vi"}) == ["code", "-w"]
    command = viewer_command({"EDITOR": "", "PAGER": f"cp -t {paged}"})
    assert command is not None
    subprocess.run([*command, str(Path(__file__))], check=True)
    assert [p.name for p in paged.iterdir()] == [Path(__file__).name]
    less = shutil.which("less")
    assert viewer_command({"EDITOR": "'unbalanced"}) == ([less] if less else None)
