"""The Changes tab of Run detail, over runs the real harness made: a Case that writes escape
sequences into a file's name and content, a link and a binary file (what reaches the terminal
is read from the bytes the app writes), `b` for the fake baseline's workspace, and the tab's
snapshot at 80x24 and 160x48 drawn from a real demo run."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from textual.drivers import headless_driver
from textual.pilot import Pilot
from textual.widgets import DataTable, Static, TabbedContent

from core.settings import resolve
from tests.support.harness import Harness
from tests.support.pilot import until
from tests.support.signing import harness_setting
from tests.tui.test_tui_hostile import RecordingDriver, unsafe_left
from tui.app import Dashboard
from tui.screens.detail import RunDetailScreen
from tui.widgets.changes import ChangesView


def real_run(harness: Harness, *args: str) -> Path:
    _, result = harness.run_json("run", "--task", "r1-string-slugify", *args, timeout=300)
    assert result["status"] in ("passed", "failed"), result
    return Path(result["run_dir"])


async def open_changes(pilot: Pilot, run_dir: Path) -> ChangesView:
    await pilot.app.push_screen(RunDetailScreen(run_dir))
    screen = pilot.app.screen
    assert isinstance(screen, RunDetailScreen)
    await until(pilot, lambda: screen.record.validation is not None)
    screen.query_one(TabbedContent).active = "changes"
    view = screen.query_one(ChangesView)
    await until(pilot, lambda: view.diff is not None)
    return view


async def test_a_hostile_cases_changes_reach_the_terminal_only_as_inert_text(
        harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    harness.env["CTO_HARNESS_CASE_ARGS"] = ("--mode scribble --task-file {task_file} "
                                            "--workspace {workspace} --model {model}")
    run_dir = real_run(harness)
    for name in list(os.environ):
        if harness_setting(name):
            monkeypatch.delenv(name)
    monkeypatch.setattr(headless_driver, "HeadlessDriver", RecordingDriver)
    RecordingDriver.written = []
    app = Dashboard(harness.runs_root, resolved=resolve())
    async with app.run_test(size=(160, 48)) as pilot:
        view = await open_changes(pilot, run_dir)
        assert view.diff is not None
        kinds = {f.path: f.kind for f in view.diff.files}
        assert kinds == {"\x1b]0;pwned\x07name\x1b[2J.txt": "text", "blob.bin": "binary",
                         "passwd-link": "link", "slugify.py": "text"}
        view.query_one("#changes-list").focus()
        for _ in kinds:  # each file's diff drawn in turn
            await pilot.press("j")
            await pilot.pause(0.1)
        await pilot.press("b")
        await until(pilot, lambda: view.diff is not None
                    and view.diff.after == "baseline/workspace")
        assert [f.path for f in view.diff.files] == ["slugify.py"]
        await pilot.pause(0.2)
    output = "".join(RecordingDriver.written)
    assert unsafe_left(output) == []
    assert "␛]0;pwned␇name␛[2J.txt" in output, "the name shown, inert"
    assert "␛]52;c;aGVsbG8=␇clipboard" in output, "the content shown, inert"
    assert "root:x:0:0" not in output, "the link was never followed"
    assert "a symbolic link to /etc/passwd" in output


def test_changes_snapshot(snap_compare, real_runs) -> None:  # type: ignore[no-untyped-def]
    """A real demo run's Changes tab (the demo job's first trial, tests/tui/conftest.py), at
    the smallest terminal it must stay usable in and a large one."""
    async def settle(pilot: Pilot) -> None:
        view = await open_changes(pilot, real_runs["demo"])
        table = view.query_one("#changes-list", DataTable)
        # every load done (showing the tab starts one; an earlier one's result may land
        # after `diff` is first set) and its rows drawn: one session in several caught it
        # half-way with a fixed pause
        await until(pilot, lambda: not [w for w in pilot.app.workers
                                        if w.group == "changes" and not w.is_finished]
                    and view.diff is not None and table.row_count == len(view.diff.files))
        await pilot.wait_for_scheduled_animations()
        await pilot.pause()

    for size in ((80, 24), (160, 48)):
        assert snap_compare(Dashboard(Path("runs"), resolved=resolve()), terminal_size=size,
                            run_before=settle)


async def test_a_diff_wider_than_its_box_scrolls_sideways_to_the_end_of_each_line(
        real_runs) -> None:  # type: ignore[no-untyped-def]
    """At 80 columns the demo run's diff has lines wider than its box: each is laid out
    whole (Textual measured the diff within the box's width, and cut the ends off with
    nothing to say so), and → on the file list brings the end of the longest into view."""
    app = Dashboard(Path("runs"), resolved=resolve())
    async with app.run_test(size=(80, 24)) as pilot:
        view = await open_changes(pilot, real_runs["demo"])
        assert view.diff is not None
        longest = max(view.diff.files[0].diff.splitlines(), key=len)
        box = view.query_one("#changes-diff-box")
        shown = view.query_one("#changes-diff", Static)
        await until(pilot, lambda: shown.size.width > box.size.width)
        assert len(longest) > box.scrollable_content_region.width, "the case this is about"
        laid_out = [shown.render_line(y).text for y in range(shown.size.height)]
        assert any(line.rstrip().endswith(longest) for line in laid_out), laid_out
        view.query_one("#changes-list").focus()
        while box.scroll_x < box.max_scroll_x:
            await pilot.press("right")
        assert box.scroll_x + box.scrollable_content_region.width >= len(longest)
        await pilot.press("left")
        assert box.scroll_x == box.max_scroll_x - ChangesView.SIDEWAYS
        assert view.query_one("#changes-list", DataTable).has_focus, "the list keeps the keys"
