"""The harness end to end: `cto-harness run` as a process, a real test Case, a real upstream.

One named test per CTO-WORK-030 acceptance line a run can prove, then the hostile cases.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from core.evidence.check_cases import check_pairs
from core.evidence.validate import validate_run
from core.standins.endpoint import ScriptedEndpoint
from tests.support.case_runs import (
    events,
    mode,
    pids_with,
    wait_for_case,
)
from tests.support.harness import CASE, QWEN, ROOT, Harness, all_bytes


def secret_forms(url: str) -> list[str]:
    bare = url.split("://", 1)[1]
    return [url, bare, bare.split("/", 1)[0], quote(url, safe=""),
            base64.b64encode(url.encode()).decode().rstrip("=")]


def assert_nowhere(root: Path, url: str) -> None:
    for path, data in all_bytes(root):
        for form in secret_forms(url):
            assert form.encode() not in data, f"a form of the endpoint is in {path}"


# -- CTO-WORK-030, one test per acceptance line ----------------------------------------


def test_acceptance_endpoint_supplied_at_runtime_and_used(harness: Harness) -> None:
    code, out = harness.run_json("run", "--profile", "case-qwen")
    report = harness.report(out["run_dir"])
    assert report["endpoint_configured"] is True
    assert report["relay"]["forwarded"] >= 1
    assert code == 0, report["reasons"]
    assert out["status"] == "passed"


def test_acceptance_missing_config_blocks_before_case_process_started(
    harness: Harness, tmp_path: Path
) -> None:
    del harness.env["CTO_HARNESS_CASE_LOCAL_BASE_URL"]
    touched = tmp_path / "case-was-executed"
    spy = tmp_path / "spy-case"
    spy.write_text(f"#!/bin/sh\ntouch {touched}\n")
    spy.chmod(0o755)
    harness.env["CTO_HARNESS_CASE_BIN"] = str(spy)
    code, out = harness.run_json("run")
    assert code == 3 and out["status"] == "blocked"
    names = events(harness, out["run_dir"])
    assert "run_blocked" in names and "case_process_started" not in names
    assert names[-2:] == ["report_written", "run_finished"]
    assert not touched.exists(), "the Case binary ran although the run was blocked"
    assert harness.report(out["run_dir"])["case_process_started"] is False


def test_acceptance_missing_config_writes_unavailable_marker(harness: Harness) -> None:
    del harness.env["CTO_HARNESS_CASE_LOCAL_BASE_URL"]
    _, out = harness.run_json("run")
    marker = Path(out["run_dir"]) / "backend" / "provider-local-config-unavailable.txt"
    text = marker.read_text()
    assert "CTO_HARNESS_CASE_LOCAL_BASE_URL" in text
    assert "CTO_HARNESS_CASE_LOCAL_BASE_URL_FILE" in text
    assert "127.0.0.1" not in text


def test_acceptance_endpoint_values_not_written_anywhere(
    harness: Harness, upstream: ScriptedEndpoint
) -> None:
    mode(harness, "envdump")
    _, out = harness.run_json("run")
    run_dir = Path(out["run_dir"])
    assert (run_dir / "backend" / "case.log").stat().st_size > 0
    trace = harness.trace(run_dir)
    argv = next(e for e in trace if e["event"] == "case_process_started")["argv"]
    assert upstream.base_url not in " ".join(argv)
    assert_nowhere(harness.runs_root, upstream.base_url)
    # The Case's own view of its environment shows the relay, never the endpoint.
    log = (run_dir / "backend" / "case.log").read_text()
    assert "env OPENAI_BASE_URL=http://127.0.0.1:" in log
    assert "ANTHROPIC_API_KEY" not in log and "ANTHROPIC_BASE_URL" not in log


def test_acceptance_endpoint_not_written_even_when_upstream_echoes_it(
    harness: Harness, upstream: ScriptedEndpoint
) -> None:
    """The upstream's error page quotes the URL it was called on; readiness sees it first."""
    upstream.fail_status = 500
    code, out = harness.run_json("run", "--no-baseline")
    assert code == 3
    readiness = json.loads((Path(out["run_dir"]) / "backend" / "readiness.json").read_text())
    assert any("500" in c["detail"] for c in readiness["checks"])
    assert_nowhere(harness.runs_root, upstream.base_url)


def test_acceptance_report_proves_provider_model_and_admission(harness: Harness) -> None:
    _, out = harness.run_json("run")
    report = harness.report(out["run_dir"])
    assert report["case_model_provider"] == "qwen-local"
    assert report["case_model"] == QWEN
    assert report["case_model_admission_status"] == "admitted"
    assert report["relay"]["models_seen"] == [QWEN]
    ledger = (Path(out["run_dir"]) / "backend" / "relay.jsonl").read_text().splitlines()
    assert {json.loads(line)["model_answered"] for line in ledger} == {QWEN}


def test_acceptance_report_proves_no_fallback(harness: Harness) -> None:
    _, out = harness.run_json("run")
    report = harness.report(out["run_dir"])
    assert report["fallback_detected"] is False
    assert report["guard_state"] == "clear"
    assert not any("claude" in m or "anthropic" in m for m in report["relay"]["models_seen"])


def test_acceptance_stage2_pass_evidence_only_through_evidence_interface(
    harness: Harness,
) -> None:
    _, out = harness.run_json("run")
    result = validate_run(Path(out["run_dir"]))
    assert result.ok and result.stage2_pass_evidence, result.problems
    code, cli = harness.run_json("validate", out["run_dir"])
    assert code == 0 and cli["stage2_pass_evidence"] is True
    # The same claim without the evidence interface intact is refused, naming the file.
    log = Path(out["run_dir"]) / "backend" / "case.log"
    log.write_text(log.read_text() + "edited afterwards\n")
    code, cli = harness.run_json("validate", out["run_dir"])
    assert code == 1 and cli["stage2_pass_evidence"] is False
    assert any("backend/case.log" in p for p in cli["problems"])


def test_acceptance_same_run_baseline_required_for_pass(harness: Harness) -> None:
    code, out = harness.run_json("run", "--no-baseline")
    report = harness.report(out["run_dir"])
    assert code == 1 and report["status"] == "failed"
    assert report["checks"]["passed"] == report["checks"]["total"] > 0
    assert any("baseline" in r for r in report["reasons"])
    _, out = harness.run_json("run")
    report = harness.report(out["run_dir"])
    assert report["baseline"]["status"] == "failed"
    assert report["comparison"]["discriminating"] is True
    assert (Path(out["run_dir"]) / "baseline" / "workspace" / "slugify.py").exists()
    # check by check, as the Baseline tab reads them from the files the checks wrote
    pairs = check_pairs(Path(out["run_dir"]))
    assert len(pairs) == report["checks"]["total"]
    assert all(real == "passed" for _, real, _ in pairs)
    assert any(fake == "failed" for _, _, fake in pairs)


def test_a_pytest_left_in_the_workspace_cannot_forge_the_checks(harness: Harness) -> None:
    mode(harness, "forger")
    code, out = harness.run_json("run")
    report = harness.report(out["run_dir"])
    assert (Path(out["run_dir"]) / "workspace" / "pytest.py").exists()
    assert code == 1 and report["status"] == "failed"
    assert report["checks"]["ran"] and report["checks"]["failed"] > 0, report["checks"]


def test_folders_the_case_plants_for_checks_and_baseline_are_replaced(
        harness: Harness) -> None:
    """Without the sandbox (the opt-out) the Case can write beside its workspace; the
    folders the harness fills afterwards are still made afresh. (In the sandbox it cannot
    even get there: tests/sandbox/test_sandbox_attacks.py.)"""
    harness.env["CTO_HARNESS_CASE_SANDBOX"] = "off"
    mode(harness, "planter")
    code, out = harness.run_json("run")
    run_dir = Path(out["run_dir"])
    report = harness.report(out["run_dir"])
    log = (run_dir / "backend" / "case.log").read_text()
    outside = Path(log.split("case: planted ", 1)[1].split()[0])
    try:
        assert list(outside.iterdir()) == [], "nothing is written through a planted link"
        assert not (run_dir / "baseline").is_symlink()
        assert not (run_dir / "checks" / "tests" / "conftest.py").exists()
        assert code == 1 and report["status"] == "failed"
        assert report["checks"]["failed"] > 0, report["checks"]
    finally:
        shutil.rmtree(outside, ignore_errors=True)


# -- a Case that asks no model (the guard itself: tests/run/test_guard.py) -------------


def test_case_that_asks_no_model_is_unproven_and_cannot_pass(harness: Harness) -> None:
    mode(harness, "silent")
    code, out = harness.run_json("run")
    report = harness.report(out["run_dir"])
    assert report["checks"]["passed"] == report["checks"]["total"]
    assert report["guard_state"] == "unproven" and code == 1


# -- bad input: a clear error or a clean status, nothing lost, no traceback -------------


@pytest.mark.parametrize(
    ("setup", "needle"),
    [
        (lambda h, t: h.env.update(CTO_HARNESS_CASE_BIN=str(t / "nope")), "case_bin"),
        (lambda h, t: h.env.update(CTO_HARNESS_CASE_LOCAL_BASE_URL="spark.lan:8000/v1"),
         "endpoint_config"),
        (lambda h, t: h.env.update(CTO_HARNESS_CASE_LOCAL_BASE_URL="http://127.0.0.1:9/v1"),
         "endpoint_reachable"),
        (lambda h, t: h.env.update(CTO_HARNESS_CASE_MODEL="claude-sonnet-4-6"), "admission"),
    ],
    ids=["missing-bin", "malformed-url", "unreachable", "not-admitted"],
)
def test_preflight_problems_block_with_reason(harness, tmp_path, setup, needle) -> None:
    setup(harness, tmp_path)
    code, out = harness.run_json("run")
    assert code == 3 and out["status"] == "blocked"
    assert any(r.startswith(needle) for r in out["reasons"]), out["reasons"]
    assert "case_process_started" not in events(harness, out["run_dir"])


def test_non_executable_bin_blocks(harness: Harness, tmp_path: Path) -> None:
    plain = tmp_path / "case-not-executable"
    plain.write_text(CASE.read_text())
    plain.chmod(stat.S_IRUSR | stat.S_IWUSR)
    harness.env["CTO_HARNESS_CASE_BIN"] = str(plain)
    code, out = harness.run_json("run")
    assert code == 3 and any("executable" in r for r in out["reasons"])


def test_malformed_admission_file_is_named(harness: Harness, admission: Path) -> None:
    admission.write_text('{"admitted": [ {"provider": "qwen-local",, }]}')
    code, out = harness.run_json("run")
    assert code == 3
    assert any(str(admission) in r and "line 1" in r for r in out["reasons"]), out["reasons"]


def test_endpoint_returning_garbage_fails_cleanly(harness, upstream) -> None:
    upstream.garbage = True
    code, out = harness.run_json("run", "--no-baseline")
    assert code == 3 and out["status"] == "blocked"  # readiness sees it before the Case runs


def test_bad_args_template_is_a_clear_block(harness: Harness) -> None:
    harness.env["CTO_HARNESS_CASE_ARGS"] = "--url {endpoint}"
    code, out = harness.run_json("run")
    assert code == 3 and any("placeholder" in r for r in out["reasons"])


def test_unknown_task_is_usage_error(harness: Harness) -> None:
    proc = harness.run("run", "--task", "no-such-task")
    assert proc.returncode == 2 and "unknown task" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_hanging_case_times_out_and_still_reports(harness: Harness) -> None:
    mode(harness, "hang")
    t0 = time.monotonic()
    code, out = harness.run_json("run", "--no-baseline", "--timeout", "2")
    assert time.monotonic() - t0 < 30
    assert code == 1 and out["status"] == "timed_out"
    assert harness.report(out["run_dir"])["case_exit_code"] is not None


def test_non_utf8_output_is_kept_readable(harness: Harness) -> None:
    mode(harness, "binary")
    code, out = harness.run_json("run")
    assert code == 0, out["reasons"]
    log = (Path(out["run_dir"]) / "backend" / "case.log").read_bytes()
    text = log.decode("utf-8")  # valid UTF-8 on disk
    assert "bad bytes: \ufffd" in text and "end" in text


def test_ctrl_c_cancels_the_whole_tree_and_writes_a_report(harness: Harness) -> None:
    mode(harness, "orphan")
    proc = harness.start("run", "--no-baseline", "--json")
    run_dir = wait_for_case(harness)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130, stderr
    assert json.loads(stdout)["status"] == "cancelled"
    report = harness.report(run_dir)
    assert report["status"] == "cancelled"
    assert report["checks"]["detail"] == "the run ended (cancelled) before the checks"
    case_pid = next(e for e in harness.trace(run_dir)
                    if e["event"] == "case_process_started")["pid"]
    assert [p for p in pids_with("time.sleep(3600)") if os.getpgid(p) == case_pid] == []


def test_fake_engine_run_is_never_evidence(harness: Harness) -> None:
    code, out = harness.run_json("run", "--engine", "fake")
    assert code == 1
    report = harness.report(out["run_dir"])
    assert report["stage2_passed"] is False
    assert validate_run(Path(out["run_dir"])).stage2_pass_evidence is False


def test_retry_of_is_recorded(harness: Harness) -> None:
    _, first = harness.run_json("run", "--engine", "fake")
    _, second = harness.run_json("run", "--engine", "fake", "--retry-of", first["run_id"])
    manifest = json.loads((Path(second["run_dir"]) / "manifest.json").read_text())
    assert manifest["retry_of"] == first["run_id"]


def test_trace_events_follow_the_documented_order(harness: Harness) -> None:
    _, out = harness.run_json("run")
    names = [n for n in events(harness, out["run_dir"]) if n not in ("guard_tripped",)]
    assert names == [
        "run_started", "config_resolved", "readiness_checked", "admission_checked",
        "relay_started", "case_process_started", "case_process_exited", "baseline_started",
        "checks_completed", "baseline_completed", "guard_verdict", "report_written",
        "run_finished",
    ]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=["TERM", "HUP"])
def test_terminate_or_hangup_cancels_and_reports(harness: Harness, sig: int) -> None:
    mode(harness, "hang")
    proc = harness.start("run", "--no-baseline", "--json")
    run_dir = wait_for_case(harness)
    proc.send_signal(sig)
    stdout, _ = proc.communicate(timeout=30)
    assert proc.returncode == 130 and json.loads(stdout)["status"] == "cancelled"
    assert harness.report(run_dir)["status"] == "cancelled"


@contextlib.contextmanager
def write_lease(path: Path) -> Iterator[Callable[[], bool]]:
    """A write lease on `path` (fcntl F_SETLEASE): another process's open() of it waits
    until the lease is released (a non-blocking open fails with EWOULDBLOCK until then; the
    kernel ends the lease after lease-break-time, 45 s by default). Yields whether someone
    has tried to open it since, i.e. the lease is being broken."""
    previous = signal.signal(signal.SIGIO, signal.SIG_IGN)  # the break's notice; default kills
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_WRLCK)
        yield lambda: fcntl.fcntl(fd, fcntl.F_GETLEASE) != fcntl.F_WRLCK
    finally:
        with contextlib.suppress(OSError):
            fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_UNLCK)
        os.close(fd)
        signal.signal(signal.SIGIO, previous)


def test_ctrl_c_while_the_run_is_being_sealed_still_writes_the_report(
    harness: Harness,
) -> None:
    """Ctrl-C comes while the leak scan is reading the run's files: the scan, its scrub and
    the report still complete, and `--json` still prints its object. The test holds the
    scan itself: a file in the workspace under a write lease holds the scan at that file
    (it retries the open within its time budget), and the lease tells the test when the
    scan reached it, so the interrupt lands inside the sealing every time, not in a race
    against how long a scan takes."""
    proc = harness.start("run", "--engine", "fake", "--json")
    deadline = time.monotonic() + 30
    while not list(harness.runs_root.glob("*/workspace")) and time.monotonic() < deadline:
        time.sleep(0.005)
    run_dir = next(harness.runs_root.glob("*/workspace")).parent
    # Planted once the Case has exited: before it, the run copies its starting workspace
    # (task/workspace/), and that copy's open would take the lease meant for the scan.
    while ("case_process_exited" not in events(harness, str(run_dir))
           and proc.poll() is None and time.monotonic() < deadline + 60):
        time.sleep(0.005)
    held = run_dir / "workspace" / "held.bin"
    held.write_bytes(b"y" * 4096)
    with write_lease(held) as opened:
        while not opened() and proc.poll() is None and time.monotonic() < deadline + 60:
            time.sleep(0.005)
        assert opened(), "the harness ended without scanning the workspace"
        seen = events(harness, str(run_dir))
        assert "guard_verdict" in seen and "report_written" not in seen, seen  # sealing, held
        proc.send_signal(signal.SIGINT)
        time.sleep(0.2)  # the interrupt is delivered while the scan still waits on the file
        assert proc.poll() is None
    stdout, stderr = proc.communicate(timeout=60)
    assert json.loads(stdout)["run_dir"] == str(run_dir), stderr
    assert harness.report(run_dir)["status"] == "failed"  # what the fake run came to
    assert events(harness, str(run_dir))[-2:] == ["report_written", "run_finished"]




LATE_CTRL_C = """
import asyncio, json, signal, sys
from pathlib import Path
from core.cli.main import main

def late_ctrl_c(event):
    # Fired once the report is sealed: the run's own handlers are gone by the time the
    # loop runs this, so Python's default handler raises KeyboardInterrupt.
    if event["event"] == "run_finished":
        asyncio.get_running_loop().call_soon(signal.raise_signal, signal.SIGINT)

import core.cli.run_commands as commands
sealed_run = commands.run_sync
commands.run_sync = lambda *a: sealed_run(*a[:3], late_ctrl_c)
sys.exit(main(["run", "--engine", "fake", "--json"]))
"""


def test_a_ctrl_c_after_the_report_is_sealed_leaves_its_outcome_standing(
        harness: Harness) -> None:
    """The fake run fails its checks; a Ctrl-C landing as the loop closes, after the report
    was written, must not make `cto-harness run` exit 130 "cancelled" over a report that
    says `failed` (the exit code and the report disagreeing, as a loaded machine showed)."""
    env = {**harness.env, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", LATE_CTRL_C], env=env, capture_output=True,
                          text=True, timeout=120)
    assert "cancelled" not in proc.stderr, proc.stderr
    assert proc.stdout, proc.stderr
    out = json.loads(proc.stdout)
    assert (proc.returncode, out["status"]) == (1, "failed"), proc.stderr
    assert harness.report(out["run_dir"])["status"] == "failed"
