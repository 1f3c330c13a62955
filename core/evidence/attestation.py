"""`attestation.intoto.jsonl`: a run's (or a job's) evidence signed, as a DSSE envelope
holding an in-toto Statement v1.

Why this format: a reviewer, CI or another team checks it with tools that are not ours (the
README shows openssl alone; securesystemslib's `dsse.Envelope.verify` reads it as is), and
it says in one standard shape *which* files the verdict covers and *what* the verdict was.

- envelope: `{"payloadType": "application/vnd.in-toto+json", "payload": <base64 Statement>,
  "signatures": [{"keyid": <securesystemslib's id>, "sig": <base64 Ed25519>}]}`, one line;
  the signature is over DSSE's pre-authentication encoding
  `DSSEv1 <len(type)> <type> <len(body)> <body>` (what `pae` builds, as the spec says).
- statement: `subject` is every file of the run: report.json and trace.jsonl by their plain
  `sha256`, every other artifact by the digest report.json records for it (`cto-harness-v1`,
  README: the block digest of a regular file, the link digest of a link) so nothing is hashed
  twice; `predicate` is the verdict under RUN_PREDICATE (or, for a job, JOB_PREDICATE).

Signing is the harness's (cryptography's Ed25519); verification here is for `validate`, and
tests verify with securesystemslib and openssl instead.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from cryptography.exceptions import InvalidSignature

from core import __version__
from core.evidence.keys import SigningKey, VerifyKey
from core.evidence.models import Report
from core.evidence.rundir import UNHASHED, NotRegularFile, atomic_write_bytes, open_regular

ATTESTATION = "attestation.intoto.jsonl"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
RUN_PREDICATE = "urn:cto-harness:predicate:run:v1"
JOB_PREDICATE = "urn:cto-harness:predicate:job:v1"
ARTIFACT_DIGEST = "cto-harness-v1"
"""The DigestSet name of the report's artifact digests (not a plain SHA-256 of the bytes:
the block digest of core/evidence/extents.py, or a link's target digest)."""
MAX_ENVELOPE_BYTES = 256 * 1024 * 1024
"""A run of a million artifacts is ~150 MB of envelope; beyond that it is not ours."""

PREDICATE_FIELDS = (
    "run_id", "status", "exit_code", "stage", "stage2_passed", "reasons", "task", "engine",
    "demo", "retry_of", "case_model_provider", "case_model", "case_model_admission_status",
    "endpoint_configured", "case_process_started", "case_exit_code", "case_network",
    "case_sandbox", "signing", "fallback_detected", "fallback_evidence", "guard_state",
    "relay", "checks", "baseline", "comparison", "leak_detected", "started_at",
    "finished_at", "failure_class",
)
"""The verdict as the predicate carries it: report.json's fields that say what happened
(the report itself is a subject, so the rest is vouched for too)."""


def pae(payload_type: str, body: bytes) -> bytes:
    """DSSE v1's pre-authentication encoding: what is signed."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %b %d %b" % (len(kind), kind, len(body), body)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def envelope_line(statement: dict[str, Any], key: SigningKey) -> bytes:
    """The signed envelope as one JSON line."""
    body = json.dumps(statement, ensure_ascii=False, separators=(",", ":")).encode()
    sig = key.sign(pae(PAYLOAD_TYPE, body))
    env = {"payloadType": PAYLOAD_TYPE, "payload": _b64(body),
           "signatures": [{"keyid": key.keyid, "sig": _b64(sig)}]}
    return json.dumps(env, separators=(",", ":")).encode() + b"\n"


def run_statement(report: Report, report_bytes: bytes, trace_bytes: bytes,
                  keyid: str) -> dict[str, Any]:
    """The Statement over a finished run: report.json, trace.jsonl and every artifact the
    report hashed (UNHASHED or unreadable ones are named in the predicate, not subjects:
    a subject needs a digest)."""
    subject = [{"name": "report.json", "digest": {"sha256": hashlib.sha256(report_bytes)
                                                  .hexdigest()}},
               {"name": "trace.jsonl", "digest": {"sha256": hashlib.sha256(trace_bytes)
                                                  .hexdigest()}}]
    undigested: list[str] = []
    for name, digest in sorted(report.artifacts.items()):
        if digest == UNHASHED or digest.startswith("unreadable"):
            undigested.append(name)
        else:
            subject.append({"name": name, "digest": {ARTIFACT_DIGEST: digest}})
    verdict = report.model_dump(mode="json", include=set(PREDICATE_FIELDS))
    predicate = {"harness": {"name": "cto-harness", "version": __version__},
                 "keyid": keyid, "verdict": verdict, "undigested": undigested}
    return {"_type": STATEMENT_TYPE, "subject": subject, "predicateType": RUN_PREDICATE,
            "predicate": predicate}


def sign_run(root: Path, report: Report, report_text: str, key: SigningKey) -> Path:
    """Write `attestation.intoto.jsonl` over a finished run (its trace closed): the
    report's bytes as written, the trace's as on disk (the harness's own file, out of the
    Case's reach)."""
    with open_regular(root / "trace.jsonl") as fh:
        trace = fh.read()
    statement = run_statement(report, report_text.encode("utf-8"), trace, key.keyid)
    path = root / ATTESTATION
    atomic_write_bytes(path, envelope_line(statement, key))
    return path


def sign_job(folder: Path, job_json: bytes, summary: dict[str, Any],
             trials: dict[str, Path], key: SigningKey) -> Path:
    """The job's attestation beside job.json: its subjects job.json and every trial's
    attestation (by `<run_id>/attestation.intoto.jsonl`; a trial that has none is listed in
    the predicate as unsigned), its predicate the summary."""
    subject = [{"name": "job.json", "digest": {"sha256": hashlib.sha256(job_json)
                                               .hexdigest()}}]
    unsigned: list[str] = []
    for run_id, run_dir in sorted(trials.items()):
        try:
            with open_regular(run_dir / ATTESTATION) as fh:
                data = fh.read(MAX_ENVELOPE_BYTES)
        except OSError:
            unsigned.append(run_id)
            continue
        subject.append({"name": f"{run_id}/{ATTESTATION}",
                        "digest": {"sha256": hashlib.sha256(data).hexdigest()}})
    statement = {"_type": STATEMENT_TYPE, "subject": subject, "predicateType": JOB_PREDICATE,
                 "predicate": {"harness": {"name": "cto-harness", "version": __version__},
                               "keyid": key.keyid, "summary": summary,
                               "unsigned_trials": unsigned}}
    path = folder / ATTESTATION
    atomic_write_bytes(path, envelope_line(statement, key))
    return path


class BadEnvelope(ValueError):
    """The attestation is not a signed envelope of ours that `key` verifies; the message
    says what (one line)."""


@dataclass(frozen=True)
class Verified:
    """A statement whose signature `key` verified, and the signer's keyid."""

    statement: dict[str, Any]
    keyid: str


def read_envelope(path: Path) -> dict[str, Any]:
    """The envelope at `path`, parsed (no link, FIFO or oversized file); BadEnvelope or
    FileNotFoundError."""
    try:
        with open_regular(path) as fh:
            data = fh.read(MAX_ENVELOPE_BYTES + 1)
    except NotRegularFile as exc:
        raise BadEnvelope(f"{path.name} is {exc.strerror}") from None
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise BadEnvelope(f"{path.name} cannot be read ({exc.strerror})") from None
    if len(data) > MAX_ENVELOPE_BYTES:
        raise BadEnvelope(f"{path.name} is larger than any attestation the harness writes")
    try:
        env = json.loads(data)
    except ValueError:
        raise BadEnvelope(f"{path.name} is not JSON") from None
    if not isinstance(env, dict) or not isinstance(env.get("signatures"), list):
        raise BadEnvelope(f"{path.name} is not a DSSE envelope")
    return env


def verify_envelope(env: dict[str, Any], key: VerifyKey, name: str) -> Verified:
    """The statement inside `env` if a signature by `key` verifies over its PAE."""
    if env.get("payloadType") != PAYLOAD_TYPE:
        raise BadEnvelope(f"{name}: payloadType is {env.get('payloadType')!r}, not "
                          f"{PAYLOAD_TYPE}")
    try:
        body = base64.b64decode(env.get("payload", ""), validate=True)
    except (binascii.Error, TypeError, ValueError):
        raise BadEnvelope(f"{name}: payload is not base64") from None
    sigs = [s for s in env["signatures"] if isinstance(s, dict)]
    mine = [s for s in sigs if s.get("keyid") == key.keyid]
    if not mine:
        others = ", ".join(str(s.get("keyid"))[:16] for s in sigs) or "none"
        raise BadEnvelope(f"{name} is signed by another key (keyid {others}…), not by "
                          f"{key.source} ({key.keyid[:16]}…)")
    for sig in mine:
        try:
            key.public.verify(base64.b64decode(sig.get("sig", ""), validate=True),
                              pae(PAYLOAD_TYPE, body))
        except (InvalidSignature, binascii.Error, TypeError, ValueError):
            continue
        try:
            statement = json.loads(body)
        except ValueError:
            raise BadEnvelope(f"{name}: the signed payload is not JSON") from None
        if not isinstance(statement, dict) or statement.get("_type") != STATEMENT_TYPE:
            raise BadEnvelope(f"{name}: the signed payload is not an in-toto Statement v1")
        return Verified(statement=statement, keyid=key.keyid)
    raise BadEnvelope(f"{name}: the signature does not verify with {key.source}: the "
                      "envelope was edited or written by someone else")


def subject_digests(statement: dict[str, Any]) -> dict[str, dict[str, str]]:
    """The statement's subjects by name (malformed entries dropped: they match nothing)."""
    out: dict[str, dict[str, str]] = {}
    for entry in statement.get("subject") or []:
        if isinstance(entry, dict) and isinstance(entry.get("name"), str) \
                and isinstance(entry.get("digest"), dict):
            out[entry["name"]] = entry["digest"]
    return out


@dataclass(frozen=True)
class SignatureCheck:
    """What `validate` says of a run's attestation: `signature` (verified, unsigned,
    invalid, or None when no key could be had), the problems found, and a one-line detail."""

    signature: Literal["verified", "unsigned", "invalid"] | None
    keyid: str | None
    detail: str
    problems: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.signature == "verified" and not self.problems


def _unsigned_why(report: Report) -> str | None:
    """Why a run has no attestation by design, or None when it should have one."""
    sig = report.signing
    if sig is None:
        return "unsigned: a run from before signed evidence"
    if sig.mode == "off":
        return "unsigned: signing was opted out (CTO_HARNESS_SIGNING=off)"
    if sig.keyid is None:
        return f"unsigned: {sig.detail or 'the signing key could not be used'}"
    return None


def _statement(env: dict[str, Any], key: VerifyKey | None, key_problem: str | None,
               predicate: str) -> dict[str, Any] | SignatureCheck:
    """The statement of `env` once its signature by `key` verifies and it is of type
    `predicate` (a run's or a job's); else the SignatureCheck that says why not."""
    if key is None:
        return SignatureCheck(None, None, f"cannot verify the signature: {key_problem}; or "
                              "give the signer's public key with --key PUB")
    try:
        statement = verify_envelope(env, key, ATTESTATION).statement
    except BadEnvelope as exc:
        return SignatureCheck("invalid", key.keyid, str(exc))
    if statement.get("predicateType") != predicate:
        return SignatureCheck("invalid", key.keyid, f"{ATTESTATION}: predicateType is "
                              f"{statement.get('predicateType')!r}, not {predicate}")
    return statement


def _found(key: VerifyKey, problems: list[str]) -> SignatureCheck:
    """A signature that verifies over files that changed since: the first five named."""
    more = f" (+{len(problems) - 5} more)" if len(problems) > 5 else ""
    return SignatureCheck("verified", key.keyid, "; ".join(problems[:5]) + more,
                          tuple(problems))


def check_run(root: Path, report: Report, report_bytes: bytes, now: dict[str, str],
              key: VerifyKey | None, key_problem: str | None) -> SignatureCheck:
    """The run's attestation against `key` and the files as they are now (`now`: the
    digests validate took of every file but report, trace and attestation; nothing is
    hashed again here but the trace). A file edited after the fact, re-hashed or not, is
    named."""
    path = root / ATTESTATION
    why = _unsigned_why(report)
    try:
        env = read_envelope(path)
    except FileNotFoundError:
        if why:
            return SignatureCheck("unsigned", None, why + "; never real-model evidence")
        return SignatureCheck("invalid", None, f"{ATTESTATION} is missing, yet report.json "
                              "says the run was signed (removed after the fact?)")
    except BadEnvelope as exc:
        return SignatureCheck("invalid", None, str(exc))
    statement = _statement(env, key, key_problem, RUN_PREDICATE)
    if isinstance(statement, SignatureCheck):
        return statement
    assert key is not None  # without a key, _statement has answered
    problems = _subject_problems(root, statement, report, report_bytes, now)
    if problems:
        return _found(key, problems)
    return SignatureCheck("verified", key.keyid, f"Ed25519 signature by {key.source} "
                          f"verified over {len(statement.get('subject') or [])} files")


def _subject_problems(root: Path, statement: dict[str, Any], report: Report,
                      report_bytes: bytes, now: dict[str, str]) -> list[str]:
    signed = subject_digests(statement)
    problems: list[str] = []
    if signed.get("report.json", {}).get("sha256") != hashlib.sha256(report_bytes).hexdigest():
        problems.append("report.json: differs from the signed attestation")
        # a forger who re-hashed rewrote report.json's artifact list: name what it changed
        for name, digest in sorted(report.artifacts.items()):
            if name in signed and signed[name].get(ARTIFACT_DIGEST) != digest:
                problems.append(f"{name}: re-hashed in report.json, differs from the "
                                "signed attestation")
    try:
        with open_regular(root / "trace.jsonl") as fh:
            trace = hashlib.sha256(fh.read()).hexdigest()
    except OSError:
        trace = None
    if signed.get("trace.jsonl", {}).get("sha256") != trace:
        problems.append("trace.jsonl: differs from the signed attestation")
    undigested = set((statement.get("predicate") or {}).get("undigested") or [])
    for name, signed_digest in sorted(signed.items()):
        if name in ("report.json", "trace.jsonl"):
            continue
        if name not in now:
            problems.append(f"{name}: signed, but missing now")
        elif signed_digest.get(ARTIFACT_DIGEST) != now[name]:
            problems.append(f"{name}: changed after the run was signed (digest differs "
                            "from the attestation)")
    for name in sorted(now.keys() - signed.keys() - undigested):
        problems.append(f"{name}: not in the signed attestation (added afterwards)")
    return problems


def check_job(folder: Path, key: VerifyKey | None, key_problem: str | None) -> SignatureCheck:
    """A job's attestation against `key`: job.json as it is now, and each trial's
    attestation under the runs root (the job folder is `<runs_root>/jobs/<job_id>`)."""
    runs_root = folder.parent.parent
    try:
        env = read_envelope(folder / ATTESTATION)
    except FileNotFoundError:
        return SignatureCheck("unsigned", None, "unsigned: the job has no attestation (it "
                              "has not ended, signing was off, or it is from before signed "
                              "evidence); never real-model evidence")
    except BadEnvelope as exc:
        return SignatureCheck("invalid", None, str(exc))
    statement = _statement(env, key, key_problem, JOB_PREDICATE)
    if isinstance(statement, SignatureCheck):
        return statement
    assert key is not None  # without a key, _statement has answered
    problems = []
    for name, digest in sorted(subject_digests(statement).items()):
        path = folder / name if name == "job.json" else runs_root / name
        try:
            with open_regular(path) as fh:
                now = hashlib.sha256(fh.read(MAX_ENVELOPE_BYTES)).hexdigest()
        except OSError:
            problems.append(f"{name}: signed, but missing or unreadable now")
            continue
        if digest.get("sha256") != now:
            problems.append(f"{name}: changed after the job was signed")
    if problems:
        return _found(key, problems)
    return SignatureCheck("verified", key.keyid, f"Ed25519 signature by {key.source} "
                          f"verified over job.json and {len(statement['subject']) - 1} "
                          "trial attestations")
