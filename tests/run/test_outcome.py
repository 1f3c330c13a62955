"""failure_class on collected facts alone: each class from the status, reasons, checks,
baseline, guard, leaks and relay totals a report carries, and the order that decides when
several apply (the module's docstring), with no Case and no run folder."""

from __future__ import annotations

import pytest

from core.evidence.models import CheckCounts, RelayTotals
from core.run.outcome import Facts, failure_class

PASSED = CheckCounts(passed=3, total=3, ran=True, detail="3/3 passed")
FAILED = CheckCounts(passed=1, failed=2, total=3, ran=True, detail="1/3 passed")
UNREADABLE = CheckCounts(detail="no readable JUnit XML (ParseError)")
CRASHED = CheckCounts(detail="checks could not run (pytest exit 3); see checks.log")
CHECKS_TIMEOUT = CheckCounts(detail="checks timed out after 60 s")
STARTED = {"case_started": True, "case_exit_code": 0, "baseline": "failed"}


def facts(status: str = "failed", *reasons: str, **fields) -> Facts:  # type: ignore[no-untyped-def]
    return Facts(status=status, reasons=reasons, **{**STARTED, **fields})  # type: ignore[arg-type]


CASES = [
    ("passed", facts("passed", checks=PASSED), None),
    # agent: its answer, its exit, its time
    ("checks failed", facts("failed", "checks: 1/3 passed", checks=FAILED), "agent"),
    ("non-zero exit", facts("failed", "the Case exited with code 2", checks=FAILED,
                            case_exit_code=2), "agent"),
    ("timed out", facts("timed_out", "the Case ran past its timeout", checks=FAILED),
     "agent"),
    ("checks timed out on its code", facts("failed", "checks: timed out",
                                           checks=CHECKS_TIMEOUT), "agent"),
    ("no request through the relay", facts("failed", "unproven: no request", checks=PASSED,
                                           guard="unproven"), "agent"),
    # limit
    ("memory", facts("failed", "limit: memory: ...", checks=FAILED, case_exit_code=137),
     "limit"),
    ("pids while timing out", facts("timed_out", "limit: pids: ...", checks=FAILED),
     "limit"),
    # infrastructure
    ("blocked by the sandbox", facts("blocked", "sandbox: bwrap refused here",
                                     case_started=False), "infrastructure"),
    ("blocked by limits", facts("blocked", "limits: no cgroup", case_started=False),
     "infrastructure"),
    ("harness error", facts("error", "harness error: OSError: x"), "infrastructure"),
    ("cancelled", facts("cancelled", "cancelled while the Case ran"), "infrastructure"),
    ("endpoint 503", facts("failed", "checks: 0/3 passed", checks=FAILED,
                           relay=RelayTotals(requests=2, forwarded=2, errors=2,
                                             upstream_failures=2)), "infrastructure"),
    # verifier
    ("results unreadable", facts("failed", "checks: no readable JUnit XML",
                                 checks=UNREADABLE), "verifier"),
    ("checks crashed", facts("failed", checks=CRASHED), "verifier"),
    ("results unreadable (22a's words)", facts("failed", "checks: results unreadable: fifo",
                                               checks=FAILED), "verifier"),
    ("baseline passes too", facts("failed", "the fake baseline passes the checks too",
                                  checks=PASSED, baseline="passed"), "verifier"),
    ("no baseline", facts("failed", "no same-run baseline (--no-baseline)", checks=PASSED,
                          baseline="skipped"), "verifier"),
    # policy
    ("leak", facts("failed", "leak_detected: ...", checks=PASSED, leak=True), "policy"),
    ("guard tripped", facts("failed", "fallback detected", checks=FAILED, guard="tripped"),
     "policy"),
    ("refused request", facts("failed", "checks: 0/3", checks=FAILED,
                              relay=RelayTotals(requests=1, refused=1)), "policy"),
    ("unscanned", facts("failed", "unscanned: 3 entries", checks=PASSED), "policy"),
    # the order: policy over limit over infrastructure over the agent
    ("leak and limit", facts("failed", "limit: disk: ...", checks=FAILED, leak=True),
     "policy"),
    ("limit and 503", facts("failed", "limit: memory: ...", checks=FAILED,
                            relay=RelayTotals(upstream_failures=1)), "limit"),
    ("503 but the checks passed", facts("failed", "the fake baseline passes the checks too",
                                        checks=PASSED, baseline="passed",
                                        relay=RelayTotals(upstream_failures=1)), "verifier"),
    ("exit and unreadable results", facts("failed", checks=UNREADABLE, case_exit_code=1),
     "agent"),
]


@pytest.mark.parametrize(("name", "state", "expected"), CASES, ids=[c[0] for c in CASES])
def test_failure_class(name: str, state: Facts, expected: str | None) -> None:
    assert failure_class(state) == expected, name


def test_every_status_but_passed_has_a_class() -> None:
    for status in ("failed", "blocked", "error", "cancelled", "timed_out"):
        assert failure_class(Facts(status=status)) is not None  # type: ignore[arg-type]
