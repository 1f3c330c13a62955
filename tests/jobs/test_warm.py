"""A job's warm launcher (core/jobs/warm.py, core/cli/warm.py): trials forked from one
process that has the harness imported, each still a run of its own. Real jobs, real
processes, the real sandbox: cancel mid-job, a trial's process killed, the launcher killed,
and a hostile Case that goes looking for the launcher."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

from tests.jobs.test_jobs import SLUG, cases_running, load, mode, wait_until
from tests.support.case_runs import processes
from tests.support.harness import Harness


def _children(pid: int) -> dict[int, list[bytes]]:
    """The processes whose parent is `pid`, with their argv."""
    return {child: argv for child, (ppid, argv) in processes().items() if ppid == pid}


def launcher_of(job_pid: int) -> int:
    found = [pid for pid, argv in _children(job_pid).items() if b"core.cli.warm" in argv]
    assert len(found) == 1, _children(job_pid)
    return found[0]


def running_trials(harness: Harness) -> dict[str, int]:
    """run id -> the pid of its harness (the manifest's), for the trials running now."""
    job = load(harness)
    return {t.run_id: json.loads((harness.runs_root / t.run_id / "manifest.json")
                                 .read_text())["harness_pid"]
            for t in job.trials if t.status == "running" and t.run_id}


def test_trials_are_forked_from_the_launcher_and_cancel_ends_them(harness: Harness) -> None:
    """Each trial in flight is the launcher's child, a process of its own (its own pid, so
    its own run folder and sandbox uid); Ctrl-C on the job reaches each one, which writes
    its `cancelled` report, and --resume completes the job."""
    mode(harness, "hang")
    proc = harness.start("job", "--task", SLUG, "--attempts", "3", "--concurrency", "2",
                         "--json")
    wait_until(lambda: cases_running(harness, 2), what="two Cases running")
    launcher = launcher_of(proc.pid)
    trials = running_trials(harness)
    assert len(set(trials.values())) == 2
    forked = _children(launcher)
    assert set(trials.values()) <= set(forked), (trials, forked)
    for run_id, pid in trials.items():
        assert run_id.endswith(f"-{pid}")  # the run is named after its own process
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "warm launcher" not in stderr, stderr
    job = load(harness)
    assert sorted(t.status for t in job.trials) == ["cancelled", "cancelled", "pending"]
    for t in job.trials:
        if t.status == "cancelled":
            assert harness.report(harness.runs_root / t.run_id)["status"] == "cancelled"
    wait_until(lambda: not Path(f"/proc/{launcher}").exists(), timeout=30,
               what="the launcher to leave with its job")
    mode(harness, "good")
    code, out = harness.run_json("job", "--resume", job.job_id, timeout=300)
    assert code == 0 and out["state"] == "finished", out
    assert [t.status for t in load(harness).trials] == ["passed"] * 3


def test_a_trial_whose_process_dies_is_interrupted_and_resumable(harness: Harness) -> None:
    """SIGKILL on one trial's harness (forked from the launcher): no report, so the trial is
    `interrupted` (the infrastructure's, not the agent's), the job goes on with the others,
    and --resume runs it again."""
    mode(harness, "hang")
    proc = harness.start("job", "--task", SLUG, "--attempts", "1", "--json")
    wait_until(lambda: cases_running(harness, 1), what="the Case running")
    [(run_id, pid)] = running_trials(harness).items()
    os.kill(pid, signal.SIGKILL)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 1, stderr  # a trial still needs a run
    [trial] = load(harness).trials
    assert trial.status == "interrupted" and trial.run_id == run_id, trial
    assert trial.failure_class == "infrastructure"
    assert not (harness.runs_root / run_id / "report.json").exists()
    mode(harness, "good")
    code, out = harness.run_json("job", "--resume", load(harness).job_id, timeout=300)
    assert code == 0, out
    [again] = load(harness).trials
    assert again.status == "passed" and again.previous_runs == [run_id]


def test_a_dead_launcher_leaves_its_trials_resumable_and_the_job_goes_on(
        harness: Harness) -> None:
    """The launcher killed outright: its trials in flight learn of it (PDEATHSIG) and write
    their `cancelled` reports; the trial after starts as a fresh interpreter, said on
    stderr; everything left is resumable."""
    mode(harness, "hang")
    proc = harness.start("job", "--task", SLUG, "--attempts", "3", "--concurrency", "2",
                         "--json")
    wait_until(lambda: cases_running(harness, 2), what="two Cases running")
    first = set(running_trials(harness))
    os.kill(launcher_of(proc.pid), signal.SIGKILL)
    wait_until(lambda: all((harness.runs_root / r / "report.json").exists() for r in first),
               timeout=60, what="the orphaned trials' cancelled reports")
    # the third trial, started cold: the job's own child running `run`
    wait_until(lambda: any(b"--job-id" in argv for argv in _children(proc.pid).values()),
               timeout=60, what="the third trial started as a fresh interpreter")
    wait_until(lambda: cases_running(harness, 1), what="its Case running")
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "warm launcher is gone" in stderr, stderr
    job = load(harness)
    assert [t.status for t in job.trials] == ["cancelled"] * 3, job.trials
    for r in first:
        assert harness.report(harness.runs_root / r)["status"] == "cancelled"
    mode(harness, "good")
    code, out = harness.run_json("job", "--resume", job.job_id, timeout=300)
    assert code == 0 and [t.status for t in load(harness).trials] == ["passed"] * 3, out


HOSTILE = r'''#!/usr/bin/env python3
"""Goes for what the warm launcher holds: finds every process it can see, tries to write
its memory and into the harness's install, says what it reached, then kills all it can."""
import json, os, signal, sys
me, seen, reached = os.getpid(), {}, []
for name in os.listdir("/proc"):
    if name.isdigit() and int(name) != me:
        try:
            with open(f"/proc/{name}/cmdline", "rb") as fh:
                seen[name] = fh.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            seen[name] = "?"
        try:
            with open(f"/proc/{name}/mem", "r+b", buffering=0):
                reached.append(f"mem {name}")
        except OSError:
            pass
try:
    with open(os.path.join(sys.prefix, "planted-by-the-case"), "w"):
        reached.append("install")
except OSError:
    pass
with open(os.path.join(os.environ["CTO_HARNESS_WORKSPACE"], "seen.json"), "w") as fh:
    json.dump({"seen": seen, "reached": reached}, fh)
for name in seen:
    try:
        os.kill(int(name), signal.SIGKILL)
    except OSError:
        pass
'''


def test_a_hostile_case_cannot_reach_the_launcher_or_a_sibling(harness: Harness,
                                                               tmp_path: Path) -> None:
    """The launcher, the job and every sibling trial are out of a Case's sight (its own PID
    namespace) and out of its reach; each trial after a hostile one runs as before."""
    tmp_path.chmod(0o755)  # pytest makes it 0700; as root the Case runs as another uid
    agent = tmp_path / "agent"
    agent.mkdir(mode=0o755)
    case = agent / "hostile"
    case.write_text(HOSTILE)
    case.chmod(0o755)
    harness.env["CTO_HARNESS_CASE_BIN"] = str(case)
    harness.env["CTO_HARNESS_CASE_ARGS"] = ""
    proc = harness.start("job", "--task", SLUG, "--attempts", "4", "--concurrency", "2",
                         "--json")
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    assert "warm launcher" not in stderr, stderr  # one launcher served every trial
    job = load(harness)
    assert [t.status for t in job.trials] == ["failed"] * 4  # ran, checked, unsolved
    for t in job.trials:
        report = harness.report(harness.runs_root / t.run_id)
        assert report["checks"]["ran"] and report["baseline"]["status"], t
        seen = json.loads((harness.runs_root / t.run_id / "workspace" / "seen.json")
                          .read_text())
        # only its own sandbox's processes (bwrap's init, the relay's forwarder): never the
        # launcher, the job, or a sibling trial's harness
        assert all(int(pid) < 10 for pid in seen["seen"]), seen  # its own PID namespace
        assert not any("core.cli" in argv.split(" -- ")[0] for argv in seen["seen"].values()), \
            seen
        assert "install" not in seen["reached"], seen
        assert not any(r.startswith("mem") for r in seen["reached"]), seen
    assert not Path(sys.prefix, "planted-by-the-case").exists()


def test_a_launcher_that_is_none_is_one_line_and_exit_2(harness: Harness) -> None:
    harness.env["CTO_HARNESS_JOB_LAUNCHER"] = "lukewarm"
    proc = harness.run("job", "--task", SLUG)
    assert proc.returncode == 2, proc.stderr
    [line] = proc.stderr.strip().splitlines()
    assert "CTO_HARNESS_JOB_LAUNCHER" in line and "'lukewarm'" in line, line
    assert not (harness.runs_root / "jobs").exists()


def test_a_cold_job_starts_each_trial_as_a_fresh_interpreter(harness: Harness) -> None:
    """CTO_HARNESS_JOB_LAUNCHER=cold: no launcher; each trial is the job's own child."""
    mode(harness, "hang")
    harness.env["CTO_HARNESS_JOB_LAUNCHER"] = "cold"
    proc = harness.start("job", "--task", SLUG, "--attempts", "1", "--json")
    wait_until(lambda: cases_running(harness, 1), what="the Case running")
    children = _children(proc.pid)
    assert not any(b"core.cli.warm" in argv for argv in children.values()), children
    assert set(running_trials(harness).values()) <= set(children)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert [t.status for t in load(harness).trials] == ["cancelled"]
