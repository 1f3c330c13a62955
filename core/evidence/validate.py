"""`cto-harness validate`: re-check a run's evidence against CTO-WORK-030, line by line.

Each acceptance line a run can prove is a named criterion with ok / failed /
not_applicable and a pointer to its evidence. The hash chain and the artifact hashes are
re-computed, so a log, trace or report edited after the fact is caught and named. A partial
or corrupt run gets a verdict, never a traceback.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from core.evidence.attestation import ATTESTATION, SignatureCheck, check_run
from core.evidence.criteria import Criterion, Validation, Verdict
from core.evidence.crosscheck import consistency_problems
from core.evidence.keys import VerifyKey, verify_key
from core.evidence.models import (
    GENESIS_HASH,
    CaseSandbox,
    Evidence,
    Manifest,
    Report,
)
from core.evidence.rundir import (
    UNHASHED,
    NotRegularFile,
    RunPaths,
    artifact_digest,
    artifact_key,
    line_hash,
    open_regular,
    run_files,
)
from core.evidence.runs import Unreadable, load_manifest, load_report
from core.settings import DEFAULT_PROFILE, PROFILES
from core.settings.hosted import HOSTED_MODEL_MARKERS

QWEN_PROVIDER, QWEN_MODEL = PROFILES[DEFAULT_PROFILE]

ACCEPTANCE: dict[str, str] = {
    "endpoint_config_supplied": "`CTO_HARNESS_CASE_LOCAL_BASE_URL` is supplied at runtime for "
    "the real Qwen Case Stage 2 retry.",
    "blocked_before_case": "Missing endpoint config blocks before `case_process_started`.",
    "unavailable_marker": "Missing endpoint config writes "
    "`backend/provider-local-config-unavailable.txt`.",
    "endpoint_not_written": "Endpoint values are not written to SOT, task file, argv, backend "
    "logs, report, trace, generated config, or commit.",
    "provider_proven": "Harness report proves `case_model_provider`: `qwen-local`.",
    "model_proven": "Harness report proves `case_model`: `qwen3.6-35b-a3b`.",
    "admission_proven": "Harness report proves `case_model_admission_status`: `admitted`.",
    "no_fallback": "Harness report proves no fallback to `anthropic` or `claude-sonnet-4-6`.",
    "stage2_pass_evidence": "Real Case Stage 2 pass evidence exists only through the Harness "
    "Evidence Interface.",
    "same_run_baseline": "Same-run fake baseline comparison remains required for any pass "
    "claim.",
    "evidence_intact": "(integrity) The trace's hash chain and every artifact's SHA-256 match "
    "what the report recorded.",
    "evidence_signed": "(signature) attestation.intoto.jsonl, an in-toto Statement over "
    "every file of the run signed with the harness's Ed25519 key, verifies: an unsigned run "
    "is never real-model evidence.",
    "case_sandboxed": "(isolation) The Case, its checks and the fake baseline ran in the "
    "bubblewrap sandbox: only the relay reachable, the evidence out of its reach.",
    "case_bounded": "(limits) The Case, its checks and the fake baseline ran bounded in "
    "memory, processes and disk.",
    "gateway_pinned": "(gateway) A run whose relay forwarded to a gateway reached it over TLS "
    "pinned to the gateway's certificate fingerprint.",
}


def _c(cid: str, verdict: Verdict, detail: str, *evidence: Evidence) -> Criterion:
    return Criterion(id=cid, acceptance=ACCEPTANCE[cid], verdict=verdict, detail=detail,
                     evidence=list(evidence))


def check_chain(paths: RunPaths) -> tuple[list[dict], list[str]]:
    """Parse trace.jsonl and re-walk its hash chain; (events, problems)."""
    events: list[dict] = []
    problems: list[str] = []
    try:
        fh = open_regular(paths.trace)
    except NotRegularFile:
        return events, ["trace.jsonl is not a regular file (a link, FIFO or folder)"]
    except (FileNotFoundError, NotADirectoryError):
        return events, ["trace.jsonl is missing"]
    except OSError as exc:
        return events, [f"trace.jsonl cannot be read ({exc.strerror})"]
    prev = GENESIS_HASH
    with fh:
        for number, raw in enumerate(fh, start=1):
            if not raw.endswith(b"\n"):
                problems.append(f"trace.jsonl line {number} is cut short (no newline)")
                break
            try:
                event = json.loads(raw)
                if not isinstance(event, dict):
                    raise ValueError
            except ValueError:
                problems.append(f"trace.jsonl line {number} is not a JSON object")
                prev = line_hash(raw)
                continue
            if event.get("prev") != prev:
                problems.append(f"trace.jsonl line {number}: hash chain broken (the line "
                                "before it was edited, removed or inserted)")
            if event.get("seq") != number:
                problems.append(f"trace.jsonl line {number}: seq is {event.get('seq')!r}")
            event["_line"] = number
            events.append(event)
            prev = line_hash(raw)
    return events, problems


def _digest(path: Path) -> str:
    try:
        return artifact_digest(path)
    except OSError as exc:
        return f"unreadable: {exc.strerror or 'not a regular file'}"


def current_digests(paths: RunPaths, report: Report) -> dict[str, str]:
    """Every file of the run now but report, trace and attestation, by relative path, with
    its digest (UNHASHED where the report says the scan did not read it: validate does not
    either). Taken once, for the artifact check and the signature check both."""
    skip = {paths.report, paths.trace, paths.attestation}
    out: dict[str, str] = {}
    for path in run_files(paths.root):
        if path in skip:
            continue
        rel = artifact_key(path, paths.root)
        out[rel] = UNHASHED if report.artifacts.get(rel) == UNHASHED else _digest(path)
    return out


def _integrity(paths: RunPaths, report: Report, events: list[dict],
               chain_problems: list[str], now: dict[str, str],
               report_bytes: bytes) -> Criterion:
    problems = [*chain_problems, *consistency_problems(paths, report, events)]
    for rel, digest in sorted(report.artifacts.items()):
        if rel not in now:
            problems.append(f"{rel}: listed in the report but missing")
        elif digest != UNHASHED and now[rel] != digest:
            problems.append(f"{rel}: changed after the report was written (digest differs)")
    for rel in sorted(now.keys() - report.artifacts.keys()):
        problems.append(f"{rel}: not in the report's artifact list (added afterwards)")
    head = report.trace_head
    by_seq = {e.get("seq"): e for e in events}
    if head.get("seq") and head["seq"] < len(events):
        nxt = by_seq.get(head["seq"] + 1)
        if nxt is None or nxt.get("prev") != head.get("hash"):
            problems.append("report.json's trace_head does not match trace.jsonl")
    written = [e for e in events if e.get("event") == "report_written"]
    report_digest = hashlib.sha256(report_bytes).hexdigest()
    if not written:
        problems.append("trace.jsonl has no report_written event")
    elif written[-1].get("report_sha256") != report_digest:
        problems.append("report.json changed after it was written (SHA-256 differs from "
                        f"trace.jsonl line {written[-1]['_line']})")
    if problems:
        return _c("evidence_intact", "failed", "; ".join(problems[:5])
                  + (f" (+{len(problems) - 5} more)" if len(problems) > 5 else ""),
                  Evidence(file="trace.jsonl"), Evidence(file="report.json", field="artifacts"))
    return _c("evidence_intact", "ok",
              f"hash chain of {len(events)} events and {len(report.artifacts)} artifact "
              "hashes re-checked", Evidence(file="report.json", field="artifacts"))


def _criteria(paths: RunPaths, manifest: Manifest, report: Report,
              events: list[dict]) -> list[Criterion]:
    def first(name: str) -> dict | None:
        return next((e for e in events if e.get("event") == name), None)

    def at(event: dict | None, detail: str = "") -> Evidence:
        return Evidence(file="trace.jsonl", line=event["_line"] if event else None,
                        detail=detail)

    rep = lambda fld: Evidence(file="report.json", field=fld)  # noqa: E731
    out: list[Criterion] = []
    config = first("config_resolved")
    started = first("case_process_started")
    blocked = first("run_blocked")
    is_case = report.engine == "case"
    demo = manifest.demo or report.demo

    configured = bool(config and config.get("endpoint_configured"))
    if not is_case:
        out.append(_c("endpoint_config_supplied", "not_applicable",
                      "fake-engine run: no endpoint needed"))
    elif demo:
        out.append(_c("endpoint_config_supplied", "not_applicable",
                      "demo endpoint: the real endpoint was not used",
                      Evidence(file="manifest.json", field="demo")))
    else:
        out.append(_endpoint_supplied(report, config, configured, at(config),
                                      rep("endpoint_configured")))

    if is_case and not report.endpoint_configured:
        ok = blocked is not None and started is None and report.status == "blocked"
        out.append(_c("blocked_before_case", "ok" if ok else "failed",
                      "run_blocked and no case_process_started" if ok
                      else "the endpoint was missing yet the run was not blocked before "
                      "the Case started", at(blocked), rep("case_process_started")))
        marker = paths.unavailable.is_file()
        out.append(_c("unavailable_marker", "ok" if marker else "failed",
                      "written" if marker else "missing",
                      Evidence(file="backend/provider-local-config-unavailable.txt")))
    else:
        for cid in ("blocked_before_case", "unavailable_marker"):
            out.append(_c(cid, "not_applicable", "the endpoint config was supplied"
                          if is_case else "fake-engine run"))

    leaks, scan = report.leaks, report.scan
    unscanned = "; ".join(f"{u.file}: {u.reason}" for u in scan.unscanned[:3])
    out.append(_c("endpoint_not_written",
                  "failed" if report.leak_detected or not scan.complete else "ok",
                  (f"{len(leaks)} leak finding(s); the files were scrubbed" if leaks else
                   "the end-of-run leak scan found no form of any secret in the run's files")
                  + ("" if scan.complete else
                     f"; but {scan.unscanned_count} entries were not scanned, so a form may "
                     f"be in them ({unscanned}"
                     + (", …" if scan.unscanned_count > 3 else "") + ")"),
                  *([Evidence(file=f.file, line=f.line,
                              detail=f"{f.secret}:{f.form}"
                              + ("" if f.where == "content" else f" in its {f.where}"))
                     for f in leaks[:10]] or [rep("leak_detected")]),
                  *([rep("scan.unscanned")] if not scan.complete else [])))

    if not is_case or not report.case_process_started:
        why = "fake-engine run" if not is_case else "the Case never started"
        for cid in ("provider_proven", "model_proven", "admission_proven", "no_fallback"):
            out.append(_c(cid, "not_applicable", why))
    else:
        out.append(_c("provider_proven", "ok" if report.case_model_provider == QWEN_PROVIDER
                      else "failed", f"case_model_provider is {report.case_model_provider}",
                      rep("case_model_provider")))
        model_ok = (report.case_model == QWEN_MODEL and report.relay.models_seen
                    and set(report.relay.models_seen) == {QWEN_MODEL})
        out.append(_c("model_proven", "ok" if model_ok else "failed",
                      f"case_model is {report.case_model}; answered by "
                      f"{', '.join(report.relay.models_seen) or 'no request'}",
                      rep("case_model"), Evidence(file="backend/relay.jsonl")))
        out.append(_c("admission_proven", "ok" if report.case_model_admission_status
                      == "admitted" else "failed",
                      f"case_model_admission_status is {report.case_model_admission_status}",
                      rep("case_model_admission_status"), at(first("admission_checked"))))
        hosted_seen = [m for m in report.relay.models_seen
                       if any(h in m.lower() for h in HOSTED_MODEL_MARKERS)]
        clear = (not report.fallback_detected and report.guard_state == "clear"
                 and not hosted_seen)
        out.append(_c("no_fallback", "ok" if clear else "failed",
                      f"guard {report.guard_state}; "
                      + (f"{len(report.fallback_evidence)} trip(s), first: "
                         f"{report.fallback_evidence[0].detail}"
                         if report.fallback_detected and report.fallback_evidence
                         else "no trip") + (f"; hosted models seen: {hosted_seen}"
                                            if hosted_seen else "")
                      + (f"; {len(report.fallback_warnings)} marker warning(s) while "
                         "isolated" if report.fallback_warnings else "")
                      + f"; Case network: {report.case_network} ({report.case_network_detail})",
                      rep("fallback_detected"), at(first("guard_verdict")),
                      *report.fallback_evidence[:5]))

    comparison = report.comparison
    if report.status != "passed" and not report.stage2_passed:
        out.append(_c("same_run_baseline", "not_applicable", "no pass is claimed"))
    else:
        ok = bool(comparison and comparison.discriminating)
        out.append(_c("same_run_baseline", "ok" if ok else "failed",
                      comparison.detail if comparison else "no comparison in the report",
                      rep("comparison"), at(first("baseline_completed"))))

    out.append(_sandboxed(report))
    if report.case_sandbox is not None and report.case_sandbox.limits_mode is not None:
        out.append(_bounded(report.case_sandbox, report.case_process_started))
    if report.gateway is not None:
        out.append(_gateway_pinned(report))

    if not report.stage2_passed:
        out.append(_c("stage2_pass_evidence", "not_applicable",
                      "Stage 2 did not pass; nothing is claimed"))
    elif demo:
        out.append(_c("stage2_pass_evidence", "not_applicable",
                      "demo endpoint: a demo run never counts as evidence for the real model",
                      Evidence(file="manifest.json", field="demo")))
    else:
        out.append(_c("stage2_pass_evidence", "ok", "Stage 2 passed on the real Case",
                      rep("stage2_passed")))
    return out


def _endpoint_supplied(report: Report, config: dict | None, configured: bool,
                       *evidence: Evidence) -> Criterion:
    """ok only when the trace says where the endpoint came from: a field missing from the
    trace fails the criterion with its reason, never reads as "supplied through None"."""
    if not report.endpoint_configured:
        return _c("endpoint_config_supplied", "failed",
                  "the endpoint was not supplied (or unusable) at runtime", *evidence)
    if config is None:
        return _c("endpoint_config_supplied", "failed", "trace.jsonl has no config_resolved "
                  "event: where the endpoint came from is not recorded", *evidence)
    source = config.get("endpoint_source")
    if not configured or not isinstance(source, str) or not source:
        missing = "endpoint_configured" if not configured else "endpoint_source"
        return _c("endpoint_config_supplied", "failed",
                  f"config_resolved has no {missing}: the report says the endpoint was "
                  "configured, the trace does not say how", *evidence)
    return _c("endpoint_config_supplied", "ok", f"supplied through {source}", *evidence)


def _sandboxed(report: Report) -> Criterion:
    """The opt-out is recorded and fails here: such a run is never evidence for a model."""
    box = report.case_sandbox
    field = Evidence(file="report.json", field="case_sandbox")
    if box is None:
        return _c("case_sandboxed", "failed" if report.case_process_started
                  else "not_applicable", "the report records no sandbox (a run from before "
                  "the sandbox)", field)
    if box.mode == "off":
        return _c("case_sandboxed", "failed", f"{box.detail}; never evidence for a model",
                  field)
    if box.seccomp == "off":
        return _c("case_sandboxed", "failed", "CTO_HARNESS_CASE_SECCOMP=off: the Case ran "
                  "without the seccomp filter; never evidence for a model", field)
    if not report.case_process_started:
        return _c("case_sandboxed", "not_applicable",
                  f"the Case never started ({box.detail})" if not box.ready
                  else "the Case never started", field)
    return _c("case_sandboxed", "ok", f"bwrap {box.bwrap_version}, host uid {box.host_uid}, "
              f"network {box.network}, namespaces {', '.join(box.namespaces)}", field)


def _bounded(box: CaseSandbox, started: bool) -> Criterion:
    """Only for reports that record limits (older ones, and runs blocked before they were
    set up, say nothing of them). The opt-out fails here: never evidence for a model."""
    field = Evidence(file="report.json", field="case_sandbox.limits_mode")
    if box.limits_mode == "off":
        return _c("case_bounded", "failed", f"{box.limits_detail}; never evidence for a model",
                  field)
    if not started:
        return _c("case_bounded", "not_applicable", "the Case never started", field)
    hit = f"; reached: {'; '.join(box.limits_hit)}" if box.limits_hit else ""
    return _c("case_bounded", "ok", f"{box.limits_detail}{hit}", field)


def _gateway_pinned(report: Report) -> Criterion:
    """Only for runs through a gateway. Plain http is the explicit opt-out: it fails here,
    never evidence for a model (the prompts and the token crossed the network readable)."""
    gateway = report.gateway
    assert gateway is not None
    field = Evidence(file="report.json", field="gateway")
    if gateway.plain_http or gateway.fingerprint is None:
        return _c("gateway_pinned", "failed", f"through the gateway at {gateway.url} over "
                  "plain http (CTO_HARNESS_GATEWAY_PLAIN_HTTP=allow); never evidence for a "
                  "model", field)
    return _c("gateway_pinned", "ok", f"through the gateway at {gateway.url}, TLS pinned to "
              f"sha256 {gateway.fingerprint}", field)


def _signed(paths: RunPaths, report: Report, report_bytes: bytes, now: dict[str, str],
            key: VerifyKey | None) -> tuple[Criterion, SignatureCheck]:
    """The attestation verified with `key`, else the local key (never made here)."""
    check = check_run(paths.root, report, report_bytes, now, *verify_key(key, os.environ))
    return _c("evidence_signed", "ok" if check.ok else "failed", check.detail,
              Evidence(file=ATTESTATION), Evidence(file="report.json", field="signing")), check


def validate_run(run_dir: Path, key: VerifyKey | None = None) -> Validation:
    """The run's criteria; its signature checked with `key` (`--key PUB`), else with the
    local signing key's public half."""
    paths = RunPaths(Path(run_dir))

    def verdict(status: str, problems: list[str], criteria: list[Criterion] | None = None,
                demo: bool = False) -> Validation:
        return Validation(run_id=paths.run_id, run_dir=str(paths.root), ok=False,
                          status=status, demo=demo, stage2_pass_evidence=False,
                          criteria=criteria or [], problems=problems)

    if not paths.root.is_dir():
        return verdict("missing", [f"{paths.root} is not a directory"])
    try:
        manifest = load_manifest(paths.root)
        report = load_report(paths.root)
    except Unreadable as exc:
        return verdict("unreadable", [str(exc)])
    if manifest is None:
        return verdict("unreadable", ["manifest.json is missing: not a run directory"])
    if report is None:
        return verdict("incomplete", ["report.json is missing: the run is still going or "
                                      "was interrupted; there is nothing to validate yet"],
                       demo=manifest.demo)
    events, chain_problems = check_chain(paths)
    try:
        with open_regular(paths.report) as fh:
            report_bytes = fh.read()
    except OSError as exc:
        return verdict("unreadable", [f"report.json: {exc.strerror}"], demo=manifest.demo)
    now = current_digests(paths, report)
    signed, check = _signed(paths, report, report_bytes, now, key)
    criteria = [*_criteria(paths, manifest, report, events),
                _integrity(paths, report, events, chain_problems, now, report_bytes), signed]
    problems = [c.detail for c in criteria if c.verdict == "failed"]
    if (report.status == "passed") != (report.failure_class is None) and (
            report.status == "passed" or "failure_class" in report.model_fields_set):
        # a report from before the field lacks it; a newer one has it, set exactly when the
        # run did not pass
        problems.append(f"failure_class is {report.failure_class or 'missing'} on a "
                        f"{report.status} run: the report was not written by this harness")
    ok = not problems
    stage2 = ok and any(c.id == "stage2_pass_evidence" and c.verdict == "ok" for c in criteria)
    return Validation(run_id=paths.run_id, run_dir=str(paths.root), ok=ok,
                      status=report.status, failure_class=report.failure_class,
                      demo=manifest.demo or report.demo, stage2_pass_evidence=stage2,
                      criteria=criteria, problems=problems,
                      signature=check.signature, keyid=check.keyid)
