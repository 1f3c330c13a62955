"""Whose fault it was: the `failure_class` of a run that did not pass, as a pure function of
what the report says (its status, reasons, checks, baseline, guard, leaks, relay totals).

Why a class at all: a trial that failed because the sandbox could not start, the endpoint
answered 503, the Case ran out of memory or the checks' results were unreadable is not the
agent's failure; it must neither count against its pass@k nor be retried as if it were.
Jobs score passes and `agent` failures only, and `--retry-errors` retries `infrastructure`
only (core/jobs/).

Where several apply, the first in this order wins, each more telling than the next:

1. `policy`: a leak (or a leak scan that could not finish, so none can be ruled out), the
   guard tripped, or a request the relay refused — the Case did what it must not.
2. `limit`: a `limit: ...` reason (memory, processes, disk; core/sandbox/limits.py).
3. `infrastructure`: blocked (a `sandbox:`, `config:`, `limits:`, readiness or admission
   reason), a harness error, a run cancelled before its verdict, or a forwarded request the
   upstream did not answer (unreachable, 5xx) in a run whose checks did not pass.
4. `agent`, for what the Case itself did: it timed out or exited non-zero.
5. `verifier`: the checks could not judge the workspace (they crashed, or their results are
   unreadable: `CheckCounts.ran` false for any reason but their own timeout).
6. `agent`: the checks judged its answer and it failed them (a checks timeout too: the code
   under test is the Case's), or it passed them without a request through the relay.
7. `verifier`: the answer passed but the pass cannot be claimed: no same-run baseline, a
   baseline that passes too (the checks prove nothing) or one that did not complete.

Other slices set the status and a reason with a known prefix; this module only reads them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from core.evidence.models import (
    BaselineStatus,
    CheckCounts,
    FailureClass,
    GuardState,
    RelayTotals,
    Report,
    RunStatus,
)

LIMIT_PREFIX = "limit:"
"""A process of the run reached one of its limits (core/sandbox/limits.py writes these)."""
POLICY_PREFIXES = ("leak_detected", "leak scan failed", "unscanned:", "fallback detected",
                   "policy:")
VERIFIER_PREFIXES = ("checks: results unreadable", "checks: could not run", "verifier:")
CHECKS_TIMED_OUT = "checks timed out"


@dataclass(frozen=True)
class Facts:
    """What the class is decided from: all of it is in report.json, so a reader of the
    report (a job's summary, a reviewer) can decide it again."""

    status: RunStatus
    reasons: tuple[str, ...] = ()
    checks: CheckCounts = field(default_factory=CheckCounts)
    baseline: BaselineStatus = "skipped"
    leak: bool = False
    guard: GuardState = "clear"
    relay: RelayTotals = field(default_factory=RelayTotals)
    case_started: bool = False
    case_exit_code: int | None = None

    @classmethod
    def of(cls, report: Report) -> Facts:
        return cls(status=report.status, reasons=tuple(report.reasons), checks=report.checks,
                   baseline=report.baseline.status, leak=report.leak_detected,
                   guard=report.guard_state, relay=report.relay,
                   case_started=report.case_process_started,
                   case_exit_code=report.case_exit_code)


def failure_class(f: Facts) -> FailureClass | None:
    """None for a passed run; otherwise whose fault it was (the module's order)."""
    if f.status == "passed":
        return None
    said = f.reasons

    def any_starts(prefixes: tuple[str, ...] | str) -> bool:
        return any(r.startswith(prefixes) for r in said)

    if f.leak or f.guard == "tripped" or f.relay.refused or any_starts(POLICY_PREFIXES):
        return "policy"
    if any_starts(LIMIT_PREFIX):
        return "limit"
    if f.status in ("blocked", "error", "cancelled") or not f.case_started:
        return "infrastructure"
    if f.relay.upstream_failures and not f.checks.all_passed:
        return "infrastructure"
    if f.status == "timed_out" or (f.case_exit_code not in (None, 0)):
        return "agent"
    if any_starts(VERIFIER_PREFIXES) or (
            not f.checks.ran and not f.checks.detail.startswith(CHECKS_TIMED_OUT)):
        return "verifier"
    if not f.checks.all_passed or f.guard == "unproven":
        return "agent"
    return "verifier"


def classify(report: Report) -> FailureClass | None:
    """The class of a written (or about to be written) report."""
    return failure_class(Facts.of(report))
