"""The dashboard driven by Textual's Pilot over fixture runs: every screen and every key
that needs no real run (test_tui_runs.py drives real ones)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from textual import events
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, DirectoryTree, Input, Static, TabbedContent, TabPane

from core.evidence.runs import RunSummary
from tests.support.harness import ROOT, unprivileged
from tests.support.pilot import SIZE, dashboard, text_of, until
from tests.support.signing import harness_setting
from tests.support.tui_fixtures import CASE_LOG, make_running, make_runs_root, run_id
from tui.app import Dashboard
from tui.cli import build_app
from tui.launcher import ChildRun, ChildRunRequest
from tui.messages import RunGrew
from tui.screens.detail import RunDetailScreen
from tui.screens.dialogs import ConfirmScreen, EndpointScreen, QuitScreen
from tui.screens.help import HelpScreen
from tui.screens.runs import RunsScreen, sort_rows
from tui.widgets.case_log import CaseLog
from tui.widgets.file_view import FileView
from tui.widgets.runs_table import RunsTable
from tui.widgets.status_panel import StatusPanel
from tui.widgets.where_bar import WhereBar

pytestmark = pytest.mark.usefixtures("bare_environment")


def footer_keys(screen: Screen) -> set[str]:
    return {str(getattr(key, "key", "")) for key in screen.query("FooterKey")}


def panel(app: Dashboard, name: str) -> StatusPanel:
    return app.screen.query_one(f"#{name}", StatusPanel)


def rows(table: DataTable) -> Iterator[dict[str, str]]:
    """Each row's cells by column (which columns show depends on the terminal's width)."""
    names = [str(key.value) for key in table.columns]
    for key in table.rows:
        yield dict(zip(names, (str(cell) for cell in table.get_row(key)), strict=True))


async def test_with_nothing_configured_it_opens_and_says_what_is_missing(tmp_path: Path) -> None:
    app = dashboard(tmp_path / "no-runs-yet")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: panel(app, "readiness").panel.state == "blocked")
        assert panel(app, "readiness").panel.reason == ("CTO_HARNESS_CASE_LOCAL_BASE_URL is "
                                                        "not set (+2 more)")
        guide = text_of(app.screen.query_one("#getting-started", Static))
        assert "✗ endpoint_config: missing" in guide and "Press e to type the endpoint" in guide
        assert "✗ case_bin: missing" in guide and "cto-harness-tui --demo" in guide
        assert not app.screen.query_one(CaseLog).display


async def test_live_shows_the_newest_run_and_its_panels(runs: dict[str, Path]) -> None:
    root = runs["passed"].parent
    app = dashboard(root, runs["passed"])
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: panel(app, "guard").panel.state == "clear")
        assert panel(app, "readiness").panel.state == "ready"
        assert panel(app, "admission").panel.reason == "qwen-local/qwen3.6-35b-a3b"
        assert panel(app, "relay").panel.state == "closed", "a finished run's relay is down"
        assert "discriminating: real passed" in text_of(app.screen.query_one("#results", Static))
        log = app.screen.query_one(CaseLog)
        await until(pilot, lambda: len(log.lines) == len(CASE_LOG))
        assert all("\x1b" not in line and "\r" not in line for line in log.lines)
        assert log.lines[3] == " downloading 100%"
        assert "pwned" not in "".join(log.lines)
        assert log.lines[6].endswith("[cut: 1,018 more characters]")


async def test_tripped_run_on_live(runs: dict[str, Path]) -> None:
    app = dashboard(runs["passed"].parent, runs["tripped"])
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: panel(app, "guard").panel.state == "tripped")
        assert panel(app, "guard").panel.reason == "relay refused claude-sonnet-4-6 at 02:23:07"
        assert panel(app, "guard").has_class("-bad")


async def test_runs_screen_lists_every_kind_of_run_newest_first(runs: dict[str, Path]) -> None:
    app = dashboard(runs["passed"].parent)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("2")
        table = app.screen.query_one(RunsTable)
        await until(pilot, lambda: table.row_count == 7)
        statuses = [r["status"] for r in rows(table)]
        assert statuses == ["unreadable", "unreadable", "interrupted", "failed", "blocked",
                            "failed", "passed"]
        notes = [r["note"] for r in rows(table)]
        # the note's column (22 at 150 columns, beside admission/duration) cuts them with "…"
        assert notes[0].startswith("report.json: not a va")
        assert notes[1].startswith("manifest.json: not a")
        # a corrupt report beside a good manifest keeps its task; a corrupt manifest's row
        # shows the task its folder's name suggests, marked as a guess
        tasks = [r["task"] for r in rows(table)]
        assert tasks[0] == tasks[3] != "" and tasks[1].endswith(" ?") and tasks[1] != " ?"
        gone = "no report.json and its harness process is gone"
        assert notes[2] == gone or (notes[2].endswith("…") and gone.startswith(notes[2][:-1])), \
            "a note longer than its column is cut with a marker"
        assert [r["guard"] for r in rows(table)][3] == "tripped"
        await pilot.press("slash", *"tripped")
        await until(pilot, lambda: table.row_count == 1)
        await pilot.press("enter", "escape")
        await until(pilot, lambda: table.row_count == 7)
        assert app.screen.query_one("#filter", Input).value == ""


async def test_a_run_started_elsewhere_appears_and_live_follows_it(
        runs: dict[str, Path]) -> None:
    root = runs["passed"].parent
    app = dashboard(root)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.live_run is not None)
        await pilot.press("2")
        table = app.screen.query_one(RunsTable)
        await until(pilot, lambda: table.row_count == 7)
        running = make_running(root, minute=30)
        await until(pilot, lambda: table.row_count == 8)
        assert next(r["status"] for r in rows(table)) == "running"
        assert app.live_run == running.paths.root
        running.report("passed", 9.0)
        await until(pilot, lambda: next(r["status"] for r in rows(table)) == "passed")


async def test_log_follows_pauses_on_scroll_up_counts_and_resumes(tmp_path: Path) -> None:
    run = make_running(tmp_path / "runs")
    app = dashboard(run.paths.root.parent, run.paths.root)
    grew: list[RunGrew] = []

    def hook(message: Message) -> None:
        if isinstance(message, RunGrew):
            grew.append(message)

    async with app.run_test(size=SIZE, message_hook=hook) as pilot:
        log = app.screen.query_one(CaseLog)
        await until(pilot, lambda: len(log.lines) == 1)
        run.log(*[f"step {i}" for i in range(200)])
        await until(pilot, lambda: len(log.lines) == 201)
        await until(pilot, lambda: log.is_vertical_scroll_end)
        assert log.following
        log.focus()
        await pilot.press("pageup")
        assert not log.following
        run.log(*[f"later {i}" for i in range(50)])
        await until(pilot, lambda: log.held == 50)
        assert len(log.lines) == 201, "held lines do not move the text being read"
        assert "paused · 50 new lines" in str(log.border_subtitle)
        await pilot.press("f")
        assert log.following and len(log.lines) == 251 and log.lines[-1] == "later 49"
        await until(pilot, lambda: log.is_vertical_scroll_end)
        await pilot.press("slash", *"step 17", "enter")
        assert not log.following and log.term == "step 17"
        assert "match at line 181 (n/N)" in str(log.border_subtitle)  # step 179, the newest
        await pilot.press("n")
        assert "match at line 180" in str(log.border_subtitle)
        run.event(2.0, "case_process_exited", exit_code=0)
        await until(pilot, lambda: any(e.event == "case_process_exited"
                                       for m in grew for e in m.batch.events))
        await pilot.press("end")
        assert log.following
        await until(pilot, lambda: log.is_vertical_scroll_end)
        await pilot._post_mouse_events([events.MouseScrollUp], log, offset=(5, 5))
        assert not log.following, "the mouse wheel pauses follow mode too"
    assert grew and all(len(m.batch.log_lines) <= 1 << 16 for m in grew)


async def test_switching_screens_reuses_them_and_their_footer_keys(tmp_path: Path) -> None:
    run = make_running(tmp_path / "runs")
    app = dashboard(run.paths.root.parent, run.paths.root)
    async with app.run_test(size=SIZE) as pilot:
        live = app.screen
        await until(pilot, lambda: footer_keys(live) >= {"f", "slash"})
        keys = list(live.query("FooterKey"))
        await pilot.press("2")
        runs = app.screen
        assert isinstance(runs, RunsScreen) and runs.query_one(RunsTable).row_count == 1
        await pilot.press("1", "2", "1")
        assert app.screen is live and list(live.query("FooterKey")) == keys, "not rebuilt"
        assert footer_keys(runs) >= {"slash", "question_mark"}


async def test_log_ring_is_bounded(tmp_path: Path) -> None:
    run = make_running(tmp_path / "runs")
    run.log(*[f"line {i}" for i in range(5000)])
    app = dashboard(run.paths.root.parent, run.paths.root, log_ring=1000)
    async with app.run_test(size=SIZE) as pilot:
        log = app.screen.query_one(CaseLog)
        await until(pilot, lambda: log.lines and log.lines[-1] == "line 4999")
        assert len(log.lines) <= 1000


async def test_run_detail_tabs(runs: dict[str, Path]) -> None:
    app = dashboard(runs["passed"].parent)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("2")
        table = app.screen.query_one(RunsTable)
        await until(pilot, lambda: table.row_count == 7)
        table.move_cursor(row=6)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, RunDetailScreen))
        detail = app.screen
        assert isinstance(detail, RunDetailScreen)
        await until(pilot, lambda: detail.record.validation is not None)
        summary = text_of(detail.query_one("#report", Static))
        assert "passed" in summary and "qwen-local / qwen3.6-35b-a3b" in summary
        evidence = text_of(detail.query_one("#evidence", Static))
        assert "provider_proven" in evidence and "no_fallback" in evidence
        assert "accepted · real Case Stage 2 pass evidence" in evidence
        assert detail.query_one("#trace-table", DataTable).row_count == 13  # every event
        assert detail.query_one("#relay-table", DataTable).row_count == 3
        assert "Discriminating" in text_of(detail.query_one("#baseline-view", Static))
        find = detail.query_one("#log-find", Input)
        assert not find.display, "the log's search box only once asked for (/)"
        await pilot.press("slash")
        assert detail.query_one(TabbedContent).active == "log"
        assert find.display and find.has_focus
        await pilot.press(*"downloading", "enter")
        view = detail.query_one("#log-view", FileView)
        await until(pilot, lambda: "match 1/1 at line 4" in str(view.border_subtitle))
        assert not find.display and view.has_focus
        detail.query_one(TabbedContent).active = "files"
        tree = detail.query_one(DirectoryTree)
        tree.focus()
        await until(pilot, lambda: tree.last_line > 3)
        file_view = detail.query_one("#file-view", FileView)
        file_view.load(runs["passed"] / "manifest.json")
        await until(pilot, lambda: file_view.line_count > 5)
        await pilot.press("escape", "escape")  # the tree to the tab bar, then out
        assert not isinstance(app.screen, RunDetailScreen)


async def test_detail_of_corrupt_and_interrupted_runs_says_so(runs: dict[str, Path]) -> None:
    app = dashboard(runs["passed"].parent)
    async with app.run_test(size=SIZE) as pilot:
        for name, words in (("corrupt", "manifest.json: not a valid Manifest"),
                            ("interrupted", "none yet (running or interrupted)")):
            await app.push_screen(RunDetailScreen(runs[name]))
            detail = app.screen
            await until(pilot, lambda d=detail: d.record.validation is not None)
            assert words in text_of(detail.query_one("#report", Static))
            assert "not accepted" in text_of(detail.query_one("#evidence", Static))
            await pilot.press("escape")


async def test_keys_switch_screens_and_open_help(runs: dict[str, Path]) -> None:
    app = dashboard(runs["passed"].parent)
    async with app.run_test(size=SIZE) as pilot:
        assert app.current_mode == "live"
        await pilot.press("tab")
        assert app.current_mode == "runs"
        await pilot.press("tab")
        assert app.current_mode == "jobs"
        await pilot.press("tab")
        assert app.current_mode == "live"
        await pilot.press("2", "1")
        assert app.current_mode == "live"
        assert "3" not in footer_keys(app.screen), "no SOT: no Work items key in the footer"
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)
        await pilot.press("q")
    assert app.return_code == 0


async def test_endpoint_is_masked_validated_and_held_in_memory(runs: dict[str, Path],
                                                               tmp_path: Path) -> None:
    secret = f"http://10.{os.getpid() % 250}.0.7:8{os.getpid() % 1000:03d}/v1"
    app = dashboard(runs["passed"].parent)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("e")
        assert isinstance(app.screen, EndpointScreen)
        box = app.screen.query_one(Input)
        assert box.password
        await pilot.press(*"not a url", "enter")
        assert "must start with http" in str(app.screen.query_one("#endpoint-problem").render())
        box.value = ""
        await pilot.press(*secret, "enter")
        assert not isinstance(app.screen, EndpointScreen)
        assert app.endpoint is not None and app.endpoint.get_secret_value() == secret
        assert secret not in app.redact(f"error talking to {secret}")
        await until(pilot, lambda: app.readiness[0] is not None and
                    app.readiness[0].checks[0].detail == "set via typed in the dashboard")
    written = b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())
    assert secret.encode() not in written


async def test_retry_asks_and_escape_cancels(runs: dict[str, Path]) -> None:
    app = dashboard(runs["passed"].parent, runs["failed"])
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("r")
        assert isinstance(app.screen, ConfirmScreen)
        assert f"retry_of {runs['failed'].name}" in app.screen.question
        await pilot.press("escape")
        assert not isinstance(app.screen, ConfirmScreen) and not app.started_runs


async def test_cancel_with_no_run_in_flight_says_so(runs: dict[str, Path]) -> None:
    app = dashboard(runs["passed"].parent, runs["passed"])
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("c")
        assert not isinstance(app.screen, ConfirmScreen)
        assert any("no run in flight" in n.message for n in app._notifications)


async def test_command_palette_offers_every_action(runs: dict[str, Path]) -> None:
    app = dashboard(runs["passed"].parent)

    def titles() -> set[str]:
        return {c.title for c in app.get_system_commands(app.screen)}

    async with app.run_test(size=SIZE) as pilot:
        assert {"Live", "Runs", "Retry run", "Cancel run", "Enter endpoint", "Help", "Follow",
                "Search", "Quit"} <= titles()
        search = next(c for c in app.get_system_commands(app.screen) if c.title == "Search")
        assert search.help == "on this screen (/)"  # the key as typed, not its name "slash"
        await pilot.press("2")
        assert {"Filter", "Clear filter"} <= titles()
        run_filter = next(c for c in app.get_system_commands(app.screen) if c.title == "Filter")
        app.call_later(run_filter.callback)  # as the palette runs a command
        await until(pilot, lambda: isinstance(app.focused, Input))
        await app.push_screen(RunDetailScreen(runs["passed"]))
        assert {"Back", "Search log"} <= titles()


async def test_ctrl_q_and_the_palettes_quit_ask_while_a_run_started_here_goes(
        runs: dict[str, Path]) -> None:
    app = dashboard(runs["passed"].parent)
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    output = tempfile.TemporaryFile()  # noqa: SIM115 - the child's, closed by child.close()
    child = ChildRun(ChildRunRequest(), process, runs["passed"].parent, output)
    try:
        async with app.run_test(size=SIZE) as pilot:
            app.started_runs.append(child)
            await pilot.press("ctrl+q")
            assert isinstance(app.screen, QuitScreen), "ctrl+q asks as q does"
            await pilot.press("ctrl+q")
            assert len(app.screen_stack) == 2, "asking already: one dialog, not two"
            await pilot.press("escape")
            assert app.is_running and not isinstance(app.screen, QuitScreen)
            palette_quit = next(c for c in app.get_system_commands(app.screen)
                                if c.title == "Quit")
            app.call_later(palette_quit.callback)
            await until(pilot, lambda: isinstance(app.screen, QuitScreen))
            await pilot.press("l")
        assert process.poll() is None, "left running, as chosen"
    finally:
        process.kill()
        process.wait()
        child.close()


def test_command_line_rejects_an_unknown_run(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_app(["--runs-root", str(tmp_path), "--run", run_id(0, 1)])
    assert exit_info.value.code == 2
    assert f"no run {run_id(0, 1)} under {tmp_path}" in capsys.readouterr().err


def test_command_line_takes_a_run_folder_name_not_a_path(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    elsewhere = make_runs_root(tmp_path / "elsewhere")["passed"]
    root = tmp_path / "runs"
    root.mkdir()
    for given in (f"../elsewhere/{elsewhere.name}", str(elsewhere), ".."):
        with pytest.raises(SystemExit) as exit_info:
            build_app(["--runs-root", str(root), "--run", given])
        assert exit_info.value.code == 2
        assert "--run takes a run's folder name under the runs root" in capsys.readouterr().err


def test_command_line_names_an_unreadable_runs_root_without_a_traceback(
        runs: dict[str, Path]) -> None:
    root = runs["passed"].parent
    tui = Path(sys.executable).parent / "cto-harness-tui"
    root.chmod(0)
    try:
        result = subprocess.run(
            unprivileged([str(tui), "--runs-root", str(root), "--run", runs["passed"].name]),
            capture_output=True, text=True, timeout=60)
    finally:
        root.chmod(0o755)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"cto-harness-tui: runs root {root} cannot be read (Permission denied): fix its "
        "permissions or choose another with --runs-root or CTO_HARNESS_RUNS_ROOT"]


FOLLOW_THROUGH_LOST_ACCESS = """
import asyncio, sys
from pathlib import Path
from textual.widgets import Static
from core.settings import resolve
from tests.support.pilot import SIZE, text_of, until
from tests.support.tui_fixtures import make_running
from tui.app import Dashboard
from tui.widgets.case_log import CaseLog

async def main(root: Path) -> None:
    run = make_running(root)
    app = Dashboard(root, run_id=run.paths.root.name, resolved=resolve())
    async with app.run_test(size=SIZE) as pilot:
        log, info = app.screen.query_one(CaseLog), app.screen.query_one("#run-info", Static)
        await until(pilot, lambda: list(log.lines) == ["case: started"])
        run.paths.root.chmod(0)
        try:
            await until(pilot, lambda: "run folder cannot be read (Permission denied)"
                        in " ".join(text_of(info).split()))
            assert "unreadable" in text_of(info)
        finally:
            run.paths.root.chmod(0o755)
        run.log("case: after")
        await until(pilot, lambda: list(log.lines)[-1:] == ["case: after"])
        await until(pilot, lambda: "unreadable" not in text_of(info))
        assert "running" in text_of(info) and "cannot be read" not in text_of(info)
        errors = [n.message for n in app._notifications if n.severity == "error"]
        assert not errors, errors
    print("followed through")

asyncio.run(main(Path(sys.argv[1])))
"""


def test_live_names_a_run_folder_it_lost_access_to_and_resumes(tmp_path: Path) -> None:
    """chmod 000 on the run being followed: Live says why it cannot read it (no one-off
    "follow failed" toast), and follows on once the folder is readable again. Run as a
    user that permissions apply to, so in a child process."""
    env = {k: v for k, v in os.environ.items() if not harness_setting(k)}
    result = subprocess.run(
        unprivileged([sys.executable, "-c", FOLLOW_THROUGH_LOST_ACCESS, str(tmp_path / "runs")]),
        capture_output=True, text=True, timeout=90, cwd=ROOT, env={**env, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1:] == ["followed through"]


async def test_a_runs_root_that_is_a_file_is_named_on_live_and_runs(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    root.write_text("not a folder")
    app = dashboard(root)
    async with app.run_test(size=SIZE) as pilot:
        getting_started = app.screen.query_one("#getting-started", Static)
        await until(pilot, lambda: f"runs root {root} is a file, not a directory"
                    in text_of(getting_started))
        await pilot.press("2")
        status = app.screen.query_one("#runs-status", Static)
        await until(pilot, lambda: "is a file, not a directory" in text_of(status))


async def test_live_follows_the_newest_run_never_a_stray_folder(runs: dict[str, Path]) -> None:
    (runs["passed"].parent / "notes").mkdir()  # sorts after every UTC stamp
    app = dashboard(runs["passed"].parent)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.live_run is not None)
        assert app.live_run == runs["corrupt_report"], "the newest run, not notes/"


async def test_live_on_a_folder_without_a_manifest_says_so(runs: dict[str, Path]) -> None:
    folder = runs["passed"].parent / run_id(9, 1009)
    folder.mkdir()
    app = dashboard(folder.parent, folder)
    async with app.run_test(size=SIZE) as pilot:
        info = app.screen.query_one("#run-info", Static)
        await until(pilot, lambda: "manifest.json missing" in text_of(info))
        assert "unreadable" in text_of(info) and "no run yet" not in text_of(info)
        readiness = panel(app, "readiness").panel
        assert (readiness.state, readiness.reason) == ("unknown",
                                                       "no manifest.json in this folder")


async def test_live_on_a_blocked_run_shows_what_is_missing_in_the_logs_place(
        runs: dict[str, Path]) -> None:
    app = dashboard(runs["blocked"].parent, runs["blocked"])
    async with app.run_test(size=SIZE) as pilot:
        guide = app.screen.query_one("#getting-started", Static)
        await until(pilot, lambda: guide.display and "r retries this run" in text_of(guide))
        shown = text_of(guide)
        assert "✗ endpoint_config: missing — CTO_HARNESS_CASE_LOCAL_BASE_URL is not set" in shown
        assert "Press e to type the endpoint" in shown
        assert not app.screen.query_one(CaseLog).display, "no Case ran: no log to show"


async def test_run_detail_tabs_are_reachable_from_the_keyboard(runs: dict[str, Path]) -> None:
    app = dashboard(runs["passed"].parent)
    async with app.run_test(size=SIZE) as pilot:
        await app.push_screen(RunDetailScreen(runs["passed"]))
        detail = app.screen
        await until(pilot, lambda: detail.record.validation is not None)  # type: ignore[attr-defined]
        trace = detail.query_one("#trace-table", DataTable)
        await pilot.press("right", "down")  # the tab bar to Trace, then into its table
        assert app.focused is trace
        await pilot.press("down")
        assert trace.cursor_row == 1, "the table has the keys now"
        await pilot.press("escape", "right", "down")  # back to the tab bar, to Log
        assert app.focused is detail.query_one("#log-view", FileView)
        await pilot.press("escape")
        tabs = detail.query_one(TabbedContent)
        for _ in range(len(tabs.query(TabPane))):  # however many tabs lie between
            if tabs.active == "files":
                break
            await pilot.press("right")
        await pilot.press("down")
        tree = detail.query_one(DirectoryTree)
        assert detail.query_one(TabbedContent).active == "files" and app.focused is tree
        await until(pilot, lambda: tree.last_line > 3)
        for _ in range(tree.last_line + 1):
            if tree.cursor_node and str(tree.cursor_node.label) == "manifest.json":
                break
            await pilot.press("down")
        await pilot.press("enter")
        file_view = detail.query_one("#file-view", FileView)
        await until(pilot, lambda: file_view.line_count > 5)
        assert file_view.path == runs["passed"] / "manifest.json"
        await pilot.press("escape")
        assert app.screen is detail, "escape goes one level up: to the tab bar"
        await pilot.press("escape")
        assert app.screen is not detail


async def test_run_detail_log_shows_a_long_progress_line_at_its_last_state(
        tmp_path: Path) -> None:
    run = make_running(tmp_path / "runs")
    run.log(b"".join(b"progress %d%%\r" % i for i in range(5000)) + b"done: 42 files\n", "after")
    app = dashboard(run.paths.root.parent, run.paths.root)
    async with app.run_test(size=SIZE) as pilot:
        await app.push_screen(RunDetailScreen(run.paths.root))
        view = app.screen.query_one("#log-view", FileView)
        assert view.path is None, "the log is read when its tab is first shown, not before"
        app.screen.query_one(TabbedContent).active = "log"
        await until(pilot, lambda: view.line_count == 3)
        assert view.line_text(1) == "done: 42 files"
        assert view.line_text(2) == "after"


async def test_known_secrets_are_redacted_again_at_display(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    secret = f"http://10.9.{os.getpid() % 250}.4:{8000 + os.getpid() % 999}/v1"
    monkeypatch.setenv("CTO_HARNESS_CASE_LOCAL_BASE_URL", secret)
    run = make_running(tmp_path / "runs")
    run.log(f"a leaked line: {secret} and again {secret}")  # as if a redactor had missed it
    app = dashboard(run.paths.root.parent, run.paths.root)
    async with app.run_test(size=SIZE) as pilot:
        log = app.screen.query_one(CaseLog)
        await until(pilot, lambda: len(log.lines) == 2)
        assert log.lines[1].startswith("a leaked line: ") and secret not in log.lines[1]
        await app.push_screen(RunDetailScreen(run.paths.root))
        view = app.screen.query_one("#log-view", FileView)
        app.screen.query_one(TabbedContent).active = "log"
        await until(pilot, lambda: view.line_count == 2)
        assert secret not in view.line_text(1) and view.line_text(1).startswith("a leaked line")


async def test_live_far_behind_jumps_to_the_recent_lines(tmp_path: Path) -> None:
    run = make_running(tmp_path / "runs")
    app = dashboard(run.paths.root.parent, run.paths.root)
    async with app.run_test(size=SIZE) as pilot:
        log = app.screen.query_one(CaseLog)
        await until(pilot, lambda: len(log.lines) == 1)
        filler = "x" * 400  # long lines: the last 1 MiB fits in the ring with its marker
        run.log(*[f"burst {i} {filler}" for i in range(15_000)])  # ~6 MiB at once
        await until(pilot, lambda: log.lines and log.lines[-1].startswith("burst 14999 "))
        assert any("bytes skipped to catch up" in line for line in log.lines)
        # Without the jump the 10,000-line ring would be full of burst lines; with it, only
        # what was read before the jump plus the last 1 MiB (~2,500 lines) are shown.
        assert sum(line.startswith("burst ") for line in log.lines) < 5_000


async def test_run_detail_of_a_running_run_keeps_up_until_its_report(tmp_path: Path,
                                                                     monkeypatch) -> None:
    import tui.screens.detail as detail

    monkeypatch.setattr(detail, "REREAD_S", 0.1)
    run = make_running(tmp_path / "runs")
    app = dashboard(run.paths.root.parent, run.paths.root)
    async with app.run_test(size=SIZE) as pilot:
        await app.push_screen(RunDetailScreen(run.paths.root))
        screen = app.screen
        await until(pilot, lambda: screen.record.manifest is not None)  # type: ignore[attr-defined]
        trace = screen.query_one("#trace-table", DataTable)
        rows_before = trace.row_count
        run.event(3.0, "case_process_exited", exit_code=0)
        await until(pilot, lambda: trace.row_count == rows_before + 1)
        assert len(trace.columns) == 5, "columns are not added again on each read"
        run.report("passed", 9.0)
        await until(pilot, lambda: screen.record.report is not None)  # type: ignore[attr-defined]
        assert "passed" in text_of(screen.query_one("#report", Static))


def test_sorting_by_checks_is_by_number_not_by_text() -> None:
    """As text "10/12" came before "3/5" (and "2/5" after "12/12")."""
    rows = [RunSummary(run_id=f"r{i}", path=f"/runs/r{i}", status="passed", checks=checks)
            for i, checks in enumerate(["10/12", "3/5", None, "2/5", "12/12", "3/4"])]
    assert [r.checks for r in sort_rows(rows, "checks")] == [
        None, "2/5", "3/4", "3/5", "10/12", "12/12"]


async def test_a_runs_root_inside_a_git_work_tree_is_named_on_every_screen(
        tmp_path: Path) -> None:
    """As every command warns on stderr: the quick start's ./harness-runs in a clone."""
    (tmp_path / "clone" / ".git").mkdir(parents=True)
    app = dashboard(tmp_path / "clone" / "harness-runs")
    async with app.run_test(size=SIZE) as pilot:
        for key in ("1", "2", "4"):
            await pilot.press(key)
            await until(pilot, lambda: "runs inside git repo clone"
                        in text_of(app.screen.query_one(WhereBar)))
        await pilot.press("2")
        await until(pilot, lambda: "set CTO_HARNESS_RUNS_ROOT" in text_of(
            app.screen.query_one("#runs-status", Static)))
    outside = dashboard(tmp_path / "elsewhere")
    async with outside.run_test(size=SIZE):
        assert "git repo" not in text_of(outside.screen.query_one(WhereBar))


async def test_j_and_k_move_in_the_files_tree(runs: dict[str, Path]) -> None:
    app = dashboard(runs["passed"].parent)
    async with app.run_test(size=SIZE) as pilot:
        await app.push_screen(RunDetailScreen(runs["passed"]))
        app.screen.query_one(TabbedContent).active = "files"  # its content made now
        tree = app.screen.query_one(DirectoryTree)
        await until(pilot, lambda: tree.last_line > 2)
        tree.focus()
        await until(pilot, lambda: app.focused is tree)
        start = tree.cursor_line
        await pilot.press("j", "j")
        await until(pilot, lambda: tree.cursor_line == start + 2)
        await pilot.press("k")
        await until(pilot, lambda: tree.cursor_line == start + 1)


def test_runs_at_160_columns_show_admission_and_duration() -> None:
    """`s` sorts by duration: a 160-column terminal shows it (and the admission), instead of
    giving both up to a note column most rows leave empty."""
    from tui.widgets.runs_table import layout_for
    wide = layout_for(160)
    assert {"admission", "duration", "engine", "provider/model"} <= set(wide)
    assert sum(wide.values()) + 2 * len(wide) <= 160 - 2
    assert set(layout_for(80)) >= {"status", "time", "task", "checks", "note"}
