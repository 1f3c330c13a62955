"""The Work items screen under Textual's Pilot: the seed's items, live re-gating as a real
run finishes, and a broken SOT shown as an error until it is fixed."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from pathlib import Path

from textual.app import App
from textual.widgets import DataTable, Static

from tests.support.harness import ROOT, SEED
from tests.support.pilot import until
from tui.screens.work_items import WorkItemsScreen


class Host(App[None]):
    def __init__(self, screen: WorkItemsScreen) -> None:
        super().__init__()
        self.work_items = screen

    def on_mount(self) -> None:
        self.push_screen(self.work_items)


def cell(screen: WorkItemsScreen, table: str, row: str, column: int) -> str:
    return str(screen.query_one(table, DataTable).get_row(row)[column])


def copy_seed(tmp_path: Path) -> Path:
    path = tmp_path / "sot.md"
    shutil.copyfile(SEED, path)
    return path


async def test_shows_every_item_and_recovers_from_a_broken_sot(tmp_path: Path) -> None:
    sot = copy_seed(tmp_path)
    screen = WorkItemsScreen(sot, tmp_path / "runs", poll_s=0.05)
    async with Host(screen).run_test(size=(160, 50)) as pilot:
        await until(pilot, lambda: screen.report is not None)
        items = screen.query_one("#wi-items", DataTable)
        assert items.row_count == 5
        assert cell(screen, "#wi-items", "CTO-WORK-030", 1) == "blocked"
        assert cell(screen, "#wi-items", "CTO-WORK-030", 2) == "still blocked"
        assert cell(screen, "#wi-items", "CTO-WORK-020", 2) == "no rule"
        assert screen.query_one("#wi-acceptance", DataTable).row_count == 14
        assert cell(screen, "#wi-acceptance", "CTO-WORK-030#4", 1) == "provider_proven"

        sot.write_text("## A-1 - one\n## A-1 - two\n")
        await until(pilot, lambda: screen.error is not None)
        shown = str(screen.query_one("#wi-source", Static).render())
        assert "sot.md:2: duplicate item id A-1" in shown

        # Put back whole (as an editor's save does), so the 0.05 s poll never reads it half-copied.
        shutil.copyfile(SEED, sot.with_name("sot.md.new"))
        os.replace(sot.with_name("sot.md.new"), sot)
        await until(pilot, lambda: screen.error is None)
        assert items.row_count == 5


async def test_regates_live_when_a_real_run_finishes(harness, tmp_path: Path) -> None:
    sot = copy_seed(tmp_path)
    screen = WorkItemsScreen(sot, harness.runs_root, poll_s=0.05)
    blocked_env = {k: v for k, v in harness.env.items()
                   if k != "CTO_HARNESS_CASE_LOCAL_BASE_URL"}
    async with Host(screen).run_test(size=(160, 50)) as pilot:
        await until(pilot, lambda: screen.report is not None)
        assert cell(screen, "#wi-acceptance", "CTO-WORK-030#1", 0) == "-"
        proc = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "core.cli", "run", "--runs-root",
                             str(harness.runs_root), "--json"],
            env=blocked_env, capture_output=True, text=True, timeout=120, cwd=ROOT)
        assert proc.returncode == 3, proc.stderr
        await until(pilot, lambda: screen.report.latest_real_run is not None)
        assert cell(screen, "#wi-acceptance", "CTO-WORK-030#1", 0) == "ok"
        assert cell(screen, "#wi-acceptance", "CTO-WORK-030#0", 0) == "failed"
        title = str(screen.query_one("#wi-acceptance-title", Static).render())
        assert screen.report.latest_real_run in title


async def test_dashboard_key_3_opens_work_items_only_with_a_sot(tmp_path: Path) -> None:
    from tui.app import Dashboard

    without = Dashboard(tmp_path / "runs")
    async with without.run_test(size=(160, 50)) as pilot:
        await pilot.press("3")
        await pilot.pause()
        assert without.current_mode == "live"
        assert any("--sot" in str(n.message) for n in without._notifications)
    app = Dashboard(tmp_path / "runs", sot=copy_seed(tmp_path))
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.press("3")
        await until(pilot, lambda: isinstance(app.screen, WorkItemsScreen)
                    and app.screen.report is not None)
        assert app.screen.query_one("#wi-items", DataTable).row_count == 5
        await pilot.press("tab")  # screens cycle in their keys' order: 3 Work items, 4 Jobs
        await pilot.pause()
        assert app.current_mode == "jobs"
