"""The relay's rules in a real run: a hostile Case, through `cto-harness run` and the Case's
own network path, tries the issue's ways around the relay; the run records every attempt,
the guard trips, and the upstream sees only the honest request."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from core.standins.endpoint import ScriptedEndpoint
from tests.support.harness import Harness

HOSTILE = '''
import http.client, json, os, sys
from urllib.parse import urlsplit

base = urlsplit(os.environ["OPENAI_BASE_URL"])
auth = {"Authorization": "Bearer " + os.environ["OPENAI_API_KEY"],
        "Content-Type": "application/json"}
model = os.environ["CTO_HARNESS_CASE_MODEL"]
chat = lambda m: {"model": m, "messages": [{"role": "user", "content": "hi"}]}
attempts = [
    ("POST", "/v1/%2e%2e/admin/shutdown", json.dumps(chat(model))),
    ("GET", "/v1/../metrics", None),
    ("GET", "/v1/chat/completions", json.dumps(chat("claude-sonnet-4-6"))),
    ("POST", "/v1/chat/completions",
     '{"model": "claude-sonnet-4-6", "messages": [], "model": "%s"}' % model),
    ("POST", "/v1/chat/completions", json.dumps(chat(model))),
]
for method, path, body in attempts:
    conn = http.client.HTTPConnection(base.hostname, base.port, timeout=30)
    conn.request(method, path, body=body, headers=auth)
    answer = conn.getresponse()
    print("case:", method, path, answer.status, flush=True)
    answer.read()
    conn.close()
'''


def test_a_hostile_case_gets_nothing_past_the_relay_and_trips_the_guard(
        harness: Harness, upstream: ScriptedEndpoint, tmp_path: Path) -> None:
    case = tmp_path / "hostile_case.py"
    case.write_text(f"#!{sys.executable}\n{HOSTILE}")
    case.chmod(0o755)
    tmp_path.chmod(0o755)  # pytest makes it 0700; the sandbox runs the Case as another uid
    harness.env.update({"CTO_HARNESS_CASE_BIN": str(case), "CTO_HARNESS_CASE_ARGS": ""})
    code, result = harness.run_json("run", "--no-baseline")
    run_dir = Path(result["run_dir"])
    report = harness.report(run_dir)
    log = (run_dir / "backend" / "case.log").read_text()
    assert [line.split()[-1] for line in log.splitlines() if line.startswith("case: ")] == [
        "404", "404", "405", "403", "200"], log
    records = [json.loads(line) for line in
               (run_dir / "backend" / "relay.jsonl").read_text().splitlines()]
    assert [r["status"] for r in records] == [404, 404, 405, 403, 200]
    assert [r["model_asked"] for r in records[2:4]] == ["claude-sonnet-4-6"] * 2
    assert report["relay"]["refused"] == 4 and report["relay"]["models_seen"] == [
        "qwen3.6-35b-a3b"]
    assert report["guard_state"] == "tripped" and code == 1
    posts = [r for r in upstream.received if r.method == "POST" and r.body
             and "messages" in r.body and r.body["messages"]]
    assert [(r.method, r.path) for r in posts] == [("POST", "/v1/chat/completions")]
    assert all(r.path.startswith("/v1/") for r in upstream.received)
