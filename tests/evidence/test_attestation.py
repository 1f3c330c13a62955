"""Signed evidence: a run's `attestation.intoto.jsonl` verified by implementations that are
not ours (securesystemslib's DSSE, openssl over the pre-authentication encoding), and every
forgery tried (an edit after the scan, an edit re-hashed and re-chained, another account's
envelope) failing `validate` with the file named. Real runs of the harness, real openssl,
a real second account."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import pwd
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from securesystemslib.dsse import Envelope
from securesystemslib.exceptions import VerificationError
from securesystemslib.signer import SSlibKey

from core.evidence.attestation import (
    ARTIFACT_DIGEST,
    ATTESTATION,
    PAYLOAD_TYPE,
    RUN_PREDICATE,
    STATEMENT_TYPE,
    pae,
)
from core.evidence.extents import file_digest
from core.evidence.keys import (
    KEY_FILE_VAR,
    KeyProblem,
    load_public_key,
    load_signing_key,
    public_pem,
)
from core.evidence.rundir import line_hash
from tests.support.harness import ROOT, Harness
from tests.support.signing import FIXTURE_PRIVATE, write_key


@pytest.fixture(scope="module")
def signed_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One real run (the demo: the reference Case against the stand-in endpoint, passed),
    signed with the suite's key; tests copy it before editing."""
    root = tmp_path_factory.mktemp("signed")
    env = {k: v for k, v in os.environ.items() if k != "CTO_HARNESS_SIGNING"}
    env.update(CTO_HARNESS_RUNS_ROOT=str(root / "runs"), PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-m", "core.cli", "run", "--demo", "--json"],
                          env=env, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return Path(json.loads(proc.stdout)["run_dir"])


def copy_of(run: Path, tmp_path: Path) -> Path:
    dest = tmp_path / run.name
    shutil.copytree(run, dest, symlinks=True)
    return dest


def validate(run: Path, *extra: str, env: dict[str, str] | None = None) -> dict:
    proc = subprocess.run([sys.executable, "-m", "core.cli", "validate", str(run), "--json",
                           *extra], env=env or dict(os.environ, PYTHONPATH=str(ROOT)),
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert "Traceback" not in proc.stderr, proc.stderr
    return json.loads(proc.stdout)


def criterion(result: dict, cid: str) -> dict:
    return next(c for c in result["criteria"] if c["id"] == cid)


def envelope(run: Path) -> dict:
    lines = (run / ATTESTATION).read_bytes().splitlines()
    assert len(lines) == 1
    return json.loads(lines[0])


def test_the_envelope_is_dsse_over_an_in_toto_statement_of_every_file(signed_run: Path) -> None:
    env = envelope(signed_run)
    assert env["payloadType"] == PAYLOAD_TYPE == "application/vnd.in-toto+json"
    statement = json.loads(base64.b64decode(env["payload"]))
    assert statement["_type"] == STATEMENT_TYPE == "https://in-toto.io/Statement/v1"
    assert statement["predicateType"] == RUN_PREDICATE
    report = json.loads((signed_run / "report.json").read_bytes())
    subjects = {s["name"]: s["digest"] for s in statement["subject"]}
    assert subjects["report.json"] == {
        "sha256": hashlib.sha256((signed_run / "report.json").read_bytes()).hexdigest()}
    assert subjects["trace.jsonl"] == {
        "sha256": hashlib.sha256((signed_run / "trace.jsonl").read_bytes()).hexdigest()}
    assert {n: d[ARTIFACT_DIGEST] for n, d in subjects.items()
            if n not in ("report.json", "trace.jsonl")} == report["artifacts"]
    assert any(n.startswith("workspace/") for n in subjects), "the workspace's files too"
    verdict = statement["predicate"]["verdict"]
    assert verdict["status"] == report["status"] == "passed"
    assert verdict["case_sandbox"] == report["case_sandbox"]
    assert statement["predicate"]["harness"]["name"] == "cto-harness"
    assert report["signing"]["keyid"] == env["signatures"][0]["keyid"]


def test_securesystemslib_verifies_the_envelope_by_the_keyid_it_computes(
        signed_run: Path) -> None:
    key = SSlibKey.from_crypto(FIXTURE_PRIVATE.public_key())
    env = Envelope.from_dict(envelope(signed_run))
    assert [s.keyid for s in env.signatures.values()] == [key.keyid]
    accepted = env.verify([key], 1)
    assert list(accepted) == [key.keyid]
    stranger = SSlibKey.from_crypto(Ed25519PrivateKey.generate().public_key())
    with pytest.raises(VerificationError):
        env.verify([stranger], 1)


def test_openssl_verifies_the_signature_over_the_pre_authentication_encoding(
        signed_run: Path, tmp_path: Path) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("no openssl on this machine")
    env = envelope(signed_run)
    body = base64.b64decode(env["payload"])
    (tmp_path / "pae.bin").write_bytes(b"DSSEv1 %d %b %d %b" % (
        len(PAYLOAD_TYPE), PAYLOAD_TYPE.encode(), len(body), body))
    assert (tmp_path / "pae.bin").read_bytes() == pae(PAYLOAD_TYPE, body)
    (tmp_path / "sig.bin").write_bytes(base64.b64decode(env["signatures"][0]["sig"]))
    (tmp_path / "pub.pem").write_text(public_pem(FIXTURE_PRIVATE.public_key()))
    verify = ["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", "pub.pem", "-rawin",
              "-in", "pae.bin", "-sigfile", "sig.bin"]
    ok = subprocess.run(verify, cwd=tmp_path, capture_output=True, text=True, timeout=30)
    assert ok.returncode == 0 and "Signature Verified Successfully" in ok.stdout, ok
    (tmp_path / "pae.bin").write_bytes(pae(PAYLOAD_TYPE, body.replace(b"passed", b"failed")))
    bad = subprocess.run(verify, cwd=tmp_path, capture_output=True, text=True, timeout=30)
    assert bad.returncode != 0 and "Signature Verified Successfully" not in bad.stdout


def test_validate_verifies_with_the_local_key_or_the_one_given(
        signed_run: Path, tmp_path: Path) -> None:
    result = validate(signed_run)
    assert result["ok"] and result["signature"] == "verified", result["problems"]
    assert criterion(result, "evidence_signed")["verdict"] == "ok"
    (tmp_path / "pub.pem").write_text(public_pem(FIXTURE_PRIVATE.public_key()))
    given = validate(signed_run, "--key", str(tmp_path / "pub.pem"))
    assert given["ok"] and given["signature"] == "verified"
    other = tmp_path / "other.pem"
    other.write_text(public_pem(Ed25519PrivateKey.generate().public_key()))
    wrong = validate(signed_run, "--key", str(other))
    assert not wrong["ok"] and wrong["signature"] == "invalid"
    assert "signed by another key" in criterion(wrong, "evidence_signed")["detail"]


def test_an_edit_after_the_scan_fails_validate_with_the_file_named(
        signed_run: Path, tmp_path: Path) -> None:
    """What the Case could do if anything of it outlived the scan: write its workspace."""
    run = copy_of(signed_run, tmp_path)
    target = next(p for p in sorted((run / "workspace").rglob("*.py")))
    target.write_text(target.read_text() + "\n# edited after the scan\n")
    name = str(target.relative_to(run))
    result = validate(run)
    assert not result["ok"]
    detail = criterion(result, "evidence_signed")["detail"]
    assert f"{name}: changed after the run was signed" in detail, detail


def test_an_edit_rehashed_and_rechained_fails_validate(signed_run: Path,
                                                       tmp_path: Path) -> None:
    """The forgery the hash chain alone accepted: edit a file, re-hash it into report.json,
    re-chain the trace from report_written on. Only the signature still catches it."""
    run = copy_of(signed_run, tmp_path)
    target = next(p for p in sorted((run / "workspace").rglob("*.py")))
    target.write_text(target.read_text() + "\n# planted\n")
    name = str(target.relative_to(run))
    report = json.loads((run / "report.json").read_bytes())
    with target.open("rb") as fh:
        report["artifacts"][name] = file_digest(fh.fileno(), os.fstat(fh.fileno()))
    text = json.dumps(report, indent=2) + "\n"
    (run / "report.json").write_text(text)
    lines = (run / "trace.jsonl").read_bytes().splitlines()
    out, prev = [], None
    for raw in lines:
        event = json.loads(raw)
        if prev is not None:
            event["prev"] = prev
        if event["event"] == "report_written":
            event["report_sha256"] = hashlib.sha256(text.encode()).hexdigest()
        line = json.dumps(event, ensure_ascii=False).encode()
        out.append(line)
        prev = line_hash(line)
    (run / "trace.jsonl").write_bytes(b"\n".join(out) + b"\n")
    result = validate(run)
    assert criterion(result, "evidence_intact")["verdict"] == "ok", "a consistent re-hash"
    assert not result["ok"] and result["stage2_pass_evidence"] is False
    detail = criterion(result, "evidence_signed")["detail"]
    assert "report.json: differs from the signed attestation" in detail, detail
    assert f"{name}: re-hashed in report.json" in detail, detail
    assert "trace.jsonl: differs from the signed attestation" in detail, detail


def test_removing_the_attestation_or_opting_out_afterwards_is_never_evidence(
        signed_run: Path, tmp_path: Path) -> None:
    run = copy_of(signed_run, tmp_path)
    (run / ATTESTATION).unlink()
    result = validate(run)
    assert not result["ok"] and result["signature"] == "invalid"
    assert "is missing, yet report.json says the run was signed" in \
        criterion(result, "evidence_signed")["detail"]


def test_an_unsigned_run_says_unsigned_and_is_never_evidence(tmp_path: Path) -> None:
    env = dict(os.environ, CTO_HARNESS_SIGNING="off", PYTHONPATH=str(ROOT),
               CTO_HARNESS_RUNS_ROOT=str(tmp_path / "runs"))
    proc = subprocess.run([sys.executable, "-m", "core.cli", "run", "--engine", "fake",
                           "--json"], env=env, capture_output=True, text=True, timeout=300,
                          cwd=ROOT)
    out = json.loads(proc.stdout)
    run = Path(out["run_dir"])
    assert not (run / ATTESTATION).exists()
    report = json.loads((run / "report.json").read_bytes())
    assert report["signing"]["mode"] == "off"
    result = validate(run)
    assert not result["ok"] and result["signature"] == "unsigned"
    assert criterion(result, "evidence_signed")["detail"].startswith(
        "unsigned: signing was opted out (CTO_HARNESS_SIGNING=off); never real-model evidence")


@pytest.mark.parametrize("problem", ["loose", "malformed", "missing", "foreign"])
def test_a_key_that_cannot_be_used_blocks_the_run_with_one_line(
        harness: Harness, tmp_path: Path, problem: str) -> None:
    key = write_key(tmp_path / "keys" / "signing-key", Ed25519PrivateKey.generate())
    if problem == "loose":
        key.chmod(0o644)
    elif problem == "malformed":
        key.write_text("not a key\n")
    elif problem == "missing":
        key.unlink()
    else:
        os.chown(key, 1000, 1000)
    harness.env[KEY_FILE_VAR] = str(key)
    code, out = harness.run_json("run", "--engine", "fake")
    assert code == 3 and out["status"] == "blocked", out
    report = json.loads((Path(out["run_dir"]) / "report.json").read_bytes())
    reasons = [r for r in report["reasons"] if r.startswith("config: signing key")]
    assert len(reasons) == 1 and str(key) in reasons[0] and "\n" not in reasons[0], report
    assert not report["case_process_started"]
    assert not (Path(out["run_dir"]) / ATTESTATION).exists()
    expected = {"loose": "has mode 0644", "malformed": "is not a PEM private key",
                "missing": "does not exist", "foreign": "is owned by uid 1000"}[problem]
    assert expected in reasons[0], reasons[0]


def test_the_default_key_is_made_once_0600_in_a_0700_folder(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path)}
    first = load_signing_key(env)
    path = tmp_path / ".config" / "cto-harness" / "signing-key"
    assert first.path == path
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
    assert load_signing_key(env).keyid == first.keyid
    with pytest.raises(KeyProblem, match="does not exist"):
        load_signing_key({"HOME": str(tmp_path / "elsewhere")}, create=False)


def test_key_prints_the_public_key_and_the_id_securesystemslib_computes(
        tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-m", "core.cli", "key", "--json"], env=env,
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    shown = json.loads(proc.stdout)
    assert shown["keyid"] == SSlibKey.from_crypto(FIXTURE_PRIVATE.public_key()).keyid
    (tmp_path / "pub.pem").write_text(shown["public_key_pem"])
    assert load_public_key(tmp_path / "pub.pem").keyid == shown["keyid"]
    text = subprocess.run([sys.executable, "-m", "core.cli", "key"], env=env,
                          capture_output=True, text=True, timeout=60, cwd=ROOT).stdout
    assert text.startswith(f"keyid {shown['keyid']}\n-----BEGIN PUBLIC KEY-----")
    env[KEY_FILE_VAR] = str(tmp_path / "nowhere")
    missing = subprocess.run([sys.executable, "-m", "core.cli", "key"], env=env,
                             capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert missing.returncode == 2 and len(missing.stderr.splitlines()) == 1
    assert f"signing key {tmp_path / 'nowhere'} does not exist" in missing.stderr


def _other_account() -> str:
    """A second local account (made here if missing): the adversary of the threat model."""
    name = "ctoforger"
    try:
        pwd.getpwnam(name)
    except KeyError:
        if os.geteuid() != 0 or shutil.which("useradd") is None:
            pytest.skip("cannot make a second local account here (not root, or no useradd)")
        subprocess.run(["useradd", "--create-home", name], check=True, capture_output=True)
    return name


def test_a_second_account_cannot_sign_a_run_that_validates(signed_run: Path,
                                                           tmp_path: Path) -> None:
    """Another account edits the verdict and signs the new statement with a key of its own
    (openssl, in its own home: it has neither our key nor need of our code), under its own
    keyid and under ours: validate by the run's owner refuses both, naming the key or the
    signature; with the forger's key given, its envelope verifies (so the refusal is the
    key's, not the format's)."""
    name = _other_account()
    user = pwd.getpwnam(name)
    work = Path(user.pw_dir) / f"forge-{os.getpid()}-{tmp_path.name}"
    work.mkdir()
    shutil.chown(work, user.pw_uid, user.pw_gid)
    try:
        run = copy_of(signed_run, tmp_path)
        original = envelope(run)
        statement = json.loads(base64.b64decode(original["payload"]))
        statement["predicate"]["verdict"]["status"] = "passed"
        statement["predicate"]["verdict"]["case_model"] = "some-other-model"
        body = json.dumps(statement).encode()
        (work / "pae.bin").write_bytes(pae(PAYLOAD_TYPE, body))

        def as_forger(*argv: str) -> None:
            subprocess.run(argv, cwd=work, user=name, check=True, capture_output=True,
                           timeout=30, env={"PATH": "/usr/bin:/bin", "HOME": user.pw_dir})

        as_forger("openssl", "genpkey", "-algorithm", "ed25519", "-out", "key.pem")
        as_forger("openssl", "pkeyutl", "-sign", "-inkey", "key.pem", "-rawin", "-in",
                  "pae.bin", "-out", "sig.bin")
        as_forger("openssl", "pkey", "-in", "key.pem", "-pubout", "-out", "pub.pem")
        assert (work / "key.pem").stat().st_uid == user.pw_uid
        forger = load_public_key(work / "pub.pem")
        sig = base64.b64encode((work / "sig.bin").read_bytes()).decode()
        for keyid, says in ((forger.keyid, "signed by another key"),
                            (original["signatures"][0]["keyid"], "does not verify")):
            forged = {"payloadType": PAYLOAD_TYPE,
                      "payload": base64.b64encode(body).decode(),
                      "signatures": [{"keyid": keyid, "sig": sig}]}
            (run / ATTESTATION).write_text(json.dumps(forged) + "\n")
            result = validate(run)
            assert not result["ok"] and result["signature"] == "invalid", result
            assert says in criterion(result, "evidence_signed")["detail"]
        (run / ATTESTATION).write_text(json.dumps(
            {"payloadType": PAYLOAD_TYPE, "payload": base64.b64encode(body).decode(),
             "signatures": [{"keyid": forger.keyid, "sig": sig}]}) + "\n")
        theirs = validate(run, "--key", str(work / "pub.pem"))
        assert theirs["signature"] == "verified", theirs
    finally:
        shutil.rmtree(work)


def test_a_jobs_summary_is_signed_over_every_trials_attestation(harness: Harness) -> None:
    code, out = harness.run_json("job", "--task", "r1-string-slugify", "--attempts", "2",
                                 "--concurrency", "2", "--name", "signed", timeout=300)
    assert code == 0, out
    folder = harness.runs_root / "jobs" / out["job_id"]
    job = json.loads((folder / "job.json").read_bytes())
    env = envelope(folder)
    Envelope.from_dict(env).verify([SSlibKey.from_crypto(FIXTURE_PRIVATE.public_key())], 1)
    statement = json.loads(base64.b64decode(env["payload"]))
    assert statement["predicateType"] == "urn:cto-harness:predicate:job:v1"
    assert statement["predicate"]["summary"] == job["summary"]
    subjects = {s["name"]: s["digest"]["sha256"] for s in statement["subject"]}
    trials = [t["run_id"] for t in job["trials"]]
    assert set(subjects) == {"job.json", *(f"{r}/{ATTESTATION}" for r in trials)}
    for run_id in trials:
        data = (harness.runs_root / run_id / ATTESTATION).read_bytes()
        assert subjects[f"{run_id}/{ATTESTATION}"] == hashlib.sha256(data).hexdigest()
    code, checked = harness.run_json("validate", str(folder))
    assert code == 0 and checked["signature"] == "verified", checked
    trial = harness.runs_root / trials[0] / ATTESTATION
    trial.write_bytes(trial.read_bytes().replace(b'"sig":"', b'"sig":"A', 1))
    code, checked = harness.run_json("validate", str(folder))
    assert code == 1 and not checked["ok"]
    assert f"{trials[0]}/{ATTESTATION}: changed after the job was signed" in checked["detail"]


def readme_openssl_block() -> str:
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"```sh\n(# verify: openssl\b.*?)```", readme, re.S)
    assert block, "README has no `# verify: openssl` block"
    return block.group(1)


def test_the_readmes_openssl_recipe_verifies_a_run_and_refuses_an_edited_one(
        signed_run: Path, tmp_path: Path) -> None:
    """The README's commands, word for word, with bash, openssl and coreutils alone."""
    if shutil.which("openssl") is None:
        pytest.skip("no openssl on this machine")
    script = readme_openssl_block()
    (tmp_path / "signer.pem").write_text(public_pem(FIXTURE_PRIVATE.public_key()))

    def recipe(run: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["bash", "-c", script], cwd=tmp_path, capture_output=True,
                              text=True, timeout=60,
                              env={"PATH": "/usr/bin:/bin", "RUN": str(run)})

    good = recipe(signed_run)
    assert good.returncode == 0, good.stderr
    assert good.stdout.splitlines() == ["Signature Verified Successfully",
                                        "report.json: as signed", "trace.jsonl: as signed"]
    run = copy_of(signed_run, tmp_path / "copy")
    report = run / "report.json"
    report.write_bytes(report.read_bytes().replace(b'"status": "passed"',
                                                   b'"status": "failed"', 1))
    edited = recipe(run)
    assert edited.stdout.splitlines() == ["Signature Verified Successfully",
                                          "trace.jsonl: as signed"], edited.stdout
    env = envelope(run)
    body = base64.b64decode(env["payload"]).replace(b'"passed"', b'"failed"', 1)
    env["payload"] = base64.b64encode(body).decode()
    (run / ATTESTATION).write_text(json.dumps(env, separators=(",", ":")) + "\n")
    forged = recipe(run)
    assert forged.returncode != 0 and "Signature Verified Successfully" not in forged.stdout
