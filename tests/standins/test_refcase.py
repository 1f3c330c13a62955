"""The reference Case as a real process against real loopback endpoints: the scripted
OpenAI-compatible server for the happy paths, and a raw HTTP server for broken ones."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from core.standins.demo import SLUGIFY_SOLUTION, demo_responder
from core.standins.endpoint import ScriptedEndpoint
from core.standins.localmodel import free_port
from core.standins.refcase import (
    EXIT_ENDPOINT,
    EXIT_NO_EDIT,
    EXIT_OK,
    EXIT_USAGE,
    parse_file_blocks,
)
from tests.support.harness import ROOT

TASK = ROOT / "core" / "run" / "tasks" / "r1-string-slugify"
QWEN = "qwen3.6-35b-a3b"
Responder = Callable[[list[dict]], str]


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    dest = tmp_path / "workspace"
    shutil.copytree(TASK / "workspace", dest)
    return dest


def run_case(workspace: Path, base_url: str, key: str, **extra_env: str,
             ) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ["PATH"], "OPENAI_BASE_URL": base_url, "OPENAI_API_KEY": key,
           "CTO_HARNESS_CASE_MODEL": QWEN, "CTO_HARNESS_TASK_FILE": str(TASK / "TASK.md"),
           "CTO_HARNESS_WORKSPACE": str(workspace), "PYTHONPATH": str(ROOT), **extra_env}
    return subprocess.run([sys.executable, "-m", "core.standins.refcase"], cwd=workspace, env=env,
                          capture_output=True, text=True, timeout=60)


@contextmanager
def scripted(responder: Responder) -> Iterator[ScriptedEndpoint]:
    with ScriptedEndpoint(responder=responder, model_id=QWEN, token_delay=0.0) as endpoint:
        yield endpoint


@contextmanager
def raw_server(status: int, content_type: str, body: bytes) -> Iterator[str]:
    """A loopback HTTP server that answers every POST with the same bytes."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length", 0)))
            self.send_response(status)
            self.send_header("content-type", content_type)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


def assert_quiet_about(proc: subprocess.CompletedProcess[str], *secret_values: str) -> None:
    output = proc.stdout + proc.stderr
    assert "Traceback" not in output
    for value in secret_values:
        assert value not in output


def test_streams_the_answer_and_writes_the_named_file(workspace: Path) -> None:
    key = secrets.token_hex(16)
    with scripted(demo_responder) as endpoint:
        proc = run_case(workspace, endpoint.base_url, key)
    assert proc.returncode == EXIT_OK, proc.stderr
    assert (workspace / "slugify.py").read_text() == SLUGIFY_SOLUTION
    streamed = re.search(r"turn 1: (\d+) tokens streamed in [\d.]+ s", proc.stdout)
    assert streamed and int(streamed.group(1)) > 20, proc.stdout
    assert "turn 1/1" in proc.stdout
    assert "model answered qwen3.6-35b-a3b" in proc.stdout
    assert "wrote slugify.py" in proc.stdout
    assert "  │ [demo endpoint]" in proc.stdout
    host = endpoint.base_url.split("//")[1].split("/")[0]
    assert_quiet_about(proc, endpoint.base_url, host, key)


def test_sends_the_task_and_the_workspace_files(workspace: Path) -> None:
    seen: list[list[dict]] = []

    def record(messages: list[dict]) -> str:
        seen.append(messages)
        return "No change needed."

    with scripted(record) as endpoint:
        proc = run_case(workspace, endpoint.base_url, secrets.token_hex(8))
    assert proc.returncode == EXIT_NO_EDIT
    assert "named no file to write" in proc.stdout
    [messages] = seen
    assert [m["role"] for m in messages] == ["system", "user"]
    assert "```python slugify.py" in messages[0]["content"]
    prompt = messages[1]["content"]
    assert "Replace every run of characters outside" in prompt
    assert "```slugify.py\ndef slugify(text: str) -> str:" in prompt


def test_second_turn_with_the_check_output(workspace: Path) -> None:
    wrong = "```python slugify.py\ndef slugify(text: str) -> str:\n    return text\n```\n"
    right = f"```python slugify.py\n{SLUGIFY_SOLUTION}```\n"
    turns: list[list[dict]] = []

    def respond(messages: list[dict]) -> str:
        turns.append(messages)
        return wrong if len(turns) == 1 else right

    check = (f"{sys.executable} -c \"from slugify import slugify; "
             "assert slugify('Hello, World!') == 'hello-world', 'wrong slug'\"")
    with scripted(respond) as endpoint:
        proc = run_case(workspace, endpoint.base_url, "k", CTO_HARNESS_CHECK_CMD=check)
    assert proc.returncode == EXIT_OK, proc.stdout + proc.stderr
    assert "turn 2/2" in proc.stdout
    assert len(turns) == 2
    assert "AssertionError: wrong slug" in turns[1][-1]["content"]
    assert turns[1][-2] == {"role": "assistant", "content": wrong}
    assert (workspace / "slugify.py").read_text() == SLUGIFY_SOLUTION
    assert "exited 0" in proc.stdout


def test_refuses_paths_that_escape_the_workspace_or_cannot_be_written(workspace: Path) -> None:
    outside = workspace.parent / "escaped.py"
    answer = (
        "```python ../escaped.py\nBAD = 1\n```\n"
        f"```python {outside}\nBAD = 2\n```\n"
        "```python\n# file: ../../escaped.py\nBAD = 3\n```\n"
        "```python sub/ok.py\nGOOD = 1\n```\n"
        "```text data.d\nnot a folder\n```\n"
    )
    (workspace / "data.d").mkdir()
    with scripted(lambda messages: answer) as endpoint:
        proc = run_case(workspace, endpoint.base_url, "k")
    assert proc.returncode == EXIT_OK
    assert not outside.exists()
    assert not (workspace.parent.parent / "escaped.py").exists()
    assert proc.stdout.count("refused to write") == 3
    assert (workspace / "sub" / "ok.py").read_text() == "GOOD = 1\n"
    assert "could not write 'data.d': Is a directory" in proc.stdout


def test_endpoint_error_is_one_line_with_the_body_message(workspace: Path) -> None:
    with scripted(demo_responder) as endpoint:
        endpoint.fail_status = 500
        proc = run_case(workspace, endpoint.base_url, "k")
    assert proc.returncode == EXIT_ENDPOINT
    assert proc.stderr.strip() == (
        "refcase: endpoint answered HTTP 500: internal failure while serving "
        "[endpoint]/chat/completions")
    assert_quiet_about(proc, endpoint.base_url, f"127.0.0.1:{endpoint.port}")
    assert (workspace / "slugify.py").read_text() == (TASK / "workspace/slugify.py").read_text()


def test_sends_the_bearer_token_and_asks_for_a_stream(workspace: Path) -> None:
    key = secrets.token_hex(16)
    with scripted(demo_responder) as endpoint:
        endpoint.api_key = key
        proc = run_case(workspace, endpoint.base_url, key)
        wrong = run_case(workspace, endpoint.base_url, "not-the-key")
    assert proc.returncode == EXIT_OK
    [ok, refused] = endpoint.received
    assert ok.body is not None and ok.body["model"] == QWEN and ok.body["stream"] is True
    assert ok.authorization == f"Bearer {key}"
    assert refused.authorization == "Bearer not-the-key"
    assert "usage: " in proc.stdout
    assert wrong.returncode == EXIT_ENDPOINT
    assert wrong.stderr.strip() == "refcase: endpoint answered HTTP 401: invalid or missing API key"
    assert_quiet_about(proc, key)


def test_html_instead_of_json_is_a_clear_error(workspace: Path) -> None:
    with scripted(demo_responder) as endpoint:
        endpoint.garbage = True
        proc = run_case(workspace, endpoint.base_url, "k")
    assert proc.returncode == EXIT_ENDPOINT
    assert proc.stderr.startswith("refcase: endpoint sent something that is not JSON: '<html>")
    assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("content_type", "body", "expected"),
    [
        ("text/event-stream", b"data: {not json\n\n", "endpoint sent something that is not JSON"),
        ("application/json", b'{"choices": []}', "endpoint sent JSON without choices[0]"),
    ],
)
def test_malformed_answers_are_a_clear_error(
        workspace: Path, content_type: str, body: bytes, expected: str) -> None:
    with raw_server(200, content_type, body) as base_url:
        proc = run_case(workspace, base_url, "k")
    assert proc.returncode == EXIT_ENDPOINT
    assert expected in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert_quiet_about(proc, base_url)


def test_connection_refused_names_no_address(workspace: Path) -> None:
    port = free_port()
    proc = run_case(workspace, f"http://127.0.0.1:{port}/v1", "k")
    assert proc.returncode == EXIT_ENDPOINT
    assert proc.stderr.startswith("refcase: endpoint unreachable or broke off (ConnectError")
    assert len(proc.stderr.strip().splitlines()) == 1
    assert_quiet_about(proc, str(port))


def test_missing_configuration_is_a_usage_error(workspace: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "core.standins.refcase", "--workspace",
                           str(workspace)],
                          env={"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == EXIT_USAGE
    assert proc.stderr.strip() == ("refcase: missing --task-file or CTO_HARNESS_TASK_FILE, "
                                   "--model or CTO_HARNESS_CASE_MODEL, OPENAI_BASE_URL")


def test_file_blocks_are_named_by_info_string_or_first_line() -> None:
    text = (
        "Plan.\n```python slugify.py\nA = 1\n```\n"
        "```js\n// file: web/app.js\nlet a;\n```\n"
        "```\nplain\n```\n"
    )
    blocks = parse_file_blocks(text)
    assert [(b.path, b.content) for b in blocks] == [
        ("slugify.py", "A = 1\n"), ("web/app.js", "let a;\n"), (None, "plain\n")]


def test_a_lone_unnamed_block_goes_to_the_only_workspace_file(workspace: Path) -> None:
    answer = f"Here you go:\n```python\n{SLUGIFY_SOLUTION}```\n"
    with scripted(lambda messages: answer) as endpoint:
        proc = run_case(workspace, endpoint.base_url, "k")
    assert proc.returncode == EXIT_OK
    assert "names no file; writing it to slugify.py" in proc.stdout
    assert (workspace / "slugify.py").read_text() == SLUGIFY_SOLUTION
