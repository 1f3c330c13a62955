"""Reading jobs back and summing them up: the API `cto-harness job(s)` and the dashboard use.

The summary is computed from job.json's trials alone (each carries what its report said),
so listing a hundred jobs of a hundred trials reads a hundred files, not ten thousand.
Readers never trust a file: a corrupt job.json is a row that says so, never an exception.
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Mapping
from math import comb
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import BaseModel, Field, ValidationError

from core.errors import HarnessError
from core.evidence.liveness import harness_alive
from core.evidence.models import FAILURE_CLASSES, FailureClass, Report
from core.evidence.rundir import NotRegularFile, read_json_model
from core.evidence.runs import JOBS_FOLDER
from core.evidence.untrusted import TooLarge
from core.jobs.model import (
    TO_RUN,
    Baseline,
    Counts,
    Job,
    JobHead,
    JobState,
    JobSummary,
    TaskSummary,
    Trial,
    scored,
)
from core.run.outcome import classify

JOB_FILE = "job.json"
MAX_JOB_BYTES = 64 << 20
M = TypeVar("M", bound=BaseModel)


class JobError(HarnessError):
    """A job that cannot be found or read; the message names the folder or file."""


def pass_at_k(n: int, c: int, k: int) -> float | None:
    """The unbiased estimator of pass@k from n samples with c passes (Chen et al. 2021):
    1 - C(n-c, k) / C(n, k). None with fewer than k samples."""
    if n < k or k < 1:
        return None
    if n - c < k:
        return 1.0
    return 1.0 - comb(n - c, k) / comb(n, k)


def trial_facts(trial: Trial, report: Report) -> Trial:
    """The trial with what its report says, for the summary (no re-read of runs later)."""
    relay = report.relay
    prompt, completion = relay.prompt_tokens, relay.completion_tokens
    return trial.model_copy(update={
        "run_id": report.run_id, "status": report.status, "exit_code": report.exit_code,
        "guard": report.guard_state, "leaked": report.leak_detected,
        "failure_class": report.failure_class if report.failure_class is not None
        else classify(report),
        "baseline": report.baseline.status, "duration_s": report.durations.total_s,
        "tokens": None if prompt is None or completion is None else prompt + completion,
        "problem": None,
    })


def _count(trials: list[Trial], k: int, into: Counts) -> None:
    into.trials = len(trials)
    into.k = k
    into.tokens = 0
    for t in trials:
        finished = t.status not in TO_RUN  # a cancelled trial is run again on resume
        into.done += finished and t.run_id is not None
        into.scored += scored(t)
        into.passes += t.status == "passed"
        if t.failure_class is not None and t.status != "passed":
            into.failure_classes[t.failure_class] = into.failure_classes.get(
                t.failure_class, 0) + 1
        into.blocked += t.status == "blocked"
        into.errors += t.status == "error"
        into.cancelled += t.status == "cancelled"
        into.interrupted += t.status == "interrupted"
        into.unproven += t.guard == "unproven" and scored(t)
        into.tripped += t.guard == "tripped"
        into.leaked += t.leaked
        into.time_s += t.duration_s or 0.0
        if finished and t.run_id is not None:
            into.tokens = None if into.tokens is None or t.tokens is None \
                else into.tokens + t.tokens
    into.time_s = round(into.time_s, 3)


def _baseline(trials: list[Trial]) -> Baseline:
    seen = {t.baseline for t in trials if t.baseline in ("passed", "failed")}
    if seen == {"failed"}:
        return "discriminating"
    if seen == {"passed"}:
        return "not_discriminating"
    return "mixed" if seen else "unknown"


def summarize(job: Job, wall_s: float | None = None) -> JobSummary:
    """Per task: attempts, passes, pass@1 (the mean) and pass@k (k = the job's attempts),
    baseline, tokens, time; overall the same, pass@1 and pass@k as means over the tasks."""
    k = job.config.attempts
    total = JobSummary(wall_s=wall_s)
    _count(job.trials, k, total)
    for task in job.config.tasks:
        trials = [t for t in job.trials if t.task == task.id]
        row = TaskSummary(task=task.id, baseline=_baseline(trials))
        _count(trials, k, row)
        if row.scored:
            row.pass_at_1 = round(row.passes / row.scored, 4)
            at_k = pass_at_k(row.scored, row.passes, k)
            row.pass_at_k = None if at_k is None else round(at_k, 4)
        total.tasks.append(row)
    rated = [t for t in total.tasks if t.pass_at_1 is not None]
    if rated:
        total.pass_at_1 = round(sum(t.pass_at_1 or 0.0 for t in rated) / len(rated), 4)
    with_k = [t.pass_at_k for t in total.tasks if t.pass_at_k is not None]
    if with_k:
        total.pass_at_k = round(sum(with_k) / len(with_k), 4)
    total.discriminating_tasks = sum(t.baseline == "discriminating" for t in total.tasks)
    for t in job.trials:
        if t.node:
            total.nodes[t.node] = total.nodes.get(t.node, 0) + 1
    return total


# -- reading ---------------------------------------------------------------------------


def jobs_root(runs_root: Path) -> Path:
    return runs_root / JOBS_FOLDER


def check_jobs_root(runs_root: Path) -> None:
    """JobError unless the jobs folder is absent or a real folder of this account: in a
    runs root other accounts may write into, a `jobs` link (or a folder of theirs) would
    have the harness read their job files as its own and write its jobs' evidence where
    they read and rewrite it."""
    root = jobs_root(runs_root)
    try:
        st = os.lstat(root)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise JobError(f"jobs folder {root} cannot be examined ({exc.strerror})") from None
    if stat.S_ISLNK(st.st_mode):
        raise JobError(f"jobs folder {root} is a link, which is never followed (another "
                       "account may have planted it): remove it, or use a runs root only "
                       "you can write into")
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
        raise JobError(f"jobs folder {root} is not a folder of yours (owner uid "
                       f"{st.st_uid}): remove it, or use a runs root only you can write "
                       "into")


def read_job(job_dir: Path) -> Job:
    """job.json of `job_dir`, validated; JobError naming the file and what is wrong."""
    return _read(job_dir, Job)


def read_job_head(job_dir: Path) -> JobHead:
    """job.json of `job_dir` without its trials (for listings), validated as read_job."""
    return _read(job_dir, JobHead)


def _read(job_dir: Path, model: type[M]) -> M:
    path = job_dir / JOB_FILE
    try:
        return read_json_model(path, model, MAX_JOB_BYTES)
    except TooLarge:
        raise JobError(f"{path}: larger than {MAX_JOB_BYTES >> 20} MiB, which no job "
                       "writes") from None
    except FileNotFoundError:
        raise JobError(f"{job_dir}: not a job (no {JOB_FILE})") from None
    except NotRegularFile as exc:
        raise JobError(f"{path}: {exc.strerror}") from None
    except OSError as exc:
        raise JobError(f"{path}: cannot be read ({exc.strerror})") from None
    except (ValidationError, ValueError) as exc:
        first = str(exc).splitlines()
        detail = (first[1].strip() + ": " + first[2].strip()) if len(first) > 2 else first[0]
        raise JobError(f"{path}: not a valid job.json ({detail}); it was edited or cut "
                       "short, and is left as it is") from None


def live_state(job: Job | JobHead) -> JobState:
    """`running` only while its harness lives: a job whose harness died is interrupted."""
    if job.state == "running" and not harness_alive(job):
        return "interrupted"
    return job.state


def class_counts(counts: Mapping[FailureClass, int]) -> str:
    """`agent 2 · limit 1`: the trials that did not pass, by whose fault it was (pass@k
    counts passes and agent failures only), in the classes' fixed order."""
    return " · ".join(f"{c} {counts[c]}" for c in FAILURE_CLASSES if counts.get(c))


class JobRow(BaseModel):
    """One line of `cto-harness jobs` and of the dashboard's Jobs screen."""

    job_id: str
    path: str
    state: JobState | Literal["unreadable"]
    name: str | None = None
    created_at: str | None = None
    trials: int = 0
    done: int = 0
    passes: int = 0
    scored: int = 0
    pass_at_1: float | None = None
    pass_at_k: float | None = None
    k: int = 1
    failure_classes: dict[FailureClass, int] = Field(default_factory=dict)
    demo: bool = False
    problem: str | None = None


def job_row(job_dir: Path, job: Job | JobHead | None = None) -> JobRow:
    """The row of a job folder (read now, trials and all, unless `job` is given); a
    job.json that cannot be read is a row that says why."""
    if job is None:
        try:
            job = read_job(job_dir)
        except JobError as exc:
            return JobRow(job_id=job_dir.name, path=str(job_dir), state="unreadable",
                          problem=str(exc))
    s = job.summary
    return JobRow(job_id=job.job_id, path=str(job_dir), state=live_state(job),
                  name=job.config.name, created_at=job.created_at, trials=s.trials,
                  done=s.done, passes=s.passes, scored=s.scored, pass_at_1=s.pass_at_1,
                  pass_at_k=s.pass_at_k, k=s.k, failure_classes=s.failure_classes,
                  demo=job.config.demo)


def list_job_dirs(runs_root: Path) -> list[Path]:
    """Job folders, newest first (their names start with a UTC stamp)."""
    check_jobs_root(runs_root)
    try:
        with os.scandir(jobs_root(runs_root)) as found:
            names = [e.name for e in found if e.is_dir(follow_symlinks=False)
                     and not e.name.startswith(".")]
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as exc:
        raise JobError(f"jobs folder {jobs_root(runs_root)} cannot be read "
                       f"({exc.strerror})") from None
    return [jobs_root(runs_root) / n for n in sorted(names, reverse=True)]


def list_jobs(runs_root: Path) -> list[JobRow]:
    return [job_row(d) for d in list_job_dirs(runs_root)]


def find_job(runs_root: Path, ref: str) -> Path:
    """`ref` is a job id under the runs root's jobs folder or a path to a job folder."""
    if not ref:
        raise JobError("--resume is empty: give a job id or a job folder")
    candidates = [Path(ref)]
    if "/" not in ref:
        candidates.insert(0, jobs_root(runs_root) / ref)
    for path in candidates:
        try:
            if (path / JOB_FILE).exists() or path.is_dir():
                return path
        except OSError as exc:
            raise JobError(f"{path}: cannot be read ({exc.strerror})") from None
    raise JobError(f"no job {ref!r} (neither a job id under {jobs_root(runs_root)} nor a job "
                   "folder); `cto-harness jobs` lists them")


def job_signature(job_dir: Path) -> tuple[int, int] | None:
    """(mtime_ns, size) of job.json, to re-read only jobs that changed; None when absent."""
    try:
        st = os.stat(job_dir / JOB_FILE)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


def resume_argv(job_dir: Path, runs_root: Path, retry_errors: bool = True) -> list[str]:
    """The `cto-harness job --resume` that completes a job (the dashboard's `r`)."""
    argv = [sys.executable, "-m", "core.cli", "job", "--resume", str(job_dir), "--runs-root",
            str(runs_root)]
    return [*argv, "--retry-errors"] if retry_errors else argv
