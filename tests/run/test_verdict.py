"""The verdict's rules, judged on collected state alone: no Case, no run directory.

A run's tests (test_run.py) show each rule end to end; these pin the pure functions the
runner calls, so a rule can be read and changed without starting a process.
"""

from __future__ import annotations

import pytest

from core.evidence.models import (
    BaselineOutcome,
    CheckCounts,
    LeakFinding,
    Readiness,
    ReadinessCheck,
    RelayRecord,
    ScanSummary,
)
from core.run.admission import AdmissionResult
from core.run.process import Outcome
from core.run.verdict import (
    RunState,
    baseline_status,
    comparison,
    guard_state_for,
    preflight_blockers,
    stage2_passed,
    verdict,
)

ALL = CheckCounts(passed=3, total=3, ran=True)
SOME = CheckCounts(passed=2, failed=1, total=3, ran=True, detail="1 failed")


def proven(**changes: object) -> RunState:
    """A real run with every proof in place: the checks pass, the baseline fails them."""
    state = RunState(stage=2, case_started=True, case=Outcome(exit_code=0), checks=ALL,
                     baseline=BaselineOutcome(status="failed", exit_code=0, checks=SOME))
    for name, value in changes.items():
        setattr(state, name, value)
    return state


@pytest.mark.parametrize("counts, expected", [
    (ALL, True), (SOME, False), (CheckCounts(), False),
    (CheckCounts(ran=True), False),  # ran, but no check: proves nothing
    (CheckCounts(passed=3, total=3, ran=False), False),
])
def test_all_passed_needs_checks_that_ran_and_every_one_passing(
        counts: CheckCounts, expected: bool) -> None:
    assert counts.all_passed is expected
    assert "all_passed" not in counts.model_dump()  # the report's JSON is unchanged


def test_a_real_run_with_every_proof_passes() -> None:
    assert verdict("failed", proven(), "case", "clear", "") == ("passed", [])
    assert stage2_passed("passed", "case") and not stage2_passed("passed", "fake")


def test_each_missing_proof_fails_the_run_with_its_reason() -> None:
    cases = [
        (proven(), "tripped", "fallback detected: see fallback_evidence"),
        (proven(), "unproven", "unproven: no request"),
        (proven(case=Outcome(exit_code=3)), "clear", "the Case exited with code 3"),
        (proven(checks=SOME), "clear", "checks: 1 failed"),
        (proven(baseline=BaselineOutcome(status="skipped")), "clear",
         "no same-run baseline (--no-baseline): a pass claim needs it"),
        (proven(baseline=BaselineOutcome(status="passed", checks=ALL)), "clear",
         "the fake baseline passes the checks too: they prove nothing"),
        (proven(baseline=BaselineOutcome(status="timed_out")), "clear",
         "the fake baseline did not complete (timed_out)"),
        (proven(leaks=[LeakFinding(file="f", line=1, secret="endpoint", form="full")]),
         "clear", "leak_detected: a secret form was found in the run's files"),
    ]
    for state, guard, reason in cases:
        status, reasons = verdict("failed", state, "case", guard, "no request")  # type: ignore[arg-type]
        assert status == "failed"
        assert reason in reasons


def test_a_foreign_request_on_the_relay_fails_an_otherwise_proven_run() -> None:
    def record(foreign: bool) -> RelayRecord:
        return RelayRecord(ts="t", method="POST", path="/v1/chat/completions",
                           model_asked=None, model_answered=None, status=401,
                           latency_ms=1.0, refused="missing or wrong relay token",
                           foreign=foreign)
    assert verdict("failed", proven(records=[record(False)]), "case", "clear", "") == (
        "passed", [])
    status, reasons = verdict("failed", proven(records=[record(False), record(True)]),
                              "case", "clear", "")
    assert status == "failed"
    assert reasons == ["policy: 1 foreign request(s) reached the relay without the run's "
                       "token (backend/relay.jsonl line 2): another local process used the "
                       "Case's door; run with the sandbox on"]


def test_a_reason_the_run_already_gave_fails_it_too() -> None:
    state = proven(reasons=["unscanned: 2 entries of the run were not scanned"])
    assert verdict("failed", state, "case", "clear", "") == ("failed", [])
    assert state.reasons == ["unscanned: 2 entries of the run were not scanned"]  # not changed


@pytest.mark.parametrize("status", ["blocked", "error", "cancelled", "timed_out"])
def test_a_run_that_ended_early_keeps_its_status(status: str) -> None:
    assert verdict(status, proven(), "case", "clear", "") == (status, [])  # type: ignore[arg-type]


def test_the_fake_engine_is_never_evidence() -> None:
    status, reasons = verdict("failed", proven(), "fake", "clear", "")
    assert status == "passed"
    assert reasons == ["fake engine: a baseline run, never evidence for a model"]
    incomplete = proven(scan=ScanSummary(complete=False))
    assert verdict("failed", incomplete, "fake", "clear", "")[0] == "failed"
    assert guard_state_for("fake", "clear") == "unproven"
    assert guard_state_for("case", "clear") == "clear"


def test_the_baselines_status_is_its_timeout_then_its_exit_then_its_checks() -> None:
    # a baseline the run's cancel ended (SIGTERM, exit 143) is cancelled, not an error of it
    assert baseline_status(Outcome(exit_code=-15, cancelled=True), ALL) == "cancelled"
    assert baseline_status(Outcome(exit_code=None, timed_out=True), ALL) == "timed_out"
    assert baseline_status(Outcome(exit_code=1), ALL) == "error"
    assert baseline_status(Outcome(exit_code=0), ALL) == "passed"
    assert baseline_status(Outcome(exit_code=0), SOME) == "failed"


def test_the_comparison_says_whether_the_checks_discriminate() -> None:
    assert comparison(RunState()) is None  # the Case never started
    real = comparison(proven())
    assert real is not None and real.discriminating and real.detail == "real passed, fake failed"
    same = comparison(proven(baseline=BaselineOutcome(status="passed", checks=ALL)))
    assert same is not None and not same.discriminating
    assert same.detail == "real passed, fake passed"
    skipped = comparison(proven(checks=SOME, baseline=BaselineOutcome(status="skipped")))
    assert skipped is not None and skipped.fake_passed is None
    assert skipped.detail == "real failed, fake not run"
    cut = comparison(proven(checks=SOME, baseline=BaselineOutcome(status="cancelled")))
    assert cut is not None and cut.fake_passed is None
    assert cut.detail == "real failed, fake cancelled"


def test_preflight_blocks_on_each_failed_check_and_names_admission_once() -> None:
    def readiness(*checks: ReadinessCheck) -> Readiness:
        return Readiness(ready=False, checked_at="t", checks=list(checks),
                         admission_status="not_admitted", provider="p", model="m")

    endpoint = ReadinessCheck(name="endpoint", state="missing", detail="not set")
    skipped = ReadinessCheck(name="models", state="skipped", detail="no endpoint")
    admission = ReadinessCheck(name="admission", state="blocked", detail="not listed")
    refused = AdmissionResult(status="not_admitted", detail="not in the file")
    assert preflight_blockers(readiness(endpoint, skipped), refused) == [
        "endpoint: not set", "admission: not in the file"]
    assert preflight_blockers(readiness(endpoint, admission), refused) == [
        "endpoint: not set", "admission: not listed"]
    admitted = AdmissionResult(status="admitted", detail="ok")
    assert preflight_blockers(readiness(skipped), admitted) == []
