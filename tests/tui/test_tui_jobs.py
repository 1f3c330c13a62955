"""The Jobs screen (`4`) driven by Pilot over fixture jobs whose trials are fixture runs:
progress, pass rate and state, the matrix, `enter` into a trial's run, live updates, `c`
cancelling a job's (real) harness process and `r` resuming a job with a real `cto-harness
job --resume`; and its snapshot."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from textual.pilot import Pilot

from core.evidence.liveness import process_start_ticks
from core.jobs.model import Job, JobConfig, JobTask, Trial
from core.jobs.runner import write_job
from core.jobs.summary import read_job, summarize
from core.run.task import BUNDLED_TASKS_DIR
from core.settings import resolve
from tests.support.pilot import until
from tests.support.tui_fixtures import dead_pid, make_runs_root
from tui.app import Dashboard
from tui.screens.detail import RunDetailScreen
from tui.screens.dialogs import ConfirmScreen
from tui.screens.jobs import JobsScreen
from tui.widgets.job_views import JobMatrix, JobsTable, job_label

SIZE = (150, 40)
TASKS = ["r1-string-slugify", "r2-fix-roman-numerals"]


pytestmark = pytest.mark.usefixtures("bare_environment")


def make_job(root: Path, job_id: str, trials: list[Trial], *, pid: int, state: str = "running",
             ticks: int | None = None) -> Path:
    config = JobConfig(name=job_id.split("-", 1)[1], attempts=2, concurrency=2, timeout_s=60,
                       demo=True, tasks=[JobTask(id=t, folder=str(BUNDLED_TASKS_DIR / t))
                                         for t in TASKS])
    job = Job(job_id=job_id, created_at="2026-06-01T02:30:00.000Z",
              updated_at="2026-06-01T02:30:00.000Z", state=state, harness_pid=pid,
              harness_start_ticks=ticks, config=config, trials=trials)
    job.summary = summarize(job)
    job_dir = root / "jobs" / job_id
    job_dir.mkdir(parents=True)
    write_job(job_dir, job)
    return job_dir


@pytest.fixture
def jobs(tmp_path: Path) -> dict[str, Path]:
    runs = make_runs_root(tmp_path / "runs")
    root = tmp_path / "runs"
    done = [Trial(task=TASKS[0], attempt=1, status="passed", run_id=runs["passed"].name),
            Trial(task=TASKS[1], attempt=1, status="failed", run_id=runs["tripped"].name,
                  guard="tripped"),
            Trial(task=TASKS[0], attempt=2, status="failed", run_id=runs["failed"].name),
            Trial(task=TASKS[1], attempt=2, status="blocked", run_id=runs["blocked"].name)]
    older = make_job(root, "20260601T023000Z-finished", done, pid=dead_pid(), state="finished")
    cut = [Trial(task=TASKS[0], attempt=1, status="passed", run_id=runs["passed"].name),
           Trial(task=TASKS[1], attempt=1, status="running"),
           Trial(task=TASKS[0], attempt=2, status="pending"),
           Trial(task=TASKS[1], attempt=2, status="pending")]
    newer = make_job(root, "20260601T024000Z-cut-short", cut, pid=dead_pid())
    return {"root": root, "finished": older, "cut": newer, **{k: v for k, v in runs.items()}}


def app_for(root: Path) -> Dashboard:
    return Dashboard(root, resolved=resolve())


def table_rows(app: Dashboard) -> list[list[str]]:
    table = app.screen.query_one(JobsTable)
    return [[str(c) for c in table.get_row(key)] for key in table.rows]


def matrix_rows(app: Dashboard) -> list[list[str]]:
    matrix = app.screen.query_one(JobMatrix)
    return [[str(c) for c in matrix.get_row(key)] for key in matrix.rows]


async def test_jobs_screen_lists_jobs_with_progress_rate_and_state(jobs) -> None:  # type: ignore[no-untyped-def]
    app = app_for(jobs["root"])
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("4")
        assert isinstance(app.screen, JobsScreen)
        await until(pilot, lambda: len(table_rows(app)) == 2)
        newest, oldest = table_rows(app)
        assert newest[0].split() == ["cut-short", "06-01", "02:40"]  # its name, its start
        assert newest[1] == "interrupted demo"  # state running, its harness gone
        assert newest[2].endswith(" 1/4") and newest[3] == "100%"
        assert oldest[1] == "finished demo" and oldest[2].endswith(" 4/4")
        assert oldest[3] == "25%" and oldest[5] == "1/3"  # the mean of 50% and 0%
        assert newest[4] == "- k=2" and oldest[4] == "100% k=2"
        await until(pilot, lambda: matrix_rows(app))
        assert matrix_rows(app) == [[TASKS[0], "✓ pass", "· wait"],
                                    [TASKS[1], "? intr", "· wait"]]  # its harness is gone
        await pilot.press("j")  # the finished job (j/k as on every list)
        await until(pilot, lambda: matrix_rows(app)[0][2] == "✗ fail")
        assert matrix_rows(app)[1][1:] == ["✗ fail", "■ block"]
        await pilot.press("k")
        await until(pilot, lambda: matrix_rows(app)[0][2] == "· wait")



async def test_jobs_screen_counts_trials_by_whose_fault(tmp_path: Path) -> None:
    """The row's note and the matrix title say, per class, how many trials did not pass;
    pass@1 and passed/scored count passes and agent failures only."""
    root = tmp_path / "runs"
    trials = [Trial(task=TASKS[0], attempt=1, status="passed"),
              Trial(task=TASKS[0], attempt=2, status="failed", failure_class="agent"),
              Trial(task=TASKS[1], attempt=1, status="failed", failure_class="limit"),
              Trial(task=TASKS[1], attempt=2, status="blocked",
                    failure_class="infrastructure")]
    make_job(root, "20260601T023000Z-classes", trials, pid=dead_pid(), state="finished")
    app = app_for(root)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("4")
        await until(pilot, lambda: len(table_rows(app)) == 1)
        row = table_rows(app)[0]
        assert (row[3], row[5]) == ("50%", "1/2")
        assert row[6] == "agent 1 · limit 1 · infrastructure 1"
        title = app.screen.query_one("#matrix-title")
        await until(pilot, lambda: "not passed:" in str(title.render()))
        assert str(title.render()).endswith(
            "not passed: agent 1 · limit 1 · infrastructure 1")

async def test_enter_on_a_cell_opens_the_trials_run(jobs) -> None:  # type: ignore[no-untyped-def]
    app = app_for(jobs["root"])
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("4")
        await until(pilot, lambda: len(table_rows(app)) == 2)
        await pilot.press("down", "enter")  # into the finished job's matrix
        matrix = app.screen.query_one(JobMatrix)
        assert matrix.has_focus
        await pilot.press("down", "enter")  # row 2 (r2), attempt 1: the tripped run
        await until(pilot, lambda: isinstance(app.screen, RunDetailScreen))
        assert app.screen.run_dir == jobs["root"] / jobs["tripped"].name  # type: ignore[attr-defined]
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, JobsScreen))


async def test_a_trial_ending_shows_live(jobs) -> None:  # type: ignore[no-untyped-def]
    app = app_for(jobs["root"])
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("4")
        await until(pilot, lambda: matrix_rows(app))
        job = read_job(jobs["cut"])
        job.trials[1] = job.trials[1].model_copy(update={"status": "failed",
                                                         "run_id": jobs["failed"].name})
        job.summary = summarize(job)
        write_job(jobs["cut"], job)
        await until(pilot, lambda: matrix_rows(app)[1][1] == "✗ fail")
        await until(pilot, lambda: table_rows(app)[0][2].endswith(" 2/4"))


async def test_c_cancels_a_running_job_by_its_harness(jobs, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    got = tmp_path / "got-sigint"
    harness = subprocess.Popen([sys.executable, "-c", (
        "import signal, sys, time\n"
        f"signal.signal(signal.SIGINT, lambda *a: (open({str(got)!r}, 'w').close(), "
        "sys.exit(130)))\n"
        "time.sleep(60)\n")])
    try:
        time.sleep(0.3)  # its handler in place
        make_job(jobs["root"], "20260601T025000Z-live", [Trial(task=TASKS[0], attempt=1,
                 status="running")], pid=harness.pid, ticks=process_start_ticks(harness.pid))
        app = app_for(jobs["root"])
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("4")
            await until(pilot, lambda: table_rows(app)
                        and table_rows(app)[0][1].startswith("running"))
            await pilot.press("c")
            await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
            await pilot.press("enter")
            assert harness.wait(timeout=10) == 130 and got.exists()
    finally:
        if harness.poll() is None:
            harness.send_signal(signal.SIGKILL)
            harness.wait()


async def test_r_resumes_a_job_with_a_real_cto_harness_job(jobs) -> None:  # type: ignore[no-untyped-def]
    """The finished fixture job is made to look cut short (running, harness gone, its
    trials' reports on disk): `r` starts `cto-harness job --resume`, which takes each
    report and marks the job finished, and the screen shows it."""
    job = read_job(jobs["finished"])
    job.state = "running"
    write_job(jobs["finished"], job)
    app = app_for(jobs["root"])
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("4")
        await until(pilot, lambda: len(table_rows(app)) == 2)
        await pilot.press("down")
        await until(pilot, lambda: table_rows(app)[1][1].startswith("interrupted"))
        await pilot.press("r")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("enter")
        await until(pilot, lambda: table_rows(app)[1][1].startswith("finished"), timeout=60)
    assert read_job(jobs["finished"]).state == "finished"


@pytest.mark.parametrize("size", [(80, 24), (160, 48)], ids=["80x24", "160x48"])
def test_jobs_snapshot(snap_compare, real_runs, size) -> None:  # type: ignore[no-untyped-def]
    """Jobs the real harness ran (tests/tui/conftest.py): a demo job, a naive Case's job, a
    job whose harness was killed mid-trial. At 80 columns every column but the note stays
    (count, pass@1, pass@k, passed); cut cells end in "…"."""
    async def settle(pilot: Pilot) -> None:
        await pilot.press("4")
        await until(pilot, lambda: len(table_rows(pilot.app)) == 3  # type: ignore[arg-type]
                    and matrix_rows(pilot.app))  # type: ignore[arg-type]
        await pilot.pause(0.2)

    assert snap_compare(app_for(Path("runs")), terminal_size=size, run_before=settle)


async def test_at_80_columns_a_job_keeps_its_name(real_runs: dict[str, Path]) -> None:
    """The jobs the real harness ran at 80x24: the job column (16 wide) showed
    `20260601T030200…`, the stamp, never the name. Now the name the user gave comes first,
    the stamp shortened to its time beside it (wide, its date and time); the selected job's
    whole id is in the matrix's title."""
    app = app_for(Path("runs"))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("4")
        await until(pilot, lambda: len(table_rows(app)) == 3)
        narrow = [row[0] for row in table_rows(app)]
        await pilot.resize_terminal(160, 48)
        await until(pilot, lambda: table_rows(app)[0][0].endswith("06-01 03:02"))
        wide = [row[0] for row in table_rows(app)]
        title = str(app.screen.query_one("#matrix-title").render())
    assert narrow == ["cut        03:02", "naive      03:01", "demo       03:00"], narrow
    assert [w.split() for w in wide] == [["cut", "06-01", "03:02"], ["naive", "06-01", "03:01"],
                                         ["demo", "06-01", "03:00"]], wide
    assert title.startswith(real_runs["job-cut"].name), title  # the whole id, selected
    long = job_label("20260601T030000Z-r1-string-slugify-sweep", 16)
    assert long.plain == "r1-string… 03:00"  # cut with … before the time goes
