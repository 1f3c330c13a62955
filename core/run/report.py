"""The end of a run on disk: the blocked marker's text, the leak scan over the run's folder
(and the scrub of what it finds), and `report.json` built from the collected state.

The verdict itself (status, reasons, comparison) is `core.run.verdict`'s; this module
turns it and the run's record into the files a run leaves.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from core.evidence.models import (
    EXIT_CODES,
    CaseSandbox,
    GatewayUse,
    GuardState,
    RedactionCounters,
    RelayTotals,
    Report,
    RunStatus,
    Signing,
)
from core.evidence.rundir import RunPaths, reclaim, utcnow
from core.run.guard import Guard
from core.run.launch import RunRequest
from core.run.outcome import classify
from core.run.verdict import RunState, comparison, stage2_passed
from core.secrets.redact import Redactor
from core.secrets.runscan import scan_run
from core.secrets.scan import scrub
from core.settings import API_KEY_VAR, ENDPOINT_VAR, Resolved


def unavailable_text(reasons: list[str]) -> str:
    """The blocked marker (`backend/provider-local-config-unavailable.txt`): what is
    missing and how to supply it, never a value."""
    return (
        "This run was blocked before the Case process started.\n\n"
        "What is missing or wrong:\n"
        + "".join(f"  - {r}\n" for r in reasons)
        + "\nWays to supply the local endpoint (its value is never written anywhere):\n"
        f"  - export {ENDPOINT_VAR}=<http(s)://host:port/v1> in the shell that runs the harness\n"
        f"  - or put it on the first line of a file and export {ENDPOINT_VAR}_FILE=<that file>\n"
        "  - or type it into the dashboard (cto-harness-tui, key e): memory only\n"
        f"An API key, if the endpoint needs one: {API_KEY_VAR} or {API_KEY_VAR}_FILE.\n"
        "The Case binary: CTO_HARNESS_CASE_BIN. Admitted models: "
        "CTO_HARNESS_CASE_MODEL_ADMISSION_FILE.\n"
        "Check with: cto-harness readiness\n"
    )


def scan_for_leaks(paths: RunPaths, redactor: Redactor, seconds: float, max_bytes: int,
                   state: RunState) -> None:
    """Every name, link target and regular file of the run, within the scan's budget,
    scrubbed where a form is found; the findings, digests and what was left unread go to
    `state`. Links are never followed: a link the Case planted (to /proc/self/environ, say)
    is retargeted as text, so nothing outside the run is read, let alone copied in. What
    the budget left unread is listed, never skipped."""
    started = time.monotonic()
    reclaim(paths.root, deadline=started + seconds)
    scan = scan_run(paths.root, redactor, seconds, max_bytes, started=started)
    state.scan = scan.summary
    state.unhashed = scan.unscanned
    state.unhashed_folders = scan.unscanned_folders
    state.digests = scan.digests
    state.leaks = [leak.finding for leak in scan.leaks]  # reported if a scrub fails
    if scan.leaks:
        state.digests = {}  # scrubbed and renamed: hashed again where they are now
        state.leaks = scrub(scan.leaks, redactor, paths.root)


@dataclass(frozen=True)
class RunRecord:
    """What the report says of the run beside its collected state: who asked for what,
    the guard, the sandbox, the redactor, the times and the trace's head."""

    run_id: str
    task_id: str
    request: RunRequest
    resolved: Resolved
    guard: Guard
    guard_state: GuardState
    sandbox: CaseSandbox
    redactor: Redactor
    started_at: str
    trace_head: dict[str, Any]
    signing: Signing | None = None


def build_report(status: RunStatus, state: RunState, record: RunRecord,
                 artifacts: dict[str, str]) -> Report:
    """`report.json`'s model from the final status, the collected state and the record."""
    s, req, res = state, record.request, record.resolved
    report = Report(
        run_id=record.run_id, status=status, exit_code=EXIT_CODES[status],
        stage=s.stage, stage2_passed=stage2_passed(status, req.engine),
        reasons=s.reasons, task=record.task_id, engine=req.engine, demo=req.demo,
        retry_of=req.retry_of, case_model_provider=res.provider, case_model=res.model,
        case_model_admission_status=s.admission,  # type: ignore[arg-type]
        endpoint_configured=res.endpoint_usable,
        case_process_started=s.case_started,
        case_exit_code=s.case.exit_code if s.case else None,
        case_network=s.network, case_network_detail=s.network_detail,
        case_sandbox=record.sandbox, signing=record.signing,
        gateway=GatewayUse(url=res.gateway.url, fingerprint=res.gateway.fingerprint,
                           plain_http=res.gateway.plain_http, job=req.job_id,
                           run=record.run_id) if res.gateway is not None else None,
        fallback_detected=record.guard.tripped, fallback_evidence=record.guard.evidence,
        fallback_warnings=record.guard.warnings, guard_state=record.guard_state,
        case_setup=s.case_setup,
        relay=RelayTotals.of(s.records),
        checks=s.checks, baseline=s.baseline, comparison=comparison(s),
        redaction=RedactionCounters(forms=len(record.redactor.forms),
                                    unmaskable_forms=record.redactor.unmaskable,
                                    log_redactions=s.log_redactions,
                                    other_redactions=s.other_redactions),
        leak_detected=bool(s.leaks), leaks=s.leaks, durations=s.durations,
        started_at=record.started_at, finished_at=utcnow(),
        scan=s.scan, xattrs_stripped=s.xattrs_stripped, artifacts=artifacts,
        trace_head=record.trace_head,
    )
    report.failure_class = classify(report)
    return report
