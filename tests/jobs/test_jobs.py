"""`cto-harness job`: trials as ordinary runs, the summary, resume after Ctrl-C, SIGTERM
and SIGKILL, and bad input that leaves every file of a job as it was. Real processes, a
real loopback upstream, the test Case."""

from __future__ import annotations

import json
import shutil
import signal
import time
from math import comb, prod
from pathlib import Path

import pytest

from core.evidence.runs import list_runs
from core.evidence.validate import validate_run
from core.jobs.model import Job
from core.jobs.runner import needs_run
from core.jobs.summary import pass_at_k, summarize
from core.run.task import BUNDLED_TASKS_DIR
from tests.support.case_runs import processes
from tests.support.harness import SEED, Harness

GOOD_ARGS = "--mode {mode} --task-file {{task_file}} --workspace {{workspace}} --model {{model}}"
SLUG = "r1-string-slugify"


def mode(harness: Harness, name: str) -> None:
    harness.env["CTO_HARNESS_CASE_ARGS"] = GOOD_ARGS.format(mode=name)


def job_file(harness: Harness) -> Path:
    found = list((harness.runs_root / "jobs").glob("*/job.json"))
    assert len(found) == 1, found
    return found[0]


def load(harness: Harness) -> Job:
    return Job.model_validate_json(job_file(harness).read_text())


def wait_until(predicate, timeout: float = 60.0, what: str = "condition") -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except (OSError, ValueError):
            pass
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def cases_running(harness: Harness, n: int) -> bool:
    """n trials have their Case process running (their run folders say so)."""
    if not list((harness.runs_root / "jobs").glob("*/job.json")):
        return False
    job = load(harness)
    ids = [t.run_id for t in job.trials if t.status == "running" and t.run_id]
    return len(ids) == n and all(
        "case_process_started" in (harness.runs_root / i / "trace.jsonl").read_text()
        for i in ids)


# -- pass@k ---------------------------------------------------------------------------


@pytest.mark.parametrize(("n", "c", "k"), [(5, 0, 1), (5, 5, 1), (5, 2, 1), (5, 2, 5),
                                           (10, 3, 5), (20, 1, 3), (3, 1, 2)])
def test_pass_at_k_is_the_unbiased_estimator(n: int, c: int, k: int) -> None:
    # Chen et al.'s numerically stable product form, computed independently
    expected = 1.0 if n - c < k else 1.0 - prod(1.0 - k / i for i in range(n - c + 1, n + 1))
    assert pass_at_k(n, c, k) == pytest.approx(expected)
    assert pass_at_k(n, c, k) == pytest.approx(1 - comb(n - c, k) / comb(n, k))


def test_pass_at_k_needs_k_samples() -> None:
    assert pass_at_k(2, 1, 3) is None


# -- a job end to end -------------------------------------------------------------------


def test_a_job_runs_every_trial_as_an_ordinary_run(harness: Harness) -> None:
    code, out = harness.run_json("job", "--task", SLUG, "--attempts", "3", "--concurrency",
                                 "2", "--name", "slug3", timeout=300)
    assert code == 0, out
    job = load(harness)
    assert out["job_id"] == job.job_id and job.job_id.endswith("-slug3")
    assert job.state == "finished"
    assert sorted(t.attempt for t in job.trials) == [1, 2, 3]
    rows = {r.run_id: r for r in list_runs(harness.runs_root)}
    assert set(rows) == {t.run_id for t in job.trials}, "the jobs folder is not a run"
    for trial in job.trials:
        manifest = json.loads((harness.runs_root / trial.run_id / "manifest.json").read_text())
        assert (manifest["job_id"], manifest["attempt"]) == (job.job_id, trial.attempt)
        assert trial.status == rows[trial.run_id].status == "passed"
        assert validate_run(harness.runs_root / trial.run_id).ok
    s = out["summary"]
    assert (s["trials"], s["done"], s["scored"], s["passes"]) == (3, 3, 3, 3)
    assert s["pass_at_1"] == 1.0 and s["pass_at_k"] == 1.0 and s["k"] == 3
    task = s["tasks"][0]
    assert task["baseline"] == "discriminating" and task["tokens"] > 0
    listed = json.loads(harness.run("jobs", "--json").stdout)
    assert [(j["job_id"], j["state"], j["done"]) for j in listed] == [(job.job_id,
                                                                      "finished", 3)]


def test_summary_counts_failures_and_the_guard(harness: Harness) -> None:
    mode(harness, "claude")  # asks for the hosted model: refused, tripped, failed
    code, out = harness.run_json("job", "--task", SLUG, "--attempts", "2", "--concurrency",
                                 "2", timeout=300)
    assert code == 0  # every trial has a verdict; the verdicts are failures
    s = out["summary"]
    # a policy stop is no sample of what the agent can do: pass@k does not count it
    assert (s["scored"], s["passes"], s["tripped"], s["pass_at_1"]) == (0, 0, 2, None)
    assert s["failure_classes"] == {"policy": 2}
    # the plain text says whose fault, in the job's summary and in the list of jobs
    shown = harness.run("job", "--resume", out["job_id"]).stdout  # finished: nothing to run
    assert "not passed, whose fault: policy 2" in shown, shown
    listed = harness.run("jobs").stdout
    assert "not passed: policy 2" in listed, listed


def test_summary_from_trials() -> None:
    job = Job.model_validate({
        "job_id": "j", "created_at": "t", "updated_at": "t", "harness_pid": 1,
        "config": {"name": "j", "attempts": 4, "concurrency": 1, "timeout_s": 10,
                   "tasks": [{"id": "a", "folder": "/a"}, {"id": "b", "folder": "/b"}]},
        "trials": [
            {"task": "a", "attempt": 1, "status": "passed", "run_id": "1", "tokens": 10,
             "baseline": "failed", "duration_s": 1.5},
            {"task": "a", "attempt": 2, "status": "failed", "run_id": "2", "tokens": None,
             "baseline": "failed", "guard": "unproven"},
            {"task": "a", "attempt": 3, "status": "blocked", "run_id": "3"},
            {"task": "a", "attempt": 4, "status": "pending"},
            {"task": "b", "attempt": 1, "status": "passed", "run_id": "5", "tokens": 7,
             "baseline": "passed", "leaked": True},
            # cancelled has a report, but --resume runs it again: not done
            {"task": "b", "attempt": 2, "status": "cancelled", "run_id": "6"},
        ]})
    s = summarize(job)
    a, b = s.tasks
    assert (a.scored, a.passes, a.pass_at_1, a.pass_at_k) == (2, 1, 0.5, None)
    assert a.tokens is None and b.tokens == 7  # one run of a did not know its tokens
    assert (a.baseline, b.baseline) == ("discriminating", "not_discriminating")
    assert (s.blocked, s.unproven, s.leaked, s.cancelled, s.done, s.trials) == (1, 1, 1, 1, 4, 6)
    assert s.pass_at_1 == 0.75 and s.discriminating_tasks == 1



def test_pass_at_k_counts_passes_and_agent_failures_only() -> None:
    """A limit, the infrastructure, the verifier or a policy stop is no sample; each class
    is counted; --retry-errors runs infrastructure failures again and nothing else."""
    classes = ["agent", "limit", "infrastructure", "verifier", "policy"]
    job = Job.model_validate({
        "job_id": "j", "created_at": "t", "updated_at": "t", "harness_pid": 1,
        "config": {"name": "j", "attempts": 2, "concurrency": 1, "timeout_s": 10,
                   "tasks": [{"id": "a", "folder": "/a"}]},
        "trials": [
            {"task": "a", "attempt": 1, "status": "passed", "run_id": "0"},
            *({"task": "a", "attempt": 2 + i, "status": "failed", "run_id": str(i + 1),
               "failure_class": c} for i, c in enumerate(classes)),
            {"task": "a", "attempt": 7, "status": "blocked", "run_id": "6",
             "failure_class": "infrastructure"},
            {"task": "a", "attempt": 8, "status": "error"},  # no report: an older job.json
        ]})
    s = summarize(job)
    assert (s.scored, s.passes, s.pass_at_1) == (2, 1, 0.5)
    assert s.failure_classes == {"agent": 1, "limit": 1, "infrastructure": 2, "verifier": 1,
                                 "policy": 1}
    again = [t.failure_class or t.status for t in job.trials if needs_run(t, True)]
    assert again == ["infrastructure", "infrastructure", "error"]
    assert not any(needs_run(t, False) for t in job.trials)


def _trial_harnesses(job_pid: int) -> int:
    """`cto-harness run` processes the job has running now: its children whose argv is a
    run, and the children of its warm launcher (core/jobs/warm.py), each a trial forked
    from it (a run's own helpers are the run's children, not the job's)."""
    procs = processes()
    launchers = {pid for pid, (ppid, argv) in procs.items()
                 if ppid == job_pid and b"core.cli.warm" in argv}
    return sum(1 for ppid, argv in procs.values()
               if (ppid == job_pid and b"run" in argv and b"--job-id" in argv)
               or ppid in launchers)


def test_at_most_concurrency_trials_run_at_once(harness: Harness) -> None:
    """Counted from outside, as processes: never more than N trials' harnesses (so never
    more than N Cases asking the endpoint), and N are reached."""
    proc = harness.start("job", "--task", SLUG, "--attempts", "5", "--concurrency", "2",
                         "--json")
    seen = []
    while proc.poll() is None:
        seen.append(_trial_harnesses(proc.pid))
        time.sleep(0.02)
    assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
    assert max(seen) == 2, seen
    assert [t.status for t in load(harness).trials] == ["passed"] * 5


# -- cancel and resume ------------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["INT", "TERM"])
def test_cancel_writes_cancelled_trials_and_resume_completes(harness: Harness,
                                                             sig: int) -> None:
    mode(harness, "hang")
    proc = harness.start("job", "--task", SLUG, "--attempts", "3", "--concurrency", "2",
                         "--json")
    wait_until(lambda: cases_running(harness, 2), what="two Cases running")
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert json.loads(stdout)["state"] == "cancelled"
    job = load(harness)
    cancelled = [t for t in job.trials if t.status == "cancelled"]
    assert len(cancelled) == 2 and [t.status for t in job.trials].count("pending") == 1
    for t in cancelled:
        assert harness.report(harness.runs_root / t.run_id)["status"] == "cancelled"
    mode(harness, "good")
    code, out = harness.run_json("job", "--resume", job.job_id, timeout=300)
    assert code == 0 and out["state"] == "finished"
    resumed = load(harness)
    assert all(t.status == "passed" for t in resumed.trials)
    for before, after in zip(job.trials, resumed.trials, strict=True):
        if before.status == "cancelled":
            assert after.previous_runs == [before.run_id]
            manifest = json.loads((harness.runs_root / after.run_id / "manifest.json")
                                  .read_text())
            assert manifest["retry_of"] == before.run_id
    # nothing left to run: a second resume starts no run
    runs = len(list_runs(harness.runs_root))
    assert harness.run_json("job", "--resume", job.job_id)[0] == 0
    assert len(list_runs(harness.runs_root)) == runs


def test_a_job_killed_with_sigkill_is_resumable(harness: Harness) -> None:
    mode(harness, "hang")
    proc = harness.start("job", "--task", SLUG, "--attempts", "2", "--concurrency", "2")
    wait_until(lambda: cases_running(harness, 2), what="two Cases running")
    proc.kill()
    proc.wait(timeout=10)
    # the trials' harnesses learn of it (PDEATHSIG) and each writes a cancelled report
    job = load(harness)
    wait_until(lambda: all((harness.runs_root / t.run_id / "report.json").exists()
                           for t in job.trials), timeout=60, what="cancelled reports")
    listed = json.loads(harness.run("jobs", "--json").stdout)
    assert listed[0]["state"] == "interrupted"
    mode(harness, "good")
    code, out = harness.run_json("job", "--resume", str(job_file(harness).parent),
                                 timeout=300)
    assert code == 0, out
    assert [t.status for t in load(harness).trials] == ["passed", "passed"]


def test_a_job_held_by_another_process_is_not_resumed(harness: Harness) -> None:
    mode(harness, "hang")
    proc = harness.start("job", "--task", SLUG)
    try:
        wait_until(lambda: cases_running(harness, 1), what="the Case running")
        before = job_file(harness).read_bytes()
        again = harness.run("job", "--resume", load(harness).job_id)
        assert again.returncode == 2 and "another process" in again.stderr
        assert job_file(harness).read_bytes() == before
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)


# -- bad input ----------------------------------------------------------------------------


@pytest.mark.parametrize("args", [
    ["--task", "no-such-task"], ["--attempts", "0"], ["--concurrency", "0"],
    ["--concurrency", "-3"], ["--timeout", "nan"], ["--name", "../up"],
    ["--resume", "not-a-job"], ["--task", SLUG, "--task", SLUG],
], ids=["unknown-task", "attempts-0", "concurrency-0", "concurrency-neg", "timeout-nan",
        "name", "resume-nothing", "task-twice"])
def test_bad_arguments_are_one_line_and_exit_2(harness: Harness, args: list[str]) -> None:
    proc = harness.run("job", *args)
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert not (harness.runs_root / "jobs").exists() or \
        not list((harness.runs_root / "jobs").iterdir())


def test_tasks_folder_that_is_a_file(harness: Harness, tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("")
    proc = harness.run("job", "--tasks", str(afile))
    assert proc.returncode == 2 and "is a file" in proc.stderr


def test_resume_of_a_run_folder_is_not_a_job(harness: Harness) -> None:
    _, out = harness.run_json("run", "--engine", "fake")
    proc = harness.run("job", "--resume", out["run_dir"])
    assert proc.returncode == 2 and "not a job" in proc.stderr


@pytest.mark.parametrize("edit", [
    lambda text: text[: len(text) // 2],
    lambda text: text.replace('"attempts": 1', '"attempts": 0'),
    lambda text: text.replace('"status": "passed"', '"status": "maybe"'),
], ids=["cut-short", "attempts-0", "bad-status"])
def test_a_hand_edited_job_is_refused_and_left_as_it_is(harness: Harness, edit) -> None:  # type: ignore[no-untyped-def]
    code, _ = harness.run_json("job", "--task", SLUG, timeout=300)
    assert code == 0
    path = job_file(harness)
    edited = edit(path.read_text())
    path.write_text(edited)
    runs = sorted(p.name for p in harness.runs_root.iterdir())
    proc = harness.run("job", "--resume", path.parent.name)
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "job.json" in proc.stderr
    assert path.read_text() == edited
    assert sorted(p.name for p in harness.runs_root.iterdir()) == runs
    listed = json.loads(harness.run("jobs", "--json").stdout)
    assert listed[0]["state"] == "unreadable" and "job.json" in listed[0]["problem"]


def test_combining_resume_with_a_new_config_is_refused(harness: Harness) -> None:
    proc = harness.run("job", "--resume", "x", "--attempts", "3")
    assert proc.returncode == 2 and "--attempts" in proc.stderr


def test_a_job_blocked_by_readiness_starts_no_trial(harness: Harness) -> None:
    del harness.env["CTO_HARNESS_CASE_LOCAL_BASE_URL"]
    proc = harness.run("job", "--task", SLUG, "--attempts", "2")
    assert proc.returncode == 3 and "endpoint_config" in proc.stderr
    assert not harness.runs_root.exists() or not list(harness.runs_root.iterdir())


# -- gates ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_gates_take_a_jobs_accepted_trial_as_evidence(harness: Harness, tmp_path: Path) -> None:
    """A job's trials are runs: one accepted (real model, admitted, no fallback,
    discriminating baseline) proves stage2-pass as a lone run does; a demo job's never."""
    sot = tmp_path / "planning" / "plan.md"
    sot.parent.mkdir()
    shutil.copyfile(SEED, sot)
    code, demo = harness.run_json("job", "--demo", "--task", SLUG, timeout=300)
    assert code == 0 and demo["summary"]["passes"] == 1
    report = json.loads(harness.run("gates", str(sot), "--json").stdout)
    items = {i["id"]: i for i in report["items"]}
    assert items["CTO-WORK-030"]["could_be"] == "still blocked", "a demo trial proves nothing"
    code, real = harness.run_json("job", "--task", SLUG, "--attempts", "2", "--concurrency",
                                  "2", "--name", "real", timeout=300)
    assert code == 0 and real["summary"]["passes"] == 2
    trial_runs = {t.run_id for t in Job.model_validate_json(
        (Path(real["job_dir"]) / "job.json").read_text()).trials}
    report = json.loads(harness.run("gates", str(sot), "--json").stdout)
    items = {i["id"]: i for i in report["items"]}
    assert items["CTO-WORK-030"]["could_be"] == "unblockable"
    assert items["CTO-WORK-030"]["proven_by"]["stage2-pass"] in trial_runs


def test_a_broken_task_in_the_folder_is_skipped_with_its_line(harness: Harness,
                                                              tmp_path: Path) -> None:
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    shutil.copytree(BUNDLED_TASKS_DIR / SLUG, tasks / SLUG)
    shutil.copytree(BUNDLED_TASKS_DIR / SLUG, tasks / "broken")
    (tasks / "broken" / "task.json").write_text('{"id": "broken"}')
    shutil.rmtree(tasks / "broken" / "checks")
    proc = harness.run("job", "--tasks", str(tasks), "--json", timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert [t["task"] for t in out["summary"]["tasks"]] == [SLUG]
    [skipped] = out["skipped_tasks"]
    assert str(tasks / "broken") in skipped and "field checks" in skipped
    assert "skipped:" in proc.stderr and "field checks" in proc.stderr
    assert load(harness).config.tasks_dir == str(tasks)
