"""Two jobs over the same tasks, compared: which is better, by how much, and how sure.

Per task, pass@1 of each job (passes over scored trials: core/jobs/model.py `scored`). Over
the tasks both jobs scored, the paired difference B − A (the second job minus the first),
with a 95% interval from a paired bootstrap over tasks: tasks are resampled with
replacement, seeded, so the same two jobs always give the same interval. Pairing by task
matters: tasks differ far more in difficulty than two agents do on one task, and an
unpaired interval would drown the difference in that spread. With exactly one scored attempt
per task on both sides, McNemar's exact test too: under "no difference", each discordant task
(passed by one job only) is a fair coin, so the p-value is a two-sided binomial tail.

Pure standard library (`random`, `math.comb`): the figures are few and small, and checked by
hand in the tests.
"""

from __future__ import annotations

import random
import statistics
from math import comb
from pathlib import Path

from pydantic import BaseModel, Field

from core.jobs.model import Job, scored
from core.jobs.summary import read_job

RESAMPLES = 10_000
SEED = 20260601
CONFIDENCE = 0.95


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value for `b` tasks passed only by A and `c` only by B:
    P(X ≤ min(b, c)) doubled, X ~ Binomial(b + c, 1/2), capped at 1. No discordant task:
    1.0 (nothing to tell the two apart)."""
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(comb(n, i) for i in range(min(b, c) + 1))
    return min(1.0, 2 * tail / 2**n)


def paired_bootstrap(diffs: list[float], resamples: int = RESAMPLES, seed: int = SEED,
                     confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The percentile interval of the mean of `diffs` (one per task), resampling tasks with
    replacement `resamples` times from a generator seeded with `seed`."""
    if not diffs:
        raise ValueError("no paired tasks to resample")
    rng = random.Random(seed)
    n = len(diffs)
    means = sorted(sum(rng.choices(diffs, k=n)) / n for _ in range(resamples))
    alpha = (1 - confidence) / 2
    return _quantile(means, alpha), _quantile(means, 1 - alpha)


def _quantile(ordered: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default), on a sorted list."""
    if len(ordered) == 1:
        return ordered[0]
    at = q * (len(ordered) - 1)
    low = int(at)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (at - low)


class TaskPair(BaseModel):
    task: str
    a_scored: int
    a_passes: int
    b_scored: int
    b_passes: int
    a_pass_at_1: float
    b_pass_at_1: float
    difference: float = Field(description="b_pass_at_1 - a_pass_at_1")


class Comparison(BaseModel):
    """`cto-harness compare A B --json`."""

    job_a: str
    job_b: str
    tasks: list[TaskPair] = Field(default_factory=list,
                                  description="The tasks both jobs scored, by task id")
    only_in_a: list[str] = []
    only_in_b: list[str] = []
    unscored: list[str] = Field(
        default_factory=list,
        description="In both jobs, but with no scored trial in one of them (blocked, errors, "
                    "pending)")
    a_pass_at_1: float | None = Field(default=None, description="Mean over the paired tasks")
    b_pass_at_1: float | None = None
    difference: float | None = Field(default=None, description="B − A, mean over the paired tasks")
    ci_low: float | None = None
    ci_high: float | None = None
    confidence: float = CONFIDENCE
    resamples: int = RESAMPLES
    seed: int = SEED
    mcnemar_p: float | None = Field(default=None, description="Exact McNemar p-value; only when "
                                                      "every paired task has one scored "
                                                      "attempt on each side")
    a_only_passed: int = Field(default=0, description="Discordant tasks passed by A only (b)")
    b_only_passed: int = Field(default=0, description="Discordant tasks passed by B only (c)")
    flipped_to_pass: list[str] = Field(default_factory=list, description="Tasks B does better on")
    flipped_to_fail: list[str] = Field(default_factory=list, description="Tasks B does worse on")
    verdict: str = ""

    @property
    def left_out(self) -> int:
        return len(self.only_in_a) + len(self.only_in_b) + len(self.unscored)


def _tally(job: Job) -> dict[str, tuple[int, int]]:
    """Per task of the job's config (in order): (scored trials, passes)."""
    out = {t.id: (0, 0) for t in job.config.tasks}
    for trial in job.trials:
        n, c = out.get(trial.task, (0, 0))
        if scored(trial):
            n += 1
            c += trial.status == "passed"
        out[trial.task] = (n, c)
    return out


def compare_jobs(a: Job, b: Job, *, resamples: int = RESAMPLES, seed: int = SEED
                 ) -> Comparison:
    """A against B over the tasks both scored (see the module's docstring)."""
    ta, tb = _tally(a), _tally(b)
    result = Comparison(job_a=a.job_id, job_b=b.job_id, resamples=resamples, seed=seed,
                        only_in_a=[t for t in ta if t not in tb],
                        only_in_b=[t for t in tb if t not in ta])
    single = True
    for task in ta:
        if task not in tb:
            continue
        (na, ca), (nb, cb) = ta[task], tb[task]
        if na == 0 or nb == 0:
            result.unscored.append(task)
            continue
        single = single and na == 1 and nb == 1
        pa, pb = ca / na, cb / nb
        result.tasks.append(TaskPair(task=task, a_scored=na, a_passes=ca, b_scored=nb,
                                     b_passes=cb, a_pass_at_1=pa, b_pass_at_1=pb,
                                     difference=pb - pa))
    pairs = result.tasks
    if not pairs:
        result.verdict = "no task was scored by both jobs: nothing to compare"
        return result
    result.a_pass_at_1 = statistics.fmean(p.a_pass_at_1 for p in pairs)
    result.b_pass_at_1 = statistics.fmean(p.b_pass_at_1 for p in pairs)
    diffs = [p.difference for p in pairs]
    result.difference = statistics.fmean(diffs)
    result.ci_low, result.ci_high = paired_bootstrap(diffs, resamples, seed)
    result.flipped_to_pass = [p.task for p in pairs if p.difference > 0]
    result.flipped_to_fail = [p.task for p in pairs if p.difference < 0]
    if single:
        result.a_only_passed = len(result.flipped_to_fail)
        result.b_only_passed = len(result.flipped_to_pass)
        result.mcnemar_p = mcnemar_exact(result.a_only_passed, result.b_only_passed)
    result.verdict = _verdict(result)
    return result


def _points(x: float) -> str:
    return f"{x * 100:+.1f} points"


def _verdict(r: Comparison) -> str:
    """Which job is better, and by how much from the better one's side: "A is better:
    -100.0 points" read as A being worse; the fields keep B - A whatever the verdict."""
    assert r.difference is not None and r.ci_low is not None and r.ci_high is not None
    difference, ci = r.difference, (r.ci_low, r.ci_high)

    def interval(sign: int, name: str) -> str:
        low, high = sorted(sign * x for x in ci)
        return (f"{_points(sign * difference)} ({name}), {r.confidence:.0%} CI "
                f"[{_points(low)}, {_points(high)}] over {len(r.tasks)} task(s)")

    if r.ci_low > 0:
        return f"B is better: {interval(1, 'B − A')}"
    if r.ci_high < 0:
        return f"A is better: {interval(-1, 'A − B')}"
    return f"no clear difference: {interval(1, 'B − A')} (the interval includes 0)"


def compare_job_dirs(a: Path, b: Path, *, resamples: int = RESAMPLES, seed: int = SEED
                     ) -> Comparison:
    """The two job folders read (JobError naming a folder that cannot be) and compared."""
    return compare_jobs(read_job(a), read_job(b), resamples=resamples, seed=seed)
