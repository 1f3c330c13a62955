"""Readiness against real loopback endpoints and real files: every state, no secret in any
detail, and the `cto-harness readiness` command's output and exit codes."""

from __future__ import annotations

import json
import os
import secrets
import socket
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from core.evidence.models import Readiness
from core.standins.endpoint import ScriptedEndpoint
from tests.support.harness import ROOT
from tests.support.readiness import check, detail, states

MODEL = "qwen3.6-35b-a3b"


@pytest.fixture
def upstream() -> Iterator[ScriptedEndpoint]:
    with ScriptedEndpoint(model_id=MODEL) as ep:
        yield ep


@pytest.fixture
def configured(env: Callable[..., None], case_bin: Path, admission: Path,
               upstream: ScriptedEndpoint) -> ScriptedEndpoint:
    env(case_local_base_url=upstream.base_url, case_bin=str(case_bin),
        case_model_admission_file=str(admission))
    return upstream


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_all_ok_is_ready(configured: ScriptedEndpoint) -> None:
    readiness = check(configured.base_url)
    assert readiness.ready
    assert states(readiness) == dict.fromkeys(
        ["endpoint_config", "case_bin", "case_setup", "admission", "endpoint_reachable",
         "model_served", "route_served"], "ok")
    assert readiness.admission_status == "admitted"
    assert (readiness.provider, readiness.model) == ("qwen-local", MODEL)
    reach = next(c for c in readiness.checks if c.name == "endpoint_reachable")
    assert reach.latency_ms is not None and "HTTP 200" in reach.detail












def test_unreachable_port_names_the_error_class(env: Callable[..., None]) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    env(case_local_base_url=url)
    readiness = check(url)
    assert states(readiness)["endpoint_reachable"] == "error"
    assert "ConnectError" in detail(readiness, "endpoint_reachable")
    assert states(readiness)["model_served"] == "skipped"


def test_a_500_is_an_error_with_its_status(configured: ScriptedEndpoint) -> None:
    configured.fail_status = 500
    readiness = check(configured.base_url)
    assert not readiness.ready
    assert states(readiness)["endpoint_reachable"] == "error"
    assert "HTTP 500" in detail(readiness, "endpoint_reachable")


def test_garbage_is_not_a_model_list(configured: ScriptedEndpoint) -> None:
    configured.garbage = True
    readiness = check(configured.base_url)
    assert states(readiness)["endpoint_reachable"] == "invalid"
    assert "not an OpenAI model list" in detail(readiness, "endpoint_reachable")
    assert states(readiness)["model_served"] == "skipped"


def test_a_hanging_endpoint_times_out(configured: ScriptedEndpoint) -> None:
    configured.hang = True
    readiness = check(configured.base_url, timeout=0.3)
    assert states(readiness)["endpoint_reachable"] == "error"
    assert "timed out after 0.3 s (ReadTimeout)" in detail(readiness, "endpoint_reachable")


def test_model_not_served_lists_what_is(env: Callable[..., None], case_bin: Path,
                                        admission: Path) -> None:
    with ScriptedEndpoint(model_id="llama-3-8b") as other:
        env(case_local_base_url=other.base_url, case_bin=str(case_bin),
            case_model_admission_file=str(admission))
        readiness = check(other.base_url)
    assert not readiness.ready
    assert states(readiness)["endpoint_reachable"] == "ok"
    assert states(readiness)["model_served"] == "missing"
    assert "llama-3-8b" in detail(readiness, "model_served")


def test_api_key_required_then_given(env: Callable[..., None], case_bin: Path,
                                     admission: Path) -> None:
    key = secrets.token_hex(16)
    with ScriptedEndpoint(model_id=MODEL, api_key=key) as guarded:
        env(case_local_base_url=guarded.base_url, case_bin=str(case_bin),
            case_model_admission_file=str(admission))
        without = check(guarded.base_url)
        assert states(without)["endpoint_reachable"] == "error"
        assert "HTTP 401" in detail(without, "endpoint_reachable")
        assert "CTO_HARNESS_CASE_LOCAL_API_KEY" in detail(without, "endpoint_reachable")
        env(case_local_api_key=key)
        given = check(guarded.base_url)
        assert given.ready
        assert guarded.received[-1].authorization == f"Bearer {key}"
        assert key not in given.model_dump_json()
        env(case_local_api_key="wrong")
        refused = check(guarded.base_url)
        assert "refused the API key" in detail(refused, "endpoint_reachable")


def test_missing_and_unrunnable_case_bin(configured: ScriptedEndpoint, env: Callable[..., None],
                                         tmp_path: Path, case_bin: Path) -> None:
    env(case_bin=str(tmp_path / "absent"))
    assert states(check(configured.base_url))["case_bin"] == "missing"
    case_bin.chmod(case_bin.stat().st_mode & ~(stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH))
    env(case_bin=str(case_bin))
    readiness = check(configured.base_url)
    assert states(readiness)["case_bin"] == "invalid"
    assert "not executable" in detail(readiness, "case_bin")
    env(case_bin=str(tmp_path))
    assert "is a directory" in detail(check(configured.base_url), "case_bin")
    env(case_bin="sh")
    assert states(check(configured.base_url))["case_bin"] == "ok"
    os.environ.pop("CTO_HARNESS_CASE_BIN")
    assert states(check(configured.base_url))["case_bin"] == "missing"


def test_malformed_admission_file_names_line_and_column(configured: ScriptedEndpoint,
                                                         admission: Path) -> None:
    admission.write_text('{"admitted": [\n  {"provider": "qwen-local"\n]}')
    readiness = check(configured.base_url)
    assert not readiness.ready
    assert states(readiness)["admission"] == "invalid"
    assert readiness.admission_status == "invalid_file"
    assert "line 3, column 1" in detail(readiness, "admission")
    assert str(admission) in detail(readiness, "admission")


def test_a_revoked_model_blocks(configured: ScriptedEndpoint, admission: Path) -> None:
    admission.write_text(json.dumps({"admitted": [
        {"provider": "qwen-local", "model": MODEL, "status": "revoked", "expires": None}]}))
    readiness = check(configured.base_url)
    assert (states(readiness)["admission"], readiness.admission_status) == ("blocked", "revoked")
    assert not readiness.ready


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "core.cli", "readiness", *args], env=env,
                          capture_output=True, text=True, timeout=60, cwd=ROOT)


def test_cli_ready_json_and_table(configured: ScriptedEndpoint) -> None:
    proc = run_cli("--json")
    assert proc.returncode == 0, proc.stderr
    assert Readiness.model_validate_json(proc.stdout).ready
    table = run_cli("--profile", "case-qwen")
    assert table.returncode == 0
    assert "endpoint_reachable" in table.stdout and table.stdout.rstrip().endswith("ready")
    hostport = f"127.0.0.1:{configured.port}"
    for out in (proc.stdout, proc.stderr, table.stdout, table.stderr):
        assert hostport not in out


def test_cli_blocked_exits_3_without_a_traceback(configured: ScriptedEndpoint) -> None:
    configured.fail_status = 503
    proc = run_cli("--json")
    assert proc.returncode == 3
    assert "Traceback" not in proc.stderr
    data = json.loads(proc.stdout)
    assert data["ready"] is False
    assert f"127.0.0.1:{configured.port}" not in proc.stdout + proc.stderr
    table = run_cli()
    assert table.returncode == 3 and "blocked" in table.stdout




@pytest.mark.parametrize("api", ["chat", "responses", "both"])
def test_the_route_the_case_uses_is_probed_without_generating(
        configured: ScriptedEndpoint, env: Callable[..., None], api: str) -> None:
    env(case_api=api)
    readiness = check(configured.base_url)
    assert readiness.ready, detail(readiness, "route_served")
    probes = [r for r in configured.received if r.method == "POST"]
    wanted = {"chat": ["/v1/chat/completions"], "responses": ["/v1/responses"],
              "both": ["/v1/chat/completions", "/v1/responses"]}[api]
    assert [r.path for r in probes] == wanted
    assert "HTTP 400" in detail(readiness, "route_served")  # refused: nothing generated


def test_an_endpoint_without_the_responses_route_is_not_ready_for_codex(
        configured: ScriptedEndpoint, env: Callable[..., None]) -> None:
    configured.responses_api = False
    assert check(configured.base_url).ready  # the default, chat, is served
    env(case_api="responses")
    readiness = check(configured.base_url)
    assert not readiness.ready and states(readiness)["route_served"] == "missing"
    assert "POST /responses" in detail(readiness, "route_served")
    assert "CTO_HARNESS_CASE_API" in detail(readiness, "route_served")


def test_an_unknown_case_api_is_invalid_naming_the_variable(
        configured: ScriptedEndpoint, env: Callable[..., None]) -> None:
    env(case_api="anthropic")
    readiness = check(configured.base_url)
    assert states(readiness)["route_served"] == "invalid"
    assert "CTO_HARNESS_CASE_API" in detail(readiness, "route_served")
