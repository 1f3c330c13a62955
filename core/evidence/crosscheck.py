"""`validate`'s cross-checks: the relay ledger and the trace must say what the report says.

The artifact hashes catch a file changed *after* the report; these catch a line added or
removed *before* it (while the run went, which the sandbox already prevents): the report's
relay totals are the harness's own count of the requests it served, and its status, exit
code, checks, leaks and guard trips are what the trace recorded as they happened. Each
disagreement is named with its file and line.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from core.evidence.models import RelayRecord, RelayTotals, Report
from core.evidence.rundir import NotRegularFile, RunPaths, open_regular


def _ledger(paths: RunPaths) -> tuple[list[RelayRecord], list[str]]:
    records: list[RelayRecord] = []
    problems: list[str] = []
    try:
        fh = open_regular(paths.relay)
    except FileNotFoundError:
        return records, problems
    except (NotRegularFile, OSError) as exc:
        return records, [f"backend/relay.jsonl cannot be read ({exc.strerror})"]
    with fh:
        for number, raw in enumerate(fh, start=1):
            try:
                records.append(RelayRecord.model_validate_json(raw))
            except ValidationError:
                problems.append(f"backend/relay.jsonl line {number} is not a relay record "
                                "(added by someone else than the relay)")
    return records, problems


def relay_problems(paths: RunPaths, report: Report) -> list[str]:
    records, problems = _ledger(paths)
    counted = report.relay.requests
    lines = len(records) + len(problems)
    if lines > counted:
        problems.append(f"backend/relay.jsonl has {lines} lines, the report counted "
                        f"{counted} requests: line {counted + 1} onwards was added")
    elif lines < counted:
        problems.append(f"backend/relay.jsonl has {lines} lines, the report counted "
                        f"{counted} requests: {counted - lines} line(s) were removed")
    elif not problems:
        found = RelayTotals.of(records)
        for name, value in report.relay.model_dump().items():
            if getattr(found, name) != value:
                problems.append(f"backend/relay.jsonl gives {name} {getattr(found, name)!r}, "
                                f"the report {value!r}: a line was changed")
    return problems


def trace_problems(events: list[dict[str, Any]], report: Report) -> list[str]:
    """What the trace recorded as it happened against what the report says."""
    problems: list[str] = []

    def last(name: str) -> dict[str, Any] | None:
        return next((e for e in reversed(events) if e.get("event") == name), None)

    finished = next((e for e in events if e.get("event") == "run_finished"), None)
    if finished is not None:
        after = [e for e in events if e["_line"] > finished["_line"]]
        if after:
            problems.append(f"trace.jsonl line {after[0]['_line']} was added after "
                            "run_finished")
        if finished.get("status") != report.status:
            problems.append(f"trace.jsonl line {finished['_line']}: run_finished says "
                            f"{finished.get('status')!r}, the report {report.status!r}")
    started = last("case_process_started") is not None
    if started != report.case_process_started:
        problems.append("trace.jsonl and the report disagree on whether the Case started")
    exited = last("case_process_exited")
    if exited is not None and report.engine == "case" \
            and exited.get("exit_code") != report.case_exit_code:
        problems.append(f"trace.jsonl line {exited['_line']}: the Case exited "
                        f"{exited.get('exit_code')!r}, the report says "
                        f"{report.case_exit_code!r}")
    checks = last("checks_completed")
    if checks is not None:
        said = {k: checks.get(k) for k in report.checks.model_dump()}
        if said != report.checks.model_dump():
            problems.append(f"trace.jsonl line {checks['_line']}: checks_completed differs "
                            "from the report's checks")
    counts = (("leak_detected", len(report.leaks), "leaks"),
              ("guard_tripped", len(report.fallback_evidence), "fallback_evidence"))
    for name, expected, field in counts:
        seen = sum(1 for e in events if e.get("event") == name)
        if seen != expected:
            problems.append(f"trace.jsonl has {seen} {name} event(s), the report "
                            f"{expected} {field}")
    return problems


def consistency_problems(paths: RunPaths, report: Report,
                         events: list[dict[str, Any]]) -> list[str]:
    try:
        return [*relay_problems(paths, report), *trace_problems(events, report)]
    except (ValueError, json.JSONDecodeError) as exc:
        return [f"cross-check failed: {type(exc).__name__}"]
