"""core/jobs/compare.py and `cto-harness compare`: the statistics against values worked out
by hand (exact binomial tails; bootstrap intervals whose resampling distribution is known
exactly), the pairing of tasks, and end to end over real jobs: two demo jobs, and two jobs of
the test Case that differ (a good Case, a naive one)."""

from __future__ import annotations

from math import isclose

import pytest

from core.jobs.compare import compare_jobs, mcnemar_exact, paired_bootstrap
from core.jobs.model import Job
from tests.support.harness import Harness

ARGS = "--mode {mode} --task-file {{task_file}} --workspace {{workspace}} --model {{model}}"


@pytest.mark.parametrize(("b", "c", "p"), [
    (0, 0, 1.0),             # nothing discordant: nothing to tell apart
    (0, 5, 2 / 32),          # 2 · C(5,0) / 2^5
    (5, 0, 2 / 32),          # symmetric
    (1, 9, 2 * 11 / 1024),   # 2 · (C(10,0) + C(10,1)) / 2^10 = 0.021484375
    (2, 8, 2 * 56 / 1024),   # 2 · (1 + 10 + 45) / 2^10 = 0.109375
    (3, 3, 1.0),             # 2 · 42 / 64 > 1: capped
    (0, 1, 1.0),             # one discordant task proves nothing
])
def test_mcnemar_exact_is_the_two_sided_binomial_tail(b: int, c: int, p: float) -> None:
    assert isclose(mcnemar_exact(b, c), p, rel_tol=1e-12)


def test_bootstrap_of_equal_differences_is_that_difference() -> None:
    assert paired_bootstrap([0.25] * 7) == (0.25, 0.25)


def test_bootstrap_interval_matches_the_exact_resampling_distribution() -> None:
    """Two tasks with differences 0 and 1: a resample's mean is 0, ½ or 1 with probability
    ¼, ½, ¼, so the 2.5% and 97.5% points are 0 and 1. Three tasks 0, 0, 1: the mean is 1
    with probability 1/27 ≈ 3.7% > 2.5%, so the upper point is 1 and the lower 0."""
    assert paired_bootstrap([0.0, 1.0]) == (0.0, 1.0)
    assert paired_bootstrap([0.0, 0.0, 1.0]) == (0.0, 1.0)


def test_bootstrap_is_seeded_and_its_interval_holds_the_mean() -> None:
    diffs = [1.0] * 12 + [0.0] * 20 + [-1.0] * 3
    first = paired_bootstrap(diffs)
    assert first == paired_bootstrap(diffs), "same seed, same interval"
    varied = [((i * 37) % 101) / 101 - 0.3 for i in range(40)]
    assert paired_bootstrap(varied) != paired_bootstrap(varied, seed=1), "the seed is used"
    low, high = first
    assert low < sum(diffs) / len(diffs) < high and low > 0  # 9/35 better, clearly


def job(job_id: str, tasks: list[str], trials: list[tuple[str, str]]) -> Job:
    attempts: dict[str, int] = {}
    rows = []
    for task, status in trials:
        attempts[task] = attempts.get(task, 0) + 1
        rows.append({"task": task, "attempt": attempts[task], "status": status})
    return Job.model_validate({
        "job_id": job_id, "created_at": "t", "updated_at": "t", "harness_pid": 1,
        "config": {"name": job_id, "attempts": 1, "concurrency": 1, "timeout_s": 10,
                   "tasks": [{"id": t, "folder": f"/{t}"} for t in tasks]},
        "trials": rows})


def test_pairs_by_task_leaves_out_what_only_one_job_scored() -> None:
    a = job("A", ["t1", "t2", "t3", "t4", "only-a"],
            [("t1", "passed"), ("t2", "failed"), ("t3", "passed"), ("t4", "blocked"),
             ("only-a", "passed")])
    b = job("B", ["t1", "t2", "t3", "t4", "only-b"],
            [("t1", "passed"), ("t2", "passed"), ("t3", "failed"), ("t4", "passed"),
             ("only-b", "failed")])
    r = compare_jobs(a, b)
    assert [p.task for p in r.tasks] == ["t1", "t2", "t3"]
    assert (r.only_in_a, r.only_in_b, r.unscored, r.left_out) == (["only-a"], ["only-b"],
                                                                  ["t4"], 3)
    assert (r.flipped_to_pass, r.flipped_to_fail) == (["t2"], ["t3"])
    assert (r.a_only_passed, r.b_only_passed, r.mcnemar_p) == (1, 1, 1.0)
    assert r.difference == 0.0 and r.verdict.startswith("no clear difference")


def test_several_attempts_give_pass_at_1_per_task_and_no_mcnemar() -> None:
    tasks = [f"t{i}" for i in range(10)]
    a = job("A", tasks, [(t, s) for t in tasks for s in ("failed", "failed")])
    b = job("B", tasks, [(t, s) for t in tasks for s in ("passed", "failed")])
    r = compare_jobs(a, b)
    assert all(p.a_pass_at_1 == 0 and p.b_pass_at_1 == 0.5 for p in r.tasks)
    assert r.mcnemar_p is None and r.difference == 0.5
    assert (r.ci_low, r.ci_high) == (0.5, 0.5) and r.verdict.startswith("B is better")


def test_no_shared_task_says_so() -> None:
    r = compare_jobs(job("A", ["x"], [("x", "passed")]), job("B", ["y"], [("y", "passed")]))
    assert r.tasks == [] and r.difference is None and "nothing to compare" in r.verdict


def test_two_demo_jobs_over_different_task_sets(harness: Harness) -> None:
    """Real demo jobs: the shared task compared, the other named as left out; text and JSON;
    a job that does not exist is one line and exit 2."""
    code, a = harness.run_json("job", "--demo", "--name", "a", "--task", "r1-string-slugify",
                               "--task", "r2-fix-roman-numerals", timeout=300)
    assert code == 0
    code, b = harness.run_json("job", "--demo", "--name", "b", "--task", "r1-string-slugify",
                               timeout=300)
    assert code == 0
    code, r = harness.run_json("compare", a["job_id"], b["job_id"])
    assert code == 0 and [t["task"] for t in r["tasks"]] == ["r1-string-slugify"]
    assert r["only_in_a"] == ["r2-fix-roman-numerals"] and r["mcnemar_p"] == 1.0
    text = harness.run("compare", a["job_id"], b["job_id"])
    assert "left out: 1 task(s) (1 only in A)" in text.stdout
    assert "no clear difference" in text.stdout
    missing = harness.run("compare", a["job_id"], "no-such-job")
    assert missing.returncode == 2 and len(missing.stderr.strip().splitlines()) == 1
    assert "no-such-job" in missing.stderr


def test_a_better_job_is_named_better(harness: Harness) -> None:
    """The test Case solving the task against the same Case writing the naive answer: the
    flip is seen, from job.json files the harness wrote."""
    harness.env["CTO_HARNESS_CASE_ARGS"] = ARGS.format(mode="good")
    _, good = harness.run_json("job", "--task", "r1-string-slugify", "--name", "good",
                               timeout=300)
    harness.env["CTO_HARNESS_CASE_ARGS"] = ARGS.format(mode="naive")
    _, naive = harness.run_json("job", "--task", "r1-string-slugify", "--name", "naive",
                                timeout=300)
    code, r = harness.run_json("compare", naive["job_id"], good["job_id"])
    assert code == 0 and r["flipped_to_pass"] == ["r1-string-slugify"]
    assert (r["a_only_passed"], r["b_only_passed"]) == (0, 1)
    assert r["difference"] == 1.0 and r["verdict"].startswith("B is better")
