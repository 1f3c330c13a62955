"""Realistic run directories for the dashboard's tests, deterministic to the byte.

Each run is written the way the harness writes one (RunWriter's atomic JSON, a hash-chained
trace.jsonl, the documented events in order) but with fixed ids and timestamps, so the
snapshot tests see the same screen every time.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from core.evidence.attestation import sign_run
from core.evidence.liveness import process_start_ticks
from core.evidence.models import (
    GENESIS_HASH,
    BaselineOutcome,
    CaseSandbox,
    CheckCounts,
    Comparison,
    Durations,
    Evidence,
    Manifest,
    Readiness,
    ReadinessCheck,
    RelayRecord,
    RelayTotals,
    Report,
    Signing,
)
from core.evidence.rundir import (
    CHECK_RESULTS,
    RunPaths,
    RunWriter,
    artifact_hashes,
    line_hash,
)
from core.run.outcome import classify
from tests.support.signing import fixture_key

QWEN = "qwen3.6-35b-a3b"
TASK = "r1-string-slugify"
T0 = datetime(2026, 6, 1, 2, 20, 0, tzinfo=UTC)


def iso(seconds: float) -> str:
    """T0 plus `seconds`, in the harness's timestamp format."""
    stamp = (T0 + timedelta(seconds=seconds)).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


def run_id(minute: int, pid: int) -> str:
    return f"20260601T02{20 + minute:02d}00Z-{TASK}-{pid}"


def dead_pid() -> int:
    """The pid of a process that has just exited."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


class TraceFile:
    """Appends trace events with fixed timestamps, chained as RunWriter chains them."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.seq = 0
        self.prev = GENESIS_HASH

    def add(self, at: float, event: str, **fields: Any) -> None:
        self.seq += 1
        record = {"seq": self.seq, "ts": iso(at), "event": event, "prev": self.prev, **fields}
        raw = json.dumps(record, ensure_ascii=False).encode()
        with self.path.open("ab") as fh:
            fh.write(raw + b"\n")
        self.prev = line_hash(raw)


class FixtureRun:
    def __init__(self, root: Path, rid: str, engine: str = "case", pid: int | None = None,
                 demo: bool = False, retry_of: str | None = None, minute: int = 0) -> None:
        self.paths = RunPaths(root / rid)
        self.writer = RunWriter(self.paths, redact=lambda s: s)
        self.writer.close()
        self.trace = TraceFile(self.paths.trace)
        self.minute = minute
        # the pid in the run's name unless told (a finished run's pid is never consulted)
        pid = int(rid.rsplit("-", 1)[1]) if pid is None else pid
        alive = pid == os.getpid()
        self.manifest = Manifest(
            run_id=rid, task=TASK, engine=engine, profile="case-qwen", provider="qwen-local",
            model=QWEN, harness_version="0.1.0", started_at=self.at(0), harness_pid=pid,
            harness_start_ticks=process_start_ticks(pid) if alive else None,
            retry_of=retry_of, demo=demo, argv=["cto-harness", "run", "--engine", engine])
        self.writer.write_json(self.paths.manifest, self.manifest)
        self.event(0, "run_started", run_id=rid, task=TASK, engine=engine, profile="case-qwen",
                   demo=demo, retry_of=retry_of)

    def at(self, seconds: float) -> str:
        return iso(self.minute * 60 + seconds)

    def event(self, seconds: float, name: str, **fields: Any) -> None:
        self.trace.add(self.minute * 60 + seconds, name, **fields)

    def log(self, *lines: str | bytes) -> None:
        self.paths.backend.mkdir(parents=True, exist_ok=True)
        with self.paths.case_log.open("ab") as fh:
            for line in lines:
                fh.write(line if isinstance(line, bytes) else line.encode() + b"\n")

    def relay(self, seconds: float, asked: str, answered: str | None, status: int = 200,
              refused: str | None = None) -> None:
        record = RelayRecord(ts=self.at(seconds), method="POST", path="/v1/chat/completions",
                             model_asked=asked, model_answered=answered, status=status,
                             latency_ms=840.0, stream=True, refused=refused,
                             prompt_tokens=None if refused else 412,
                             completion_tokens=None if refused else 96)
        with self.paths.relay.open("a") as fh:
            fh.write(record.model_dump_json() + "\n")

    def readiness(self, ready: bool) -> None:
        checks = [ReadinessCheck(name="endpoint_config", state="ok",
                                 detail="set via CTO_HARNESS_CASE_LOCAL_BASE_URL")]
        if not ready:
            checks = [ReadinessCheck(
                name="endpoint_config", state="missing",
                detail="CTO_HARNESS_CASE_LOCAL_BASE_URL is not set; supply it at runtime")]
        readiness = Readiness(ready=ready, checked_at=self.at(0.2), checks=checks,
                              admission_status="admitted", provider="qwen-local", model=QWEN)
        self.writer.write_json(self.paths.readiness, readiness)

    def preflight(self, ready: bool = True) -> None:
        self.event(0.05, "config_resolved", endpoint_configured=ready,
                   endpoint_source="CTO_HARNESS_CASE_LOCAL_BASE_URL" if ready else None,
                   case_bin="/opt/agents/bin/case", admission_file="/etc/cto/admission.json",
                   provider="qwen-local", model=QWEN, redaction_forms=24 if ready else 0,
                   unmaskable_forms=[], runs_root_in_repository=None, signing="on",
                   signing_keyid=fixture_key().keyid)
        self.readiness(ready)
        self.event(0.3, "readiness_checked", ready=ready,
                   checks={"endpoint_config": "ok" if ready else "missing"})
        self.event(0.35, "admission_checked", status="admitted",
                   detail=f"qwen-local/{QWEN} admitted")

    def report(self, status: str, seconds: float, **fields: Any) -> None:
        base: dict[str, Any] = dict(
            run_id=self.manifest.run_id, status=status,
            exit_code={"passed": 0, "failed": 1, "blocked": 3, "cancelled": 130}[status],
            stage=2, stage2_passed=status == "passed", task=TASK, engine=self.manifest.engine,
            demo=self.manifest.demo, retry_of=self.manifest.retry_of,
            case_model_provider="qwen-local", case_model=QWEN,
            case_model_admission_status="admitted", endpoint_configured=True,
            case_process_started=True, case_exit_code=0, fallback_detected=False,
            guard_state="clear", baseline=BaselineOutcome(status="failed", exit_code=0,
                                                          checks=_checks(0, 3)),
            durations=Durations(total_s=seconds, preflight_s=0.4, case_s=seconds - 2),
            started_at=self.at(0), finished_at=self.at(seconds),
            case_network="isolated",
            case_network_detail="own network namespace: only the relay is reachable",
            case_sandbox=CaseSandbox(
                mode="bwrap", ready=True, bwrap_version="0.11.0", host_uid=1999999000,
                namespaces=["user", "pid", "mount", "ipc", "uts", "cgroup", "net"],
                network="relay-only", limits={"nproc": 1024},
                detail="bubblewrap 0.11.0: own user, pid, mount, ipc, uts, cgroup, net "
                       "namespaces; no capability; processes run as host uid 1999999000"),
        )
        key = fixture_key()
        base["signing"] = Signing(mode="on", keyid=key.keyid,
                                  detail="Ed25519; attestation.intoto.jsonl written last, "
                                         "over every other file")
        base.update(fields)
        base["artifacts"] = artifact_hashes(self.paths)
        base["trace_head"] = {"seq": self.trace.seq, "hash": self.trace.prev}
        report = Report(**base)
        if "failure_class" not in fields:  # as a run's report has it (core/run/outcome.py)
            report.failure_class = classify(report)
        text = self.writer.write_json(self.paths.report, report)
        self.event(seconds, "report_written", status=status,
                   report_sha256=hashlib.sha256(text.encode()).hexdigest())
        self.event(seconds + 0.01, "run_finished", status=status, exit_code=base["exit_code"])
        if base["signing"] is not None and base["signing"].mode == "on":
            sign_run(self.paths.root, Report.model_validate_json(text), text, key)


def exited(code: int, seconds: float) -> dict[str, Any]:
    """case_process_exited's fields, as the runner writes them."""
    return dict(exit_code=code, duration_s=seconds, timed_out=False, cancelled=False,
                output_bytes=2048, start_error=None)


def _checks(passed: int, total: int) -> CheckCounts:
    return CheckCounts(passed=passed, failed=total - passed, total=total, ran=True,
                       detail=f"{passed} of {total} checks passed")


CASE_LOG = [
    "case: reading task r1-string-slugify",
    "\x1b[1;32mturn 1\x1b[0m: asking qwen3.6-35b-a3b (412 tokens)",
    "\x1b]0;pwned title\x07\x1b]52;c;ZWNobyBoaQ==\x07clipboard and title writes are dropped",
    "downloading 10%\r downloading 50%\r downloading 100%",
    "\x1b[2J\x1b[Hcursor moves are dropped too",
    "wrote slugify.py (23 lines)",
    "a very long line: " + "x" * 3000,
    "turn 1 done: 96 completion tokens, 0.8 s",
]


CHECK_NAMES = ("test_lowercases_and_joins_words", "test_strips_punctuation",
               "test_collapses_repeated_separators")


def junit(path: Path, passed: int) -> None:
    """A JUnit file as pytest writes it: the first `passed` checks pass, the rest fail."""
    path.parent.mkdir(parents=True, exist_ok=True)
    cases = "".join(
        f'<testcase classname="tests.test_slugify" name="{name}" time="0.001">'
        + ("" if i < passed else '<failure message="assert False">assert False</failure>')
        + "</testcase>" for i, name in enumerate(CHECK_NAMES))
    failed = len(CHECK_NAMES) - passed
    path.write_text(f'<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite '
                    f'name="pytest" errors="0" failures="{failed}" skipped="0" '
                    f'tests="{len(CHECK_NAMES)}">{cases}</testsuite></testsuites>')


def stage2(run: FixtureRun, *, relay: int = 3, checks: tuple[int, int] = (3, 3)) -> None:
    run.event(0.4, "relay_started", url="http://127.0.0.1:40123/v1",
              door="unix socket (sandbox only)")
    run.event(0.5, "case_process_started", pid=4242, argv=["case", "--task-file", "task.md"],
              network="isolated", sandbox="bwrap")
    run.log(*CASE_LOG)
    for i in range(relay):
        run.relay(1 + i, QWEN, QWEN)
    run.event(6.5, "case_process_exited", **exited(0, 6.0))
    junit(run.paths.checks / CHECK_RESULTS, checks[0])
    run.event(7.0, "checks_completed", **_checks(*checks).model_dump())
    run.event(7.1, "baseline_started", engine="fake")
    junit(run.paths.baseline / "checks" / CHECK_RESULTS, 0)
    run.event(8.9, "baseline_completed", status="failed", checks=_checks(0, 3).model_dump())
    run.event(9.0, "guard_verdict", state="clear", evidence=0, proven_requests=relay)


def make_runs_root(root: Path) -> dict[str, Path]:
    """Passed, failed, blocked, tripped, interrupted and corrupt runs, oldest first."""
    root.mkdir(parents=True, exist_ok=True)
    made: dict[str, Path] = {}

    run = FixtureRun(root, run_id(0, 1001), minute=0)
    run.preflight()
    stage2(run)
    run.report("passed", 9.5, checks=_checks(3, 3), relay=_totals(3),
               comparison=Comparison(real_passed=True, fake_passed=False, discriminating=True,
                                     detail="real passed, fake failed"))
    made["passed"] = run.paths.root

    run = FixtureRun(root, run_id(1, 1002), minute=1)
    run.preflight()
    stage2(run, checks=(1, 3))
    run.report("failed", 9.5, checks=_checks(1, 3), relay=_totals(3),
               reasons=["checks: 1 of 3 checks passed"],
               comparison=Comparison(real_passed=False, fake_passed=False, discriminating=False,
                                     detail="real failed, fake failed"))
    made["failed"] = run.paths.root

    run = FixtureRun(root, run_id(2, 1003), minute=2)
    run.preflight(ready=False)
    reason = "endpoint_config: CTO_HARNESS_CASE_LOCAL_BASE_URL is not set"
    run.writer.write_text(run.paths.unavailable, f"blocked: {reason}\n")
    run.event(0.4, "run_blocked", reasons=[reason],
              marker="backend/provider-local-config-unavailable.txt")
    run.report("blocked", 0.5, stage=1, endpoint_configured=False, case_process_started=False,
               case_exit_code=None, guard_state="unproven", reasons=[reason],
               baseline=BaselineOutcome(status="skipped"), checks=CheckCounts(detail="not run"))
    made["blocked"] = run.paths.root

    run = FixtureRun(root, run_id(3, 1004), minute=3)
    run.preflight()
    run.event(0.4, "relay_started", url="http://127.0.0.1:40124/v1",
              door="unix socket (sandbox only)")
    run.event(0.5, "case_process_started", pid=4243, argv=["case"], network="isolated",
              sandbox="bwrap")
    run.log("case: trying the hosted model", "falling back to claude-sonnet-4-6")
    run.relay(1, QWEN, QWEN)
    run.relay(7, "claude-sonnet-4-6", None, status=403, refused="model not admitted")
    evidence = Evidence(file="backend/relay.jsonl", line=2, field="model_asked",
                        detail=f"relay refused claude-sonnet-4-6 at {run.at(7)}")
    run.event(7.01, "guard_tripped", evidence=evidence.model_dump(exclude_none=True))
    run.event(8, "case_process_exited", **exited(1, 7.5))
    run.event(8.2, "checks_completed", **_checks(0, 3).model_dump())
    run.event(9, "guard_verdict", state="tripped", evidence=1, proven_requests=1)
    run.report("failed", 9.5, fallback_detected=True, guard_state="tripped",
               fallback_evidence=[evidence], case_exit_code=1, checks=_checks(0, 3),
               relay=_totals(2, refused=1, models=["claude-sonnet-4-6", QWEN]),
               reasons=["fallback detected: see fallback_evidence"])
    made["tripped"] = run.paths.root

    run = FixtureRun(root, run_id(4, 1005), pid=dead_pid(), minute=4)
    run.preflight()
    run.event(0.5, "case_process_started", pid=4244, argv=["case"], network="isolated",
              sandbox="bwrap")
    run.log("case: working…")
    made["interrupted"] = run.paths.root

    corrupt = root / run_id(5, 1006)
    (corrupt / "backend").mkdir(parents=True)
    (corrupt / "manifest.json").write_text("{not json at all")
    made["corrupt"] = corrupt

    run = FixtureRun(root, run_id(6, 1007), minute=6)
    run.paths.report.write_text('{"run_id": "truncated"')
    made["corrupt_report"] = run.paths.root
    return made


def _totals(requests: int, refused: int = 0, models: list[str] | None = None) -> RelayTotals:
    return RelayTotals(requests=requests, forwarded=requests - refused, refused=refused,
                       models_seen=models or [QWEN], prompt_tokens=412 * (requests - refused),
                       completion_tokens=96 * (requests - refused))


def make_running(root: Path, minute: int = 7) -> FixtureRun:
    """A run in flight (its harness pid is this test process): tests append to it."""
    run = FixtureRun(root, run_id(minute, os.getpid()), pid=os.getpid(), minute=minute)
    run.preflight()
    run.event(0.4, "relay_started", url="http://127.0.0.1:40125/v1",
              door="unix socket (sandbox only)")
    run.event(0.5, "case_process_started", pid=4245, argv=["case"], network="isolated",
              sandbox="bwrap")
    run.log("case: started")
    return run
