"""Runs and jobs the real harness makes, for the dashboard's snapshots and the README's
screenshots: `cto-harness run` and `cto-harness job` as processes, the test Case against the
scripted endpoint, nothing hand-written (issue 21: fixtures that lied about a file's path drew
a Baseline tab no real run ever showed).

`make_real_runs` makes them (about a minute); `steady_copy` (tests/support/steady.py) then
gives each the same ids, times and paths on every machine, for a snapshot to compare.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

from core.evidence.keys import KEY_FILE_VAR
from core.standins.endpoint import ScriptedEndpoint, tool_then_answer
from tests.support.harness import CASE, HOSTED_VARS, QWEN, ROOT, Harness, answer
from tests.support.signing import harness_setting

TASK = "r1-string-slugify"
JOB_TASKS = ("r1-string-slugify", "r2-fix-roman-numerals")
RUNS = ("passed", "failed", "tripped", "blocked", "cancelled", "interrupted", "tools")
"""What `make_real_runs` makes, oldest first: the order the Runs screen lists them in."""

TOOL_SOLUTION = 'def slugify(text: str) -> str:\n    return "-".join(text.lower().split())\n'
TOOL_FINAL = "Done: slugify.py now passes."
CASE_ARGS = "--mode {mode} --task-file {{task_file}} --workspace {{workspace}} --model {{model}}"


def _harness(base: Path, upstream: ScriptedEndpoint) -> Harness:
    """The suite's harness fixture's environment, built once for the session."""
    admission = base / "admission.json"
    admission.write_text(json.dumps({"admitted": [
        {"provider": "qwen-local", "model": QWEN, "status": "admitted", "expires": None}]}))
    env = {k: v for k, v in os.environ.items()
           if not harness_setting(k) and k not in HOSTED_VARS}
    env.update({
        "CTO_HARNESS_CASE_LOCAL_BASE_URL": upstream.base_url,
        "CTO_HARNESS_CASE_BIN": str(CASE),
        "CTO_HARNESS_CASE_MODEL_ADMISSION_FILE": str(admission),
        "CTO_HARNESS_RUNS_ROOT": str(base / "runs"),
        KEY_FILE_VAR: os.environ[KEY_FILE_VAR],
        "PYTHONPATH": str(ROOT),
    })
    return Harness(env=env, runs_root=base / "runs")


def _wait_for_log(run_dirs: set[Path], root: Path, text: str) -> Path:
    """The new run directory once its case.log holds `text` (the Case reached that point)
    and its one exchange is recorded (so a run stopped now always has it)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        for run_dir in set(root.glob("*T*Z-*")) - run_dirs:
            log = run_dir / "backend" / "case.log"
            index = run_dir / "backend" / "exchanges" / "index.jsonl"
            if log.is_file() and text in log.read_text(errors="replace") \
                    and index.is_file() and index.read_text().endswith("\n"):
                return run_dir
        time.sleep(0.05)
    raise AssertionError(f"no new run's case.log said {text!r} within 120 s")


def _one(harness: Harness, mode: str, *args: str) -> Path:
    harness.env["CTO_HARNESS_CASE_ARGS"] = CASE_ARGS.format(mode=mode)
    code, out = harness.run_json("run", "--task", TASK, *args, timeout=300)
    assert code in (0, 1, 3), out
    return Path(out["run_dir"])


def _stopped(harness: Harness, mode: str, text: str, sig: signal.Signals) -> Path:
    """A run stopped by `sig` once its Case printed `text`: SIGINT is Ctrl-C (the harness
    cancels and reports), SIGKILL leaves a run with no report (interrupted)."""
    harness.env["CTO_HARNESS_CASE_ARGS"] = CASE_ARGS.format(mode=mode)
    before = set(harness.runs_root.glob("*"))
    proc = harness.start("run", "--task", TASK, "--json")
    try:
        run_dir = _wait_for_log(before, harness.runs_root, text)
        proc.send_signal(sig)
        proc.communicate(timeout=60)
    finally:
        proc.kill()
        proc.wait(30)
    return run_dir


def _cut_job(harness: Harness) -> Path:
    """A job whose harness was killed while its one trial's Case waited: the job reads
    `interrupted` (its harness is gone), and so does the trial, whose harness is killed
    too (nothing else would end it: the Case waits for a file no one writes)."""
    harness.env["CTO_HARNESS_CASE_ARGS"] = CASE_ARGS.format(mode="wait")
    before = set(harness.runs_root.glob("*"))
    jobs_before = set((harness.runs_root / "jobs").glob("*"))
    proc = harness.start("job", "--name", "cut", "--task", TASK)
    try:
        trial = _wait_for_log(before, harness.runs_root, "case: waiting")
        pid = json.loads((trial / "manifest.json").read_text())["harness_pid"]
        # stopped first, so that neither sees the other go: the job would record its
        # trial's end, the trial would cancel (and report) on its job's
        proc.send_signal(signal.SIGSTOP)
        os.kill(pid, signal.SIGKILL)
        proc.kill()
        proc.wait(30)
    finally:
        proc.kill()
        proc.communicate(timeout=30)
    (job,) = set((harness.runs_root / "jobs").glob("*")) - jobs_before
    return job


def make_real_runs(base: Path) -> dict[str, Path]:
    """Under `base/runs`: one run of each kind in RUNS, and two jobs over JOB_TASKS: `job-a`
    a demo job (the demo endpoint and Case, as the README's quick start), `job-b` the test
    Case writing the naive solution (so the two compare with a difference), `job-cut` a job
    killed mid-trial. Every file written by `cto-harness` itself."""
    base.mkdir(parents=True, exist_ok=True)
    made: dict[str, Path] = {}
    with ScriptedEndpoint(responder=answer, model_id=QWEN) as upstream:
        harness = _harness(base, upstream)
        harness.runs_root.mkdir()
        made["passed"] = _one(harness, "binary")  # a Case printing escapes: shown inert
        made["failed"] = _one(harness, "naive")
        made["tripped"] = _one(harness, "claude")  # asks a hosted model: refused, tripped
        blocked = Harness(env={k: v for k, v in harness.env.items()
                               if k != "CTO_HARNESS_CASE_LOCAL_BASE_URL"},
                          runs_root=harness.runs_root)
        made["blocked"] = _one(blocked, "good")
        made["cancelled"] = _stopped(harness, "wait", "case: waiting", signal.SIGINT)
        made["interrupted"] = _stopped(harness, "wait", "case: waiting", signal.SIGKILL)
        upstream.responder = tool_then_answer(  # a tool loop: the Conversation tab's steps
            "write_file", {"path": "slugify.py", "content": TOOL_SOLUTION}, TOOL_FINAL)
        made["tools"] = _one(harness, "tools")
        upstream.responder = answer
        tasks = [a for t in JOB_TASKS for a in ("--task", t)]
        code, out = harness.run_json("job", "--demo", "--name", "demo", *tasks, timeout=600)
        assert code in (0, 1), out
        made["job-a"] = harness.runs_root / "jobs" / out["job_id"]
        harness.env["CTO_HARNESS_CASE_ARGS"] = CASE_ARGS.format(mode="naive")
        code, out = harness.run_json("job", "--name", "naive", *tasks, timeout=600)
        assert code in (0, 1), out
        made["job-b"] = harness.runs_root / "jobs" / out["job_id"]
        made["job-cut"] = _cut_job(harness)
    return made
