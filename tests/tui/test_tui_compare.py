"""Compare, on the dashboard, over runs and jobs the real harness made: Runs `space` `space`
`=` on two runs of one task (a good Case and a naive one) shows what differs, each check real
vs real and each one's changes; two runs of different tasks get a one-line message; Jobs
`space` `space` `=` names the better job."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from rich.cells import cell_len
from rich.console import Console
from textual.widgets import Static, TabbedContent

from core.evidence.rundir import CHECK_RESULTS
from core.settings import resolve
from core.term import UNSAFE
from tests.support.harness import Harness
from tests.support.pilot import until
from tests.support.signing import harness_setting
from tui.app import Dashboard
from tui.screens.compare_jobs import CompareJobsScreen
from tui.screens.compare_runs import CompareRunsScreen, RunSide, checks_table
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


def drawn(static: Static) -> list[str]:
    """The Static's content as drawn at its own width, a line each."""
    console = Console(width=static.content_region.width, file=io.StringIO(), record=True)
    console.print(static.content)
    return console.export_text().splitlines()


async def test_check_names_read_as_written_on_one_line_at_80_columns(
        real_runs: dict[str, Path]) -> None:
    """The real r1 runs' checks at 80x24: `test_slugify[  Crème Brûlée  -creme-brulee]`, not
    pytest's escaped `Cr\\xe8me`; each check one line, a long name cut with `…`, A's and B's
    outcomes in the same columns on every row."""
    app = Dashboard(Path("runs"), resolved=resolve())
    async with app.run_test(size=(80, 24)) as pilot:
        await app.push_screen(CompareRunsScreen(real_runs["passed"], real_runs["failed"]))
        await until(pilot, lambda: getattr(app.screen, "sides", None) is not None)
        lines = drawn(app.screen.query_one("#compare-facts", Static))
    rows = lines[next(i for i, line in enumerate(lines) if "Each check" in line) + 2:]
    assert len(rows) == 15, rows  # one line per check: none wrapped onto a second
    assert all(re.match(r"^ *≠? +test_", row) for row in rows), rows
    assert any("test_slugify[  Crème Brûlée  -creme-brulee]" in row for row in rows), rows
    assert not any("\\x" in row or "\\u" in row for row in rows), rows
    assert any("…" in row for row in rows), "the longest name is cut, not wrapped"
    outcomes = [re.search(r"(passed|failed)\s+(passed|failed)\s*$", row) for row in rows]
    a_at = {cell_len(row[:m.start(1)]) for row, m in zip(rows, outcomes, strict=True) if m}
    assert len(a_at) == 1 and all(outcomes), rows  # 日本語 is two cells a character


def test_a_hostile_check_id_stays_inert_when_unescaped(tmp_path: Path) -> None:
    """pytest escapes a parametrize id (`\\x1b`, `\\u202e`, `\\xe8`); the dashboard undoes
    only the escapes of printable characters: Crème reads as Crème, while an OSC 52
    clipboard write, a CSI and a bidi override in an id stay escaped text. The JUnit file
    is the one real pytest writes, where the checks' runner has it write."""
    checks = tmp_path / "run" / "checks"
    checks.mkdir(parents=True)
    (checks / "test_hostile.py").write_text(
        "import pytest\n"
        "@pytest.mark.parametrize('text', ['Cr\\u00e8me', '\\x1b]52;c;cHduZWQ=\\x07',\n"
        "    '\\x1b[2J\\x9b6n', '\\u202eevil', 'a\\\\xe8'])\n"
        "def test_hostile(text):\n"
        "    assert text\n")
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                    f"--junitxml={checks / CHECK_RESULTS}", str(checks / "test_hostile.py")],
                   check=True, capture_output=True, cwd=checks)
    side = RunSide(tmp_path / "run")
    assert any("\\x1b" in name for name in side.checks), side.checks  # pytest escaped them
    console = Console(width=160, file=io.StringIO(), record=True)
    console.print(checks_table(side, side))
    text = console.export_text()
    assert "test_hostile[Crème]" in text
    assert "test_hostile[\\x1b]52;c;cHduZWQ=\\x07]" in text
    assert "test_hostile[\\x1b[2J\\x9b6n]" in text and "test_hostile[\\u202eevil]" in text
    assert "test_hostile[a\\xe8]" in text  # a backslash written as text stays one
    assert not UNSAFE.search(text), repr(text)
