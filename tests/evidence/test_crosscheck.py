"""`validate` cross-checks the relay ledger and the trace against the report: a forger who
re-hashes every artifact and re-chains the trace (plain SHA-256, as issue 10's daemon did)
is still caught when the files disagree with the report, and the line is named.

Each test forges a real, finished run the way that daemon did (so the hashes and the chain
hold) and changes one thing the report and the ledger or the trace must agree on."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from core.evidence.rundir import artifact_digest, line_hash
from tests.support.harness import Harness


def rechain(run_dir: Path, added: list[dict] | None = None) -> None:
    """Re-chain trace.jsonl from its report_written on (naming the report as it is now),
    with `added` events after the last line; the lines before are kept byte for byte."""
    raw = (run_dir / "trace.jsonl").read_bytes().splitlines(keepends=True)
    events = [json.loads(line) for line in raw]
    cut = next(i for i, e in enumerate(events) if e["event"] == "report_written")
    report_sha = hashlib.sha256((run_dir / "report.json").read_bytes()).hexdigest()
    prev, lines = line_hash(raw[cut - 1]), raw[:cut]
    for seq, event in enumerate([*events[cut:], *(added or [])], start=cut + 1):
        event = {**event, "seq": seq, "prev": prev}
        if event["event"] == "report_written":
            event["report_sha256"] = report_sha
        line = json.dumps(event, separators=(",", ":")).encode() + b"\n"
        prev = line_hash(line)
        lines.append(line)
    (run_dir / "trace.jsonl").write_bytes(b"".join(lines))


def forge_report(run_dir: Path, change: dict | None = None) -> None:
    """Re-hash every artifact into the report (and apply `change`), then re-chain the trace
    so its report_written names the new report. The lines before it are unchanged, so the
    report's trace_head still holds."""
    report = json.loads((run_dir / "report.json").read_text())
    for rel in report["artifacts"]:
        report["artifacts"][rel] = artifact_digest(run_dir / rel)
    report.update(change or {})
    (run_dir / "report.json").write_text(json.dumps(report))
    rechain(run_dir)


def trace(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "trace.jsonl").read_text().splitlines()]


def integrity(harness: Harness, run_dir: Path) -> dict:
    _code, result = harness.run_json("validate", str(run_dir))
    return next(c for c in result["criteria"] if c["id"] == "evidence_intact")


def finished_run(harness: Harness) -> Path:
    _code, out = harness.run_json("run", "--no-baseline")
    assert out["status"] == "failed", out  # no baseline: a run that claims nothing
    run_dir = Path(out["run_dir"])
    assert integrity(harness, run_dir)["verdict"] == "ok"
    return run_dir


def test_a_forger_that_rehashes_everything_still_passes_only_if_consistent(
        harness: Harness) -> None:
    """The forging helper itself: re-hashed and re-chained, an unchanged run validates."""
    run_dir = finished_run(harness)
    forge_report(run_dir)
    assert integrity(harness, run_dir)["verdict"] == "ok"


def test_a_relay_line_added_is_named(harness: Harness) -> None:
    run_dir = finished_run(harness)
    ledger = run_dir / "backend" / "relay.jsonl"
    first = ledger.read_text().splitlines()[0]
    ledger.write_text(ledger.read_text() + first + "\n")
    forge_report(run_dir)
    crit = integrity(harness, run_dir)
    assert crit["verdict"] == "failed"
    assert "backend/relay.jsonl has 2 lines, the report counted 1 requests: line 2 onwards " \
        "was added" in crit["detail"]


def test_a_relay_line_removed_is_named(harness: Harness) -> None:
    run_dir = finished_run(harness)
    (run_dir / "backend" / "relay.jsonl").write_text("")
    forge_report(run_dir)
    crit = integrity(harness, run_dir)
    assert crit["verdict"] == "failed"
    assert "1 line(s) were removed" in crit["detail"]


def test_a_relay_line_changed_is_named(harness: Harness) -> None:
    run_dir = finished_run(harness)
    ledger = run_dir / "backend" / "relay.jsonl"
    record = json.loads(ledger.read_text())
    record["completion_tokens"] = (record["completion_tokens"] or 0) + 1000
    ledger.write_text(json.dumps(record) + "\n")
    forge_report(run_dir)
    crit = integrity(harness, run_dir)
    assert crit["verdict"] == "failed" and "completion_tokens" in crit["detail"]


def test_a_trace_line_after_run_finished_is_named(harness: Harness) -> None:
    run_dir = finished_run(harness)
    events = trace(run_dir)
    rechain(run_dir, [{"ts": events[-1]["ts"], "event": "run_finished", "status": "passed",
                       "exit_code": 0}])
    crit = integrity(harness, run_dir)
    assert crit["verdict"] == "failed"
    assert f"trace.jsonl line {len(events) + 1} was added after run_finished" in crit["detail"]


def test_a_status_the_trace_never_recorded_is_named(harness: Harness) -> None:
    run_dir = finished_run(harness)
    forge_report(run_dir, {"status": "passed", "exit_code": 0})
    crit = integrity(harness, run_dir)
    assert crit["verdict"] == "failed"
    assert "run_finished says 'failed', the report 'passed'" in crit["detail"]
