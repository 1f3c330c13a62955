"""Compare, on the dashboard, over runs and jobs the real harness made: Runs `space` `space`
`=` on two runs of one task (a good Case and a naive one) shows what differs, each check real
vs real and each one's changes; two runs of different tasks get a one-line message; Jobs
`space` `space` `=` names the better job."""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

import pytest
from rich.console import Console
from textual.widgets import Static, TabbedContent

from core.settings import resolve
from tests.support.harness import Harness
from tests.support.pilot import until
from tests.support.signing import harness_setting
from tui.app import Dashboard
from tui.screens.compare_jobs import CompareJobsScreen
from tui.screens.compare_runs import CompareRunsScreen
from tui.screens.jobs import JobsScreen
from tui.screens.runs import RunsScreen
from tui.widgets.changes import ChangesView
from tui.widgets.job_views import JobsTable
from tui.widgets.runs_table import RunsTable

ARGS = "--mode {mode} --task-file {{task_file}} --workspace {{workspace}} --model {{model}}"
SIZE = (160, 48)


def shown(static: Static) -> str:
    console = Console(width=SIZE[0], file=io.StringIO(), record=True)
    console.print(static.content)
    return console.export_text()


def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if harness_setting(name):
            monkeypatch.delenv(name)


def case_run(harness: Harness, mode: str, *extra: str, task: str = "r1-string-slugify"
             ) -> Path:
    harness.env["CTO_HARNESS_CASE_ARGS"] = ARGS.format(mode=mode)
    _, result = harness.run_json("run", "--task", task, *extra, timeout=300)
    return Path(result["run_dir"])


async def test_two_runs_of_one_task_side_by_side(harness: Harness,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    good = case_run(harness, "good")
    naive = case_run(harness, "naive")
    other = case_run(harness, "good", "--demo", task="r2-fix-roman-numerals")
    clean_env(monkeypatch)
    app = Dashboard(harness.runs_root, resolved=resolve())
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("2")
        screen = app.screen
        assert isinstance(screen, RunsScreen)
        table = screen.query_one(RunsTable)
        await until(pilot, lambda: table.row_count == 3)
        await until(pilot, lambda: all(screen.summaries[r.name].status != "running"
                                       for r in (good, naive, other)))
        table.focus()

        async def mark(run: Path) -> None:
            table.move_cursor(row=table.get_row_index(run.name))
            await pilot.press("space")

        await mark(other)
        await mark(good)
        await pilot.press("equals_sign")  # r2 and r1: refused, in one line
        await until(pilot, lambda: any("different tasks" in str(n.message)
                                       for n in app._notifications))
        assert isinstance(app.screen, RunsScreen)
        await mark(naive)  # a third mark drops the oldest (other): A good, B naive
        assert table.marked == [good.name, naive.name]
        await pilot.press("equals_sign")
        await until(pilot, lambda: isinstance(app.screen, CompareRunsScreen)
                    and app.screen.sides is not None)
        compare = app.screen
        assert isinstance(compare, CompareRunsScreen)
        text = shown(compare.query_one("#compare-facts", Static))
        status = next(line for line in text.splitlines() if " status " in line)
        assert "≠" in status and "passed" in status and "failed" in status
        checks = next(line for line in text.splitlines() if "checks" in line and "/" in line)
        assert "15/15 passed" in checks and "≠" in checks
        assert "Each check, real vs real" in text
        assert any("≠" in line and "passed" in line and "failed" in line
                   for line in text.split("Each check")[1].splitlines()), "a flipped check"
        compare.query_one(TabbedContent).active = "changes-b"
        view = compare.query_one("#changes-b-view", ChangesView)
        await until(pilot, lambda: view.diff is not None)
        assert view.diff is not None and [f.path for f in view.diff.files] == ["slugify.py"]
        await pilot.press("escape")
        assert isinstance(app.screen, RunsScreen)


async def test_two_jobs_compared_from_the_jobs_screen(harness: Harness,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    harness.env["CTO_HARNESS_CASE_ARGS"] = ARGS.format(mode="naive")
    _, naive = harness.run_json("job", "--task", "r1-string-slugify", "--name", "naive",
                                timeout=300)
    harness.env["CTO_HARNESS_CASE_ARGS"] = ARGS.format(mode="good")
    _, good = harness.run_json("job", "--task", "r1-string-slugify", "--name", "good",
                               timeout=300)
    clean_env(monkeypatch)
    app = Dashboard(harness.runs_root, resolved=resolve())
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("4")
        screen = app.screen
        assert isinstance(screen, JobsScreen)
        table = screen.query_one(JobsTable)
        await until(pilot, lambda: table.row_count == 2)
        table.focus()
        for job_id in (naive["job_id"], good["job_id"]):
            table.move_cursor(row=table.get_row_index(job_id))
            await pilot.press("space")
        assert screen.marked == [naive["job_id"], good["job_id"]]
        await until(pilot, lambda: "(= compares)" in shown(screen.query_one("#jobs-status",
                                                                            Static)))
        await pilot.press("equals_sign")
        await until(pilot, lambda: isinstance(app.screen, CompareJobsScreen)
                    and app.screen.result is not None)
        compare = app.screen
        assert isinstance(compare, CompareJobsScreen)
        text = shown(compare.query_one("#compare-jobs", Static))
        assert text.startswith("B is better: +100.0 points")
        assert "McNemar  exact p = 1 (0 passed by A only, 1 by B only)" in text
        assert re.search(r"▲\s+r1-string-slugify\s+0%\s+100%\s+\+100\.0", text), text
