"""The verdict of a run, as pure functions of what the run collected.

Nothing here starts a process, reads a file or writes one: given the collected state
(`RunState`) and the guard's answer, the status, the stage, the reasons and the same-run
comparison follow, so each rule can be tested without running a Case.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from core.evidence.models import (
    BaselineOutcome,
    BaselineStatus,
    CaseNetwork,
    CaseSetup,
    CheckCounts,
    Comparison,
    Durations,
    Engine,
    GuardState,
    LeakFinding,
    Readiness,
    RelayRecord,
    RunStatus,
    ScanSummary,
)
from core.run.admission import AdmissionResult
from core.run.process import Outcome

FAKE = "fake"
"""The fake engine: a baseline run, never evidence for a model."""

ENDED_EARLY: tuple[RunStatus, ...] = ("blocked", "error", "cancelled", "timed_out")
"""Statuses the run reached before a verdict could be judged; they stand as they are."""


@dataclass
class RunState:
    """What the run has learned so far; the report is built from it whatever happens."""

    stage: int = 1
    reasons: list[str] = field(default_factory=list)
    admission: str = "missing_file"
    case_started: bool = False
    case: Outcome | None = None
    checks: CheckCounts = field(default_factory=CheckCounts)
    baseline: BaselineOutcome = field(default_factory=lambda: BaselineOutcome(status="skipped"))
    leaks: list[LeakFinding] = field(default_factory=list)
    log_redactions: int = 0
    other_redactions: int = 0
    durations: Durations = field(default_factory=Durations)
    records: list[RelayRecord] = field(default_factory=list)
    scan: ScanSummary = field(default_factory=ScanSummary)
    unhashed: set[str] = field(default_factory=set)
    unhashed_folders: set[str] = field(default_factory=set)
    digests: dict[str, str] = field(default_factory=dict)
    network: CaseNetwork = "host"
    network_detail: str = "the Case did not start"
    case_setup: CaseSetup | None = None
    xattrs_stripped: dict[str, list[str]] = field(default_factory=dict)


def preflight_blockers(readiness: Readiness, admission: AdmissionResult) -> list[str]:
    """Stage 1's blockers: every readiness check not ok (nor skipped), and the admission
    unless a readiness check already named it."""
    blockers = [f"{c.name}: {c.detail}" for c in readiness.checks
                if c.state not in ("ok", "skipped")]
    if admission.status != "admitted" and not any(b.startswith("admission") for b in blockers):
        blockers.append(f"admission: {admission.detail}")
    return blockers


def baseline_status(outcome: Outcome, checks: CheckCounts) -> BaselineStatus:
    """How the fake baseline ended: the run's cancel, its timeout, its exit, then its
    checks."""
    if outcome.cancelled:
        return "cancelled"
    if outcome.timed_out:
        return "timed_out"
    if outcome.exit_code != 0:
        return "error"
    return "passed" if checks.all_passed else "failed"


def verdict(status: RunStatus, state: RunState, engine: Engine, guard_state: GuardState,
            unproven_reason: str) -> tuple[RunStatus, list[str]]:
    """From what happened to the status, and the reasons to add to the run's; `passed`
    only with every proof in place (the checks, the guard, the same-run baseline, a
    complete leak scan for the fake engine). `state.reasons` is read, never changed."""
    if status in ENDED_EARLY:
        return status, []
    s = state
    reasons: list[str] = []
    if s.leaks:
        reasons.append("leak_detected: a secret form was found in the run's files")
    real = s.checks.all_passed
    if engine == FAKE:
        reasons.append("fake engine: a baseline run, never evidence for a model")
        return ("passed" if real and not s.leaks and s.scan.complete else "failed"), reasons
    foreign = [n for n, r in enumerate(s.records, 1) if r.foreign]
    if foreign:
        lines = ", ".join(str(n) for n in foreign[:5]) + (", …" if len(foreign) > 5 else "")
        reasons.append(f"policy: {len(foreign)} foreign request(s) reached the relay without "
                       f"the run's token (backend/relay.jsonl line {lines}): another local "
                       "process used the Case's door; run with the sandbox on")
    if guard_state == "tripped":
        reasons.append("fallback detected: see fallback_evidence")
    elif guard_state == "unproven":
        reasons.append(f"unproven: {unproven_reason}")
    if s.case and s.case.exit_code != 0:
        reasons.append(f"the Case exited with code {s.case.exit_code}")
    if not real:
        reasons.append(f"checks: {s.checks.detail or 'not all passed'}")
    if s.baseline.status == "skipped":
        reasons.append("no same-run baseline (--no-baseline): a pass claim needs it")
    elif s.baseline.status == "passed":
        reasons.append("the fake baseline passes the checks too: they prove nothing")
    elif s.baseline.status in ("error", "timed_out"):
        reasons.append(f"the fake baseline did not complete ({s.baseline.status})")
    return ("failed" if s.reasons or reasons else "passed"), reasons


def comparison(state: RunState) -> Comparison | None:
    """The same-run comparison (real against the fake baseline); None when the Case never
    started, as there is nothing to compare."""
    if not state.case_started:
        return None
    real = state.checks.all_passed
    base = state.baseline.status
    fake_passed = None if base in ("skipped", "cancelled") else base == "passed"
    discriminating = real and fake_passed is False
    detail = "real passed, fake failed" if discriminating else (
        f"real {'passed' if real else 'failed'}, fake "
        + ("cancelled" if base == "cancelled"
           else {None: "not run", True: "passed", False: "failed"}[fake_passed]))
    return Comparison(real_passed=real, fake_passed=fake_passed,
                      discriminating=discriminating, detail=detail)


def stage2_passed(status: RunStatus, engine: Engine) -> bool:
    """Stage 2 passed: a passed run of a real engine (a fake one is never evidence)."""
    return status == "passed" and engine != FAKE


def guard_state_for(engine: Engine, guard_state: GuardState) -> GuardState:
    """The guard's state as the report records it: a fake run is `unproven` whatever the
    guard saw (it asked no model)."""
    return guard_state if engine != FAKE else "unproven"
