"""The gateway as it is used: `cto-harness gateway serve` in its own process holding the
(scripted) endpoint, over real loopback TLS, and real `cto-harness run`s whose relay forwards
to it with only the gateway's address, fingerprint and a token file — no endpoint setting.

What must hold: a run through it passes and its report says so; the two ledgers agree
request by request (`validate --gateway-ledger`); the endpoint, in any of its forms, is in
nothing the run, the gateway's state folder or its stderr hold; and every way the gateway
can refuse a run (wrong, expired or revoked token, wrong fingerprint, plain http without the
opt-out) blocks it with one line saying what to fix — never `failed`, never the Case's.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from core.settings.gateway import pinned_context
from core.standins.endpoint import ScriptedEndpoint
from tests.support.case_runs import wait_for_case
from tests.support.harness import QWEN, ROOT, Harness, answer
from tests.support.sandboxing import secret_endpoint, secret_forms, secret_on_disk

JOB = "nightly-1"
SAYS: dict[str, str] = {}
"""What the endpoint says of itself in every answer: its own secret URL, once a test made it
(a hostile or chatty upstream); only the gateway knows the secret to mask it."""


def answer_and_say(messages: list[dict]) -> str:
    return answer(messages) + f"\nserved by {SAYS.get('secret', 'nobody')}\n"


@pytest.fixture
def upstream() -> Iterator[ScriptedEndpoint]:
    """The module's upstream: the conftest's, but saying its own URL in every answer."""
    with ScriptedEndpoint(responder=answer_and_say, model_id=QWEN) as endpoint:
        yield endpoint
    SAYS.clear()


@dataclass
class Served:
    url: str
    fingerprint: str | None
    state: Path
    proc: subprocess.Popen[str]
    env: dict[str, str]

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "core.cli", "gateway", *args,
                               "--state", str(self.state)], env=self.env, capture_output=True,
                              text=True, timeout=60, cwd=ROOT)

    def token(self, job: str = JOB, *extra: str) -> Path:
        made = self.cli("token", "--job", job, "--json", *extra)
        assert made.returncode == 0, made.stderr
        path = Path(json.loads(made.stdout)["token_file"])
        assert path.read_text().strip() not in made.stdout + made.stderr  # never printed
        return path

    def ledger(self) -> list[dict]:
        path = self.state / "ledger.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] \
            if path.exists() else []

    def stop(self) -> str:
        """Stop the gateway (SIGTERM) and return what it wrote to stderr."""
        if self.proc.poll() is None:
            self.proc.terminate()
        _, err = self.proc.communicate(timeout=30)
        return err


def serve(harness: Harness, upstream: ScriptedEndpoint, state: Path,
          *flags: str) -> tuple[Served, str]:
    """A gateway process on 127.0.0.1:<free> holding a secret form of the endpoint (an
    invented password in its URL), and that URL."""
    secret = secret_endpoint(harness, upstream)
    SAYS["secret"] = secret
    env = dict(harness.env)
    proc = subprocess.Popen([sys.executable, "-m", "core.cli", "gateway", "serve", "--listen",
                             "127.0.0.1:0", "--state", str(state), "--json", *flags],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=ROOT)
    assert proc.stdout is not None
    first = proc.stdout.readline()  # printed once it listens; the condition waited on
    assert first, proc.stderr.read() if proc.stderr else "no output"
    facts = json.loads(first)
    return Served(url=facts["url"], fingerprint=facts["fingerprint"], state=state,
                  proc=proc, env=env), secret


@pytest.fixture
def gateway(harness: Harness, upstream: ScriptedEndpoint,
            tmp_path: Path) -> Iterator[tuple[Served, str]]:
    served, secret = serve(harness, upstream, tmp_path / "gateway-state")
    yield served, secret
    served.stop()


def as_worker(harness: Harness, served: Served, token_file: Path,
              fingerprint: str | None = None, url: str | None = None) -> None:
    """The run's machine: no endpoint setting at all, only the gateway's."""
    for name in ("CTO_HARNESS_CASE_LOCAL_BASE_URL", "CTO_HARNESS_CASE_LOCAL_BASE_URL_FILE"):
        harness.env.pop(name, None)
    harness.env.update({
        "CTO_HARNESS_GATEWAY_URL": url or served.url,
        "CTO_HARNESS_GATEWAY_TOKEN_FILE": str(token_file),
        "CTO_HARNESS_GATEWAY_FINGERPRINT": fingerprint or served.fingerprint or "",
    })


def no_secret_in(text: str, secret: str) -> bool:
    low = text.lower().encode()
    return not any(form in low for form in secret_forms(secret))


def test_a_run_through_the_gateway_passes_says_so_and_the_ledgers_agree(
        harness: Harness, gateway: tuple[Served, str], tmp_path: Path) -> None:
    served, secret = gateway
    token_file = served.token()
    as_worker(harness, served, token_file)
    code, result = harness.run_json("run")
    run_dir = Path(result["run_dir"])
    report = harness.report(run_dir)
    assert (code, report["status"]) == (0, "passed"), report["reasons"]
    assert report["gateway"] == {"url": served.url, "fingerprint": served.fingerprint,
                                 "plain_http": False, "job": None, "run": report["run_id"]}
    mine = [r for r in served.ledger() if r["run"] == report["run_id"]]
    assert mine and {r["job"] for r in mine} == {JOB}
    assert all(r["transport"] == "tls" and r["bytes"] > 0 for r in mine if r["status"] == 200)
    assert [r["path"] for r in mine] == [
        json.loads(line)["path"] for line in
        (run_dir / "backend" / "relay.jsonl").read_text().splitlines()]

    checked = harness.run("validate", str(run_dir), "--gateway-ledger",
                          str(served.state / "ledger.jsonl"), "--json")
    verdicts = {c["id"]: c["verdict"] for c in json.loads(checked.stdout)["criteria"]}
    assert checked.returncode == 0 and verdicts["gateway_ledger_agrees"] == "ok", checked.stdout
    assert verdicts["gateway_pinned"] == "ok"

    # A gateway ledger with one of the run's requests taken out no longer agrees.
    lines = (served.state / "ledger.jsonl").read_text().splitlines()
    cut = next(n for n, line in enumerate(lines) if report["run_id"] in line)
    edited = tmp_path / "edited-ledger.jsonl"
    edited.write_text("\n".join(lines[:cut] + lines[cut + 1:]) + "\n")
    checked = harness.run("validate", str(run_dir), "--gateway-ledger", str(edited), "--json")
    assert checked.returncode == 1 and "has no request in the gateway's ledger" in checked.stdout

    token = token_file.read_text().strip()
    stderr = served.stop()
    assert "endpoint model served: ok" in stderr, stderr  # said at start, without the endpoint
    assert secret_on_disk(run_dir, secret) == []
    assert secret_on_disk(served.state, secret) == []
    assert no_secret_in(stderr, secret), stderr
    assert not any(token.encode() in data for data in
                   (p.read_bytes() for p in run_dir.rglob("*") if p.is_file()))
    assert not any(token.encode() in p.read_bytes() for p in served.state.rglob("*")
                   if p.is_file() and p != token_file)
    assert oct((served.state / "tls" / "key.pem").stat().st_mode & 0o777) == "0o600"
    assert oct(token_file.stat().st_mode & 0o777) == "0o600"


def test_a_jobs_trials_through_the_gateway_agree_with_its_ledger(
        harness: Harness, gateway: tuple[Served, str]) -> None:
    """A local job with the gateway's settings: every trial goes through it, names it in its
    report, and `validate JOB --gateway-ledger` finds each trial's requests there."""
    served, secret = gateway
    as_worker(harness, served, served.token())
    code, out = harness.run_json("job", "--task", "r1-string-slugify", "--attempts", "2",
                                 "--concurrency", "2", "--name", JOB, timeout=300)
    assert code == 0, out
    job_dir = next((harness.runs_root / "jobs").iterdir())
    runs = {t["run_id"] for t in json.loads((job_dir / "job.json").read_text())["trials"]}
    assert len(runs) == 2 and {r["run"] for r in served.ledger()} >= runs
    for run in runs:
        report = harness.report(harness.runs_root / run)
        assert report["gateway"]["job"] == job_dir.name and report["gateway"]["run"] == run
    ledger = str(served.state / "ledger.jsonl")
    checked = harness.run("validate", str(job_dir), "--gateway-ledger", ledger, "--json")
    said = json.loads(checked.stdout)
    assert checked.returncode == 0 and said["ok"], checked.stdout
    assert said["gateway"] == {"ledger": ledger, "ok": True, "trials": 2, "agreeing": 2,
                               "disagreements": {}}
    assert secret_on_disk(harness.runs_root, secret) == []


def _expire(served: Served) -> None:
    """Every token in the gateway's book made to have expired (its own file, as written)."""
    book = served.state / "tokens.json"
    data = json.loads(book.read_text())
    for entry in data["tokens"]:
        entry["expires"] = "2000-01-01T00:00:00Z"
    book.write_text(json.dumps(data))


@pytest.mark.parametrize("how", ["wrong", "expired", "revoked"])
def test_a_token_the_gateway_refuses_blocks_the_run_with_one_line(
        harness: Harness, gateway: tuple[Served, str], tmp_path: Path, how: str) -> None:
    served, secret = gateway
    token_file = served.token()
    if how == "wrong":
        token_file = tmp_path / "wrong.token"
        token_file.write_text("ctogw_" + secrets.token_urlsafe(32) + "\n")
        token_file.chmod(0o600)
    elif how == "expired":
        _expire(served)
    else:
        revoked = served.cli("revoke", "--job", JOB)
        assert revoked.returncode == 0 and "revoked 1 token" in revoked.stdout
    as_worker(harness, served, token_file)
    code, result = harness.run_json("run")
    report = harness.report(result["run_dir"])
    events = [e["event"] for e in harness.trace(result["run_dir"])]
    assert (code, report["status"], report["failure_class"]) == (3, "blocked",
                                                                  "infrastructure")
    assert "case_process_started" not in events
    said = [r for r in report["reasons"] if r.startswith("gateway:")]
    word = {"wrong": "not one this gateway issued", "expired": "expired at",
            "revoked": "was revoked"}[how]
    assert len(said) == 1 and word in said[0] and "\n" not in said[0], report["reasons"]
    assert "CTO_HARNESS_GATEWAY_TOKEN_FILE" in said[0]
    refused = [r for r in served.ledger() if r["status"] == 401]
    assert refused and all(word in r["refused"] for r in refused)
    assert no_secret_in(served.stop(), secret)


ASK_ONCE = '''
base = urlsplit(os.environ["OPENAI_BASE_URL"])
conn = http.client.HTTPConnection(base.hostname, base.port, timeout=30)
conn.request("POST", "/v1/chat/completions", body=json.dumps({
    "model": os.environ["CTO_HARNESS_CASE_MODEL"],
    "messages": [{"role": "user", "content": "hi"}]}),
    headers={"Authorization": "Bearer " + os.environ["OPENAI_API_KEY"],
             "Content-Type": "application/json"})
print("case: asked", conn.getresponse().status, flush=True)
'''
"""A Case's one request through its relay, its status printed (both Cases below end so)."""

LATE_ASKER = '''
import http.client, json, os, sys, time
from urllib.parse import urlsplit

go = os.path.join(sys.argv[1], "go")
print("case: waiting", flush=True)
while not os.path.exists(go):
    time.sleep(0.01)
''' + ASK_ONCE


def test_a_token_revoked_while_the_case_runs_blocks_the_run_not_fails_it(
        harness: Harness, gateway: tuple[Served, str], tmp_path: Path) -> None:
    served, _ = gateway
    case = tmp_path / "late_asker.py"
    case.write_text(f"#!{sys.executable}\n{LATE_ASKER}")
    case.chmod(0o755)
    tmp_path.chmod(0o755)  # the sandbox runs the Case as another uid
    harness.env.update({"CTO_HARNESS_CASE_BIN": str(case),
                        "CTO_HARNESS_CASE_ARGS": "{workspace}"})
    as_worker(harness, served, served.token())
    proc = harness.start("run", "--no-baseline", "--json")
    run_dir = wait_for_case(harness)
    log = run_dir / "backend" / "case.log"
    while "case: waiting" not in (log.read_text() if log.exists() else ""):
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)  # polling the log for the Case's line, not waiting out a clock
    assert served.cli("revoke", "--job", JOB).returncode == 0
    (run_dir / "workspace" / "go").write_text("")
    _out, err = proc.communicate(timeout=120)
    report = harness.report(run_dir)
    assert (proc.returncode, report["status"], report["failure_class"]) == (
        3, "blocked", "infrastructure"), (report["reasons"], err)
    said = [r for r in report["reasons"] if r.startswith("gateway:")]
    assert len(said) == 1 and "was revoked" in said[0], report["reasons"]
    assert "case: asked 502" in log.read_text()


PEEKER = '''
import http.client, json, os, sys
from urllib.parse import urlsplit

try:
    with open(sys.argv[1]) as fh:
        print("case: token file readable", len(fh.read()), flush=True)
except OSError as exc:
    print("case: token file hidden", type(exc).__name__, flush=True)
print("case: gateway variables", sorted(n for n in os.environ if "GATEWAY" in n), flush=True)
''' + ASK_ONCE


def test_the_case_gets_neither_the_token_nor_the_gateways_settings(
        harness: Harness, gateway: tuple[Served, str], tmp_path: Path) -> None:
    """The token reaches the run's relay only: its file is masked in the sandbox (a
    `*_FILE`), no gateway variable is in the Case's environment, and the Case's requests
    still reach the model through its relay and the gateway."""
    served, _ = gateway
    token_file = tmp_path / "shared" / "job.token"
    token_file.parent.mkdir(mode=0o755)
    token_file.write_bytes(served.token().read_bytes())
    token_file.chmod(0o600)
    case = tmp_path / "peeker.py"
    case.write_text(f"#!{sys.executable}\n{PEEKER}")
    case.chmod(0o755)
    tmp_path.chmod(0o755)  # the sandbox runs the Case as another uid
    harness.env.update({"CTO_HARNESS_CASE_BIN": str(case),
                        "CTO_HARNESS_CASE_ARGS": str(token_file)})
    as_worker(harness, served, token_file)
    _, result = harness.run_json("run", "--no-baseline")
    log = Path(result["run_dir"], "backend", "case.log").read_text()
    # Masked: the path shows an empty file (or none at all), never the token's bytes.
    assert ("case: token file readable 0\n" in log or "case: token file hidden" in log), log
    assert "case: gateway variables []" in log, log
    assert "case: asked 200" in log, log


def test_a_wrong_fingerprint_blocks_at_readiness_naming_the_variable(
        harness: Harness, gateway: tuple[Served, str]) -> None:
    served, _ = gateway
    as_worker(harness, served, served.token(), fingerprint="ab" * 32)
    code, result = harness.run_json("run")
    report = harness.report(result["run_dir"])
    assert (code, report["status"]) == (3, "blocked")
    said = [r for r in report["reasons"] if "CTO_HARNESS_GATEWAY_FINGERPRINT" in r]
    assert len(said) == 1 and said[0].startswith("gateway:"), report["reasons"]
    # The token never reached it: the pin is checked before a byte of the request is sent.
    assert served.ledger() == []


def test_plain_http_needs_the_explicit_opt_out_on_both_sides(
        harness: Harness, upstream: ScriptedEndpoint, tmp_path: Path) -> None:
    served, _ = serve(harness, upstream, tmp_path / "plain", "--insecure-plain-http")
    try:
        assert served.url.startswith("http://") and served.fingerprint is None
        as_worker(harness, served, served.token())
        code, result = harness.run_json("run")
        report = harness.report(result["run_dir"])
        assert (code, report["status"]) == (3, "blocked")
        said = [r for r in report["reasons"] if "CTO_HARNESS_GATEWAY_PLAIN_HTTP=allow" in r]
        assert len(said) == 1 and "CTO_HARNESS_GATEWAY_URL" in said[0], report["reasons"]

        harness.env["CTO_HARNESS_GATEWAY_PLAIN_HTTP"] = "allow"
        code, result = harness.run_json("run")
        report = harness.report(result["run_dir"])
        assert (code, report["status"]) == (0, "passed"), report["reasons"]
        assert report["gateway"]["plain_http"] is True
        assert {r["transport"] for r in served.ledger()} == {"plain-http"}
        checked = harness.run("validate", result["run_dir"], "--json")
        verdicts = {c["id"]: c["verdict"] for c in json.loads(checked.stdout)["criteria"]}
        assert checked.returncode == 1 and verdicts["gateway_pinned"] == "failed"
    finally:
        served.stop()


def test_the_gateway_applies_the_relays_rules_and_never_says_the_endpoint(
        gateway: tuple[Served, str], upstream: ScriptedEndpoint) -> None:
    served, secret = gateway
    token = served.token().read_text().strip()
    auth = {"authorization": f"Bearer {token}", "x-cto-run": "probe-run"}
    with httpx.Client(verify=pinned_context(served.fingerprint or ""), timeout=30) as client:
        chat = {"model": QWEN, "messages": [{"role": "user", "content": "hi"}]}
        other = client.post(f"{served.url}/chat/completions", headers=auth,
                            json={**chat, "model": "claude-sonnet-4-6"})
        odd = client.post(f"{served.url}/admin/shutdown", headers=auth, json=chat)
        many = client.post(f"{served.url}/chat/completions", headers=auth, json={**chat, "n": 5})
        with client.stream("POST", f"{served.url}/chat/completions", headers=auth,
                           json={**chat, "stream": True}) as streamed:
            chunks = list(streamed.iter_bytes())
        upstream.fail_status = 500  # its error page echoes the URL it was called on
        failed = client.post(f"{served.url}/chat/completions", headers=auth, json=chat)
        upstream.fail_status = None
    assert (other.status_code, odd.status_code, many.status_code) == (403, 404, 400)
    assert "not admitted" in other.json()["error"]["message"]
    assert streamed.status_code == 200 and b"data: [DONE]" in b"".join(chunks)
    assert b"[REDACTED:endpoint]" in b"".join(chunks)  # the endpoint said itself; masked
    assert failed.status_code == 502 and "[REDACTED:endpoint]" in failed.text, failed.text
    where = f"127.0.0.1:{upstream.port}"
    ledger = (served.state / "ledger.jsonl").read_text()
    for text in (other.text, odd.text, many.text, b"".join(chunks).decode(), failed.text,
                 ledger):
        assert no_secret_in(text, secret) and where not in text
    assert [r["status"] for r in served.ledger()] == [403, 404, 400, 200, 502]
    assert all(r["run"] == "probe-run" and r["job"] == JOB for r in served.ledger())


def test_bad_input_is_one_line_and_exit_2(harness: Harness, tmp_path: Path) -> None:
    env = {k: v for k, v in harness.env.items() if k != "CTO_HARNESS_CASE_LOCAL_BASE_URL"}

    def gw(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "core.cli", "gateway", *args, "--state",
                               str(tmp_path / "s")], env=env, capture_output=True, text=True,
                              timeout=60, cwd=ROOT)

    for args, says in [
        (("serve", "--listen", "127.0.0.1:0"), "CTO_HARNESS_CASE_LOCAL_BASE_URL"),
        (("serve", "--listen", "nowhere"), "--listen"),
        (("token", "--job", "a b"), "--job"),
        (("token", "--job", "j", "--ttl", "soon"), "--ttl"),
    ]:
        done = gw(*args)
        assert done.returncode == 2 and says in done.stderr, (args, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
