"""Snapshots (pytest-textual-snapshot) of every screen and dialog, drawn from runs and jobs
the real harness made in this session (`real_runs`, tests/tui/conftest.py: a passed run of
a Case printing escapes, a failed one, a tripped one, a blocked one, a cancelled one, one
whose harness was killed, a demo job and a job of the naive Case), steadied so the same
screen comes out every time; the one hand-made folder is `malformed`, a manifest that is not
JSON, which no real run writes. Update after an intended change with `--snapshot-update`,
then look at the SVGs."""

from __future__ import annotations

import os
import re
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from rich.text import Text
from textual.coordinate import Coordinate
from textual.pilot import Pilot
from textual.widgets import DataTable, TabbedContent

from core.settings import resolve
from tests.support.pilot import until
from tests.support.signing import harness_setting
from tui.app import Dashboard
from tui.screens.compare_jobs import CompareJobsScreen
from tui.screens.compare_runs import CompareRunsScreen
from tui.screens.detail import RunDetailScreen
from tui.screens.dialogs import QuitScreen
from tui.widgets.case_log import CaseLog
from tui.widgets.conversation import ConversationView
from tui.widgets.runs_table import RunsTable
from tui.widgets.status_panel import StatusPanel

Settle = Callable[[Pilot], Awaitable[None]]


@pytest.fixture(params=[(80, 24), (160, 48)], ids=["80x24", "160x48"])
def size(request: pytest.FixtureRequest) -> tuple[int, int]:
    """Every screen at the smallest terminal it must stay usable in, and a large one."""
    return request.param


def app_for(run: Path | None = None, root: str = "runs") -> Dashboard:
    return Dashboard(Path(root), run_id=run.name if run else None, resolved=resolve())


def live_settled(guard_state: str) -> Settle:
    async def settle(pilot: Pilot) -> None:
        app = pilot.app
        await until(pilot, lambda: app.screen.query_one("#guard", StatusPanel).panel.state
                    == guard_state and app.screen.view.report is not None)  # type: ignore[attr-defined]
        await until(pilot, lambda: app.screen.query_one(CaseLog).lines)
        talk = app.screen.query_one(ConversationView)  # read to its end (the run has ended)
        await until(pilot, lambda: talk.loaded_once and not any(
            w.is_running for w in app.workers if w.node is talk))
        await pilot.pause(0.1)
    return settle


def test_live_before_any_run(snap_compare, size, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    for name in list(os.environ):
        if harness_setting(name):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)

    async def settle(pilot: Pilot) -> None:
        panel = pilot.app.screen.query_one("#readiness", StatusPanel)
        await until(pilot, lambda: panel.panel.state == "blocked")

    assert snap_compare(app_for(root="no-runs-yet"), terminal_size=size, run_before=settle)


def test_live_passed(snap_compare, size, real_runs) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(app_for(real_runs["passed"]), terminal_size=size,
                        run_before=live_settled("clear"))


def test_live_tripped(snap_compare, size, real_runs) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(app_for(real_runs["tripped"]), terminal_size=size,
                        run_before=live_settled("tripped"))


def test_live_blocked(snap_compare, size, real_runs) -> None:  # type: ignore[no-untyped-def]
    async def settle(pilot: Pilot) -> None:
        await until(pilot, lambda: pilot.app.screen.view.report is not None)  # type: ignore[attr-defined]
        await pilot.pause(0.1)

    assert snap_compare(app_for(real_runs["blocked"]), terminal_size=size, run_before=settle)


REAL_ROWS = 13
"""The Runs screen's rows: seven runs, the three jobs' five trials, the malformed folder."""


async def runs_loaded(pilot: Pilot) -> None:
    await pilot.press("2")
    table = pilot.app.screen.query_one(RunsTable)
    await until(pilot, lambda: table.row_count == REAL_ROWS)


def test_runs(snap_compare, size, real_runs) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(app_for(real_runs["passed"]), terminal_size=size, run_before=runs_loaded)


def test_runs_filtered(snap_compare, size, real_runs) -> None:  # type: ignore[no-untyped-def]
    async def settle(pilot: Pilot) -> None:
        await runs_loaded(pilot)
        await pilot.press("slash", *"failed", "enter")
        await until(pilot, lambda: pilot.app.screen.query_one(RunsTable).row_count == 5)

    assert snap_compare(app_for(real_runs["passed"]), terminal_size=size, run_before=settle)


def steady_digests(table: DataTable) -> None:
    """The report's sha256 in the trace follows from every field of the Report model, so
    any new field changed this snapshot: shown as a fixed digest, the snapshot pins the
    screen, not the report's schema."""
    for row in range(table.row_count):
        for column in range(len(table.columns)):
            cell = table.get_cell_at(Coordinate(row, column))
            text = cell.plain if isinstance(cell, Text) else str(cell)
            steady = re.sub(r"[0-9a-f]{64}", "0" * 64, text)
            if steady != text:
                table.update_cell_at(Coordinate(row, column),
                                     Text(steady, style=cell.style) if isinstance(cell, Text)
                                     else steady)


def detail(run: str, tab: str) -> Callable[[dict[str, Path]], Settle]:
    def make(runs: dict[str, Path]) -> Settle:
        async def settle(pilot: Pilot) -> None:
            await pilot.app.push_screen(RunDetailScreen(runs[run].resolve()))
            screen = pilot.app.screen
            assert isinstance(screen, RunDetailScreen)
            await until(pilot, lambda: screen.record.validation is not None)
            screen.query_one(TabbedContent).active = tab
            if tab == "trace":
                table = screen.query_one("#trace-table", DataTable)
                await until(pilot, lambda: table.row_count)
                steady_digests(table)
            await pilot.pause(0.2)
        return settle
    return make


@pytest.mark.parametrize(("run", "tab"), [
    ("passed", "summary"), ("passed", "trace"), ("passed", "log"), ("tripped", "relay"),
    ("passed", "baseline"), ("malformed", "summary"), ("passed", "files"),
    ("cancelled", "summary"),
])
def test_run_detail(snap_compare, size, real_runs, run: str, tab: str) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(app_for(real_runs["passed"]), terminal_size=size,
                        run_before=detail(run, tab)(real_runs))


def test_live_stages_shown(snap_compare, size, real_runs) -> None:  # type: ignore[no-untyped-def]
    """`s`: at 80 columns the folded stages take the log's place; at 160 they fold away."""
    assert snap_compare(app_for(real_runs["passed"]), terminal_size=size, press=["s"],
                        run_before=live_settled("clear"))


def test_help(snap_compare, size, real_runs) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(app_for(real_runs["passed"]), terminal_size=size, press=["question_mark"],
                        run_before=live_settled("clear"))


def test_retry_dialog(snap_compare, size, real_runs) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(app_for(real_runs["failed"]), terminal_size=size, press=["r"],
                        run_before=live_settled("clear"))


def test_endpoint_dialog_masks_what_is_typed(snap_compare, size, real_runs) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(app_for(real_runs["passed"]), terminal_size=size,
                        press=["e", *"http://10.1.2.3:8000/v1"],
                        run_before=live_settled("clear"))


def test_quit_dialog(snap_compare, size, real_runs) -> None:  # type: ignore[no-untyped-def]
    async def settle(pilot: Pilot) -> None:
        await live_settled("clear")(pilot)
        pilot.app.push_screen(QuitScreen(1))

    assert snap_compare(app_for(real_runs["passed"]), terminal_size=size, run_before=settle)


def test_work_items(snap_compare, size, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from tests.support.harness import SEED
    from tui.screens.work_items import WorkItemsScreen

    for name in list(os.environ):
        if harness_setting(name):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    Path("sot.md").write_bytes(SEED.read_bytes())
    app = Dashboard(Path("no-runs-yet"), resolved=resolve(), sot=Path("sot.md"))

    async def settle(pilot: Pilot) -> None:
        await pilot.press("3")
        await until(pilot, lambda: isinstance(pilot.app.screen, WorkItemsScreen)
                    and pilot.app.screen.report is not None)
        await pilot.pause(0.1)

    assert snap_compare(app, terminal_size=size, run_before=settle)


def test_compare_runs(snap_compare, size, real_runs) -> None:  # type: ignore[no-untyped-def]
    """The passed and the failed run of one task side by side: status, Case, model, tokens,
    time, then each check real vs real."""
    async def settle(pilot: Pilot) -> None:
        await pilot.app.push_screen(CompareRunsScreen(real_runs["passed"], real_runs["failed"]))
        await until(pilot, lambda: getattr(pilot.app.screen, "sides", None) is not None)
        await pilot.pause(0.1)

    assert snap_compare(app_for(), terminal_size=size, run_before=settle)


def test_compare_jobs(snap_compare, size, real_runs) -> None:  # type: ignore[no-untyped-def]
    """The demo job against the naive Case's job over the same two tasks."""
    async def settle(pilot: Pilot) -> None:
        await pilot.app.push_screen(CompareJobsScreen(real_runs["job-a"], real_runs["job-b"]))
        await until(pilot, lambda: getattr(pilot.app.screen, "result", None) is not None)
        await pilot.pause(0.1)

    assert snap_compare(app_for(), terminal_size=size, run_before=settle)


def test_the_steadied_runs_still_prove_what_the_harness_wrote(real_runs_made) -> None:  # type: ignore[no-untyped-def]
    """The copy the snapshots draw is intact evidence (its chain, digests and signature
    redone), so a snapshot never shows a tampered run that the harness did not make: every
    run with a report validates its integrity and signature as the original did."""
    from core.evidence.validate import validate_run

    root = real_runs_made["passed"].parent
    checked = []
    for run in sorted(p for p in root.iterdir() if (p / "report.json").is_file()):
        verdicts = {c.id: c.verdict for c in validate_run(run).criteria}
        assert verdicts["evidence_intact"] == "ok", (run.name, verdicts)
        assert verdicts["evidence_signed"] == "ok", (run.name, verdicts)
        checked.append(run.name)
    assert len(checked) == 10, checked  # 6 runs (not the killed one), 4 trials (not the cut)
