"""What a job costs beside running the same work directly, and the Jobs screen at scale.

    uv run python bench/job_throughput.py [--trials 48] [--concurrency 4]
                                          [--launchers warm,cold] [--no-screen]

1. `cto-harness job` of 48 trials of a quick Case (it exits at once; the task's real hidden
   checks run on what it left) at --concurrency 4, against the same 48 Case processes plus
   their checks (the same pytest command the harness runs) started directly from a 4-way
   process pool, in the same run. A trial also runs the same-run fake baseline (the fake
   engine and the checks again), so the direct side is timed twice: Case + checks (the
   issue's baseline), and Case + checks + fake engine + checks (the same work as a trial).
   The job is timed once per `--launchers` (CTO_HARNESS_JOB_LAUNCHER: trials forked from
   the warm launcher, or each a fresh interpreter), each beside the CPU seconds a trial
   took (every descendant's, which others' load on a shared machine inflates less than
   the wall time) and the load average.
2. The dashboard's Jobs screen over 100 jobs of 100 trials each: time from the app's start
   until the screen shows its first screenful of jobs and the first job's matrix, and
   until every job is listed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from textual import events  # noqa: E402

from core.jobs.model import Job, JobConfig, JobTask, Trial  # noqa: E402
from core.jobs.runner import write_job  # noqa: E402
from core.jobs.summary import summarize  # noqa: E402
from core.run.checks import WORKSPACE_ON_PATH  # noqa: E402
from core.run.task import load_task  # noqa: E402
from core.settings import resolve  # noqa: E402
from core.standins.endpoint import ScriptedEndpoint  # noqa: E402
from tui.app import Dashboard  # noqa: E402
from tui.widgets.job_views import JobMatrix, JobsTable  # noqa: E402

TASK = "r1-string-slugify"
QUICK_CASE = "#!/bin/sh\nexit 0\n"
QWEN = "qwen3.6-35b-a3b"


def direct_one(args: tuple[str, str, bool]) -> float:
    """One Case run and its checks (and, with `baseline`, the fake engine and the checks
    again), as plain processes: what a trial does, without the harness."""
    case_bin, scratch, baseline = args
    task = load_task(TASK)
    t0 = time.perf_counter()
    folder = Path(tempfile.mkdtemp(dir=scratch))
    rounds = [("case", [case_bin])]
    if baseline:
        rounds.append(("fake", [sys.executable, "-m", "core.run.fake_engine", "--task-file",
                                str(task.prompt_file), "--workspace", "{ws}", "--naive",
                                str(task.naive_dir)]))
    for name, argv in rounds:
        workspace = folder / name / "workspace"
        shutil.copytree(task.workspace_dir, workspace)
        subprocess.run([a.replace("{ws}", str(workspace)) for a in argv], cwd=workspace,
                       capture_output=True, check=False, env={**os.environ,
                                                               "PYTHONPATH": str(ROOT)})
        checks = folder / name / "checks"
        shutil.copytree(task.checks_dir, checks / "tests")
        (checks / "conftest.py").write_text(WORKSPACE_ON_PATH)
        subprocess.run([sys.executable, "-I", "-B", "-X", "utf8", "-m", "pytest", "-q", "-p",
                        "no:cacheprovider", "--rootdir", str(checks),
                        f"--junitxml={checks / 'junit.xml'}", str(checks / "tests")],
                       cwd=checks, capture_output=True, check=False,
                       env={"PATH": os.environ.get("PATH", ""),
                            "CTO_HARNESS_WORKSPACE": str(workspace),
                            "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", "LANG": "C.UTF-8"})
    return time.perf_counter() - t0


def children_cpu() -> float:
    """CPU seconds (user + system) of every finished descendant: on a shared, loaded
    machine the work each side did, which other users' load does not inflate as it does
    the wall time."""
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def direct(trials: int, concurrency: int, case_bin: str, scratch: str, baseline: bool) -> float:
    t0 = time.perf_counter()
    with ProcessPoolExecutor(concurrency) as pool:
        list(pool.map(direct_one, [(case_bin, scratch, baseline)] * trials))
    return time.perf_counter() - t0


def job(trials: int, concurrency: int, case_bin: str, scratch: Path,
        extra_env: dict[str, str] | None = None) -> tuple[float, dict]:
    """`cto-harness job` of `trials` trials; `extra_env` for a variant (bench/limits_overhead.py
    runs it with CTO_HARNESS_CASE_LIMITS off and on)."""
    admission = scratch / "admission.json"
    admission.write_text(json.dumps({"admitted": [{"provider": "qwen-local", "model": QWEN,
                                                   "status": "admitted", "expires": None}]}))
    with ScriptedEndpoint(model_id=QWEN) as upstream:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CTO_HARNESS_")}
        env.update({"CTO_HARNESS_CASE_LOCAL_BASE_URL": upstream.base_url,
                    "CTO_HARNESS_CASE_BIN": case_bin,
                    "CTO_HARNESS_CASE_MODEL_ADMISSION_FILE": str(admission),
                    "CTO_HARNESS_RUNS_ROOT": str(scratch / "runs"), "PYTHONPATH": str(ROOT),
                    **(extra_env or {})})
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "core.cli", "job", "--task", TASK,
                               "--attempts", str(trials), "--concurrency", str(concurrency),
                               "--json"], env=env, capture_output=True, text=True, cwd=ROOT,
                              check=False)
        wall = time.perf_counter() - t0
    if not proc.stdout.strip():
        raise SystemExit(f"the job failed: {proc.stderr.strip()[-400:]}")
    return wall, json.loads(proc.stdout)


def jobs_root(jobs: int, trials_each: int) -> Path:
    root = Path(tempfile.gettempdir()) / f"cto-harness-bench-jobs-{jobs}x{trials_each}"
    if (root / "jobs").is_dir() and len(os.listdir(root / "jobs")) == jobs:
        return root
    shutil.rmtree(root, ignore_errors=True)
    tasks = [f"task-{i:02d}" for i in range(10)]
    attempts = trials_each // len(tasks)
    statuses = ["passed", "failed", "passed", "blocked", "passed", "error", "timed_out"]
    for j in range(jobs):
        trials = [Trial(task=t, attempt=a, status=statuses[(j + a + i) % len(statuses)],
                        run_id=f"20260601T0200{i:02d}Z-{t}-{j}{a}", tokens=1000,
                        baseline="failed", duration_s=12.5)
                  for a in range(1, attempts + 1) for i, t in enumerate(tasks)]
        config = JobConfig(name=f"bench{j}", attempts=attempts, concurrency=4, timeout_s=600,
                           tasks=[JobTask(id=t, folder=f"/tasks/{t}") for t in tasks])
        job_id = f"202606{1 + j // 24:02d}T{j % 24:02d}0000Z-bench{j}"
        record = Job(job_id=job_id, created_at="2026-06-01T00:00:00.000Z",
                     updated_at="2026-06-01T00:00:00.000Z", state="finished",
                     harness_pid=0, config=config, trials=trials)
        record.summary = summarize(record)
        (root / "jobs" / job_id).mkdir(parents=True)
        write_job(root / "jobs" / job_id, record)
    return root


async def first_frame(root: Path, jobs: int) -> tuple[float, float]:
    """(seconds until the first screenful of jobs and the first matrix show, seconds
    until every job is in the table), from the app's start."""
    started = time.perf_counter()
    app = Dashboard(root, resolved=resolve())
    async with app.run_test(size=(150, 44)):
        app.post_message(events.Key("4", "4"))
        while not app.screen.query(JobsTable):
            await asyncio.sleep(0.002)
        table, matrix = app.screen.query_one(JobsTable), app.screen.query_one(JobMatrix)
        while table.row_count == 0 or matrix.row_count == 0:
            await asyncio.sleep(0.002)
        first = time.perf_counter() - started
        while table.row_count < jobs:
            await asyncio.sleep(0.002)
        return first, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=48)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--launchers", default="warm,cold",
                        help="the jobs to time, by CTO_HARNESS_JOB_LAUNCHER (comma-separated)")
    parser.add_argument("--screen-only", action="store_true", help="only the Jobs screen")
    parser.add_argument("--no-screen", action="store_true", help="not the Jobs screen")
    args = parser.parse_args()
    if not args.screen_only:
        throughput(args.trials, args.concurrency, args.launchers.split(","))
    if args.screen_only or not args.no_screen:
        first, every = asyncio.run(first_frame(jobs_root(100, 100), 100))
        print(f"Jobs screen, 100 jobs x 100 trials, from the app's start: first jobs and "
              f"matrix {first * 1000:.0f} ms (aim < 1000 ms), all 100 jobs "
              f"{every * 1000:.0f} ms")


def throughput(n: int, c: int, launchers: list[str]) -> None:
    for name in [n for n in os.environ if n.startswith("CTO_HARNESS_")]:
        del os.environ[name]
    jobs: list[tuple[str, float, float, list[str]]] = []
    with tempfile.TemporaryDirectory(prefix="cto-harness-bench-job-") as tmp:
        scratch = Path(tmp)
        # As root the sandbox runs as an unused uid, which must be able to reach the Case:
        # a 0700 scratch folder blocks every trial at its preflight, and the job would time
        # nothing but preflights.
        scratch.chmod(0o711)
        case_bin = scratch / "quick-case"
        case_bin.write_text(QUICK_CASE)
        case_bin.chmod(0o755)
        load = Path("/proc/loadavg").read_text().split()[:3]
        plain = direct(n, c, str(case_bin), tmp, baseline=False)
        cpu0 = children_cpu()
        same_work = direct(n, c, str(case_bin), tmp, baseline=True)
        direct_cpu = children_cpu() - cpu0
        for launcher in launchers:
            folder = scratch / launcher
            folder.mkdir()
            cpu0 = children_cpu()
            wall, result = job(n, c, str(case_bin), folder,
                               {"CTO_HARNESS_JOB_LAUNCHER": launcher})
            cpu = children_cpu() - cpu0
            trials = json.loads((Path(result["job_dir"]) / "job.json").read_text())["trials"]
            statuses = Counter(t["status"] for t in trials)
            if set(statuses) != {"failed"}:
                # The quick Case leaves the task unsolved: every trial must reach its checks
                # and fail them; anything else (blocked, error) times a shorter job.
                raise SystemExit(f"the {launcher} job's trials did not all run their Case, "
                                 f"checks and baseline: {dict(statuses)}")
            jobs.append((launcher, wall, cpu, Path("/proc/loadavg").read_text().split()[:3]))
    print(f"{n} trials of a quick Case on {TASK}, {c} at once ({os.cpu_count()} CPUs); every "
          "trial ran its Case, checks and baseline and failed, as the quick Case should")
    print(f"  direct, Case + checks:                  {plain:7.2f} s")
    print(f"  direct, Case + checks + fake + checks:  {same_work:7.2f} s   "
          f"({direct_cpu / n:.3f} CPU-s a trial)   load before: {' '.join(load)}")
    for launcher, wall, cpu, after in jobs:
        print(f"  cto-harness job, {launcher} launcher:{' ' * (10 - len(launcher))}"
              f"{wall:7.2f} s   ({cpu / n:.3f} CPU-s a trial)   load after: {' '.join(after)}")
        print(f"    ratio to direct Case + checks {wall / plain:.2f}x (aim <= 1.5x); to the same "
              f"work {wall / same_work:.2f}x (aim <= 1.3x); CPU {cpu / direct_cpu:.2f}x")


if __name__ == "__main__":
    main()
