"""Live's log and Run detail's Log tab at 80x24: a line cut at the right edge ends in `›`
where the reader sees it.

The marker was drawn in the log's last two columns, which the vertical scrollbar covers as
soon as the log holds more lines than it shows: at 80x24 a cut line looked whole (Live's
log first; Run detail's viewer of the same log kept the fault a session longer)."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import TabbedContent

from tests.support.pilot import dashboard, until
from tests.support.tui_fixtures import make_running
from tui.screens.detail import RunDetailScreen
from tui.widgets.case_log import CaseLog
from tui.widgets.file_view import FileView


async def test_a_cut_line_is_marked_beside_the_scrollbar(tmp_path: Path) -> None:
    run = make_running(tmp_path / "runs")
    run.log("a long line " + "x" * 200, *[f"line {i}" for i in range(40)])
    app = dashboard(run.paths.root.parent, run.paths.root)
    async with app.run_test(size=(80, 24)) as pilot:
        log = app.screen.query_one(CaseLog)
        # laid out first (its scrollbar shown): a `g` before the first layout was undone by
        # it, the log scrolled back to the end it follows (once, under a full suite's load)
        await until(pilot, lambda: log.lines and log.lines[-1] == "line 39"
                    and log.show_vertical_scrollbar and log.scroll_y > 0)
        log.focus()
        await pilot.press("g")  # to the top: the long line in view, the scrollbar shown
        await until(pilot, lambda: log.scroll_y == 0 and log.show_vertical_scrollbar)
        await pilot.pause()
        screen = [strip.text for strip in app.screen._compositor.render_strips()]
        shown = next(line for line in screen if "a long line" in line)
        assert "x›" in shown, shown  # drawn under the scrollbar, it was not on screen


async def test_run_details_log_marks_a_cut_line_beside_the_scrollbar(tmp_path: Path) -> None:
    run = make_running(tmp_path / "runs")
    run.log("a long line " + "x" * 200, *[f"line {i}" for i in range(40)])
    app = dashboard(run.paths.root.parent, run.paths.root)
    async with app.run_test(size=(80, 24)) as pilot:
        detail = RunDetailScreen(run.paths.root)
        await app.push_screen(detail)
        detail.query_one(TabbedContent).active = "log"
        view = detail.query_one("#log-view", FileView)
        await until(pilot, lambda: view.line_count > 40 and view.show_vertical_scrollbar)
        await pilot.pause()
        screen = [strip.text for strip in app.screen._compositor.render_strips()]
        shown = next(line for line in screen if "a long line" in line)
        assert "x›" in shown, shown
