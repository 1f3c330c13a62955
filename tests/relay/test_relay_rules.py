"""The relay's rules against a hostile Case, over raw loopback sockets (an HTTP client
would normalise the very paths under test): paths that try to leave `/v1`, bodies where
none belongs, duplicate keys, deep and huge bodies, and more at once than it will hold.
The upstream records every request on any path, so "nothing reached upstream" is seen."""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from core.relay.rules import MAX_CONTAINERS, MAX_DEPTH, Load
from core.run.guard import Guard
from core.standins.endpoint import ScriptedEndpoint
from tests.support.relay_rig import MODEL, Rig, chat, ledger_lines, make_rig

CLAUDE = "claude-sonnet-4-6"


async def raw(rig: Rig, method: str, path: str, body: bytes = b"", *,
              headers: tuple[str, ...] = ()) -> tuple[int, dict]:
    """One request written byte for byte; (status, JSON body) of the answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", rig.relay.port)
    lines = [f"{method} {path} HTTP/1.1", "Host: relay", f"Authorization: Bearer {rig.token}",
             "Connection: close", *headers]
    if body:
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    head, _, payload = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), json.loads(payload) if payload else {}


@pytest.fixture
async def rig(tmp_path: Path, upstream: ScriptedEndpoint) -> AsyncIterator[Rig]:
    async for r in make_rig(tmp_path, upstream):
        yield r


ESCAPES = [
    ("POST", "/v1/%2e%2e/admin/shutdown"),
    ("POST", "/v1/../admin/shutdown"),
    ("GET", "/v1/../metrics"),
    ("GET", "/v1/%2E%2E/metrics"),
    ("GET", "/v1/..%2fmetrics"),
    ("GET", "/v1/%2e%2e%2f%2e%2e%2fmetrics"),
    ("GET", "/v1/..\\metrics"),
    ("GET", "/v1/%5c..%5cmetrics"),
    ("GET", "//v1/../../health"),
    ("GET", "/v1//..//..//health"),
    ("GET", "/v1/models/../../metrics"),
    ("GET", "/v1/models/%2e%2e/%2e%2e/metrics"),
    ("GET", "/v1/models/..%2f..%2fmetrics"),
    ("POST", "/v1/chat/completions/../../../flush_cache"),
    ("GET", "/v1/%252e%252e/metrics"),
    ("POST", "/v1/tokenize"),
    ("POST", "/v1/../sleep?level=1"),
    ("GET", "/metrics"),
]


@pytest.mark.parametrize(("method", "path"), ESCAPES)
async def test_no_spelling_of_a_path_leaves_v1(rig: Rig, method: str, path: str) -> None:
    body = json.dumps(chat()).encode() if method == "POST" else b""
    status, answer = await raw(rig, method, path, body)
    assert status == 404, answer
    assert answer["error"]["type"] == "not_found" and "relay" in answer["error"]["message"]
    assert rig.upstream.received == []
    [record] = ledger_lines(rig.ledger)
    assert record.status == 404 and record.refused


@pytest.mark.parametrize("path", ["/v1/./chat/completions", "/v1/chat//completions",
                                  "/v1/chat/completions/", "/v1/chat/%63ompletions",
                                  "/v1/chat/completions?redirect=/../metrics"])
async def test_the_upstream_path_is_the_routes_own(rig: Rig, path: str) -> None:
    """Odd spellings of an allowed route reach upstream as the route, query dropped."""
    status, _ = await raw(rig, "POST", path, json.dumps(chat()).encode())
    assert status == 200
    assert [r.path for r in rig.upstream.received] == ["/v1/chat/completions"]


async def test_a_model_of_another_name_cannot_be_looked_up(rig: Rig) -> None:
    ok, card = await raw(rig, "GET", f"/v1/models/{MODEL}")
    refused, _ = await raw(rig, "GET", f"/v1/models/{CLAUDE}")
    assert (ok, card["id"], refused) == (200, MODEL, 403)
    assert [r.path for r in rig.upstream.received] == [f"/v1/models/{MODEL}"]
    assert ledger_lines(rig.ledger)[1].model_asked == CLAUDE


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/models"])
async def test_a_get_with_a_body_naming_another_model_is_refused_and_trips(
        rig: Rig, path: str) -> None:
    status, answer = await raw(rig, "GET", path, json.dumps(chat(CLAUDE)).encode())
    assert status in (403, 405), answer
    assert rig.upstream.received == []
    [record] = ledger_lines(rig.ledger)
    assert record.refused and record.model_asked == CLAUDE
    guard = Guard(MODEL, ())
    guard.on_relay(record, 1)
    assert guard.state() == "tripped"


async def test_a_get_with_any_body_is_refused(rig: Rig) -> None:
    status, answer = await raw(rig, "GET", "/v1/models", json.dumps(chat()).encode())
    assert status == 400 and "takes no body" in answer["error"]["message"]
    assert rig.upstream.received == []


@pytest.mark.parametrize("first", [CLAUDE, MODEL])
async def test_duplicate_model_keys_are_refused_and_judged_on_each(rig: Rig, first: str) -> None:
    second = MODEL if first == CLAUDE else CLAUDE
    body = (f'{{"model": "{first}", "messages": [{{"role": "user", "content": "hi"}}], '
            f'"model": "{second}"}}').encode()
    status, _ = await raw(rig, "POST", "/v1/chat/completions", body)
    assert status == 403
    assert rig.upstream.received == []
    assert ledger_lines(rig.ledger)[0].model_asked == CLAUDE


async def test_duplicate_keys_at_any_depth_are_refused(rig: Rig) -> None:
    body = (f'{{"model": "{MODEL}", "messages": [{{"role": "user", "content": "a", '
            f'"content": "b"}}]}}').encode()
    status, answer = await raw(rig, "POST", "/v1/chat/completions", body)
    assert status == 400 and "repeats a key" in answer["error"]["message"]
    assert rig.upstream.received == []


@pytest.mark.parametrize("extra", [
    "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1),
    "[" * 100_000 + "]" * 100_000,
    "[" + "[]," * (MAX_CONTAINERS + 1) + "[]]",
    "NaN",
])
async def test_deep_wide_and_non_json_bodies_are_refused_before_the_parse(
        rig: Rig, extra: str) -> None:
    body = f'{{"model": "{MODEL}", "messages": [], "x": {extra}}}'.encode()
    status, answer = await raw(rig, "POST", "/v1/chat/completions", body)
    assert status == 400, answer
    assert rig.upstream.received == []
    assert ledger_lines(rig.ledger)[0].refused


async def test_past_the_cap_on_requests_in_flight_a_429_is_recorded(
        tmp_path: Path, upstream: ScriptedEndpoint) -> None:
    upstream.hang = True
    async for rig in make_rig(tmp_path, upstream, load=Load(max_in_flight=2)):
        async with rig.client(timeout=30) as client:
            held = [asyncio.create_task(client.post("/chat/completions", json=chat()))
                    for _ in range(2)]
            while len(upstream.received) < 2:
                await asyncio.sleep(0.01)
            third = await client.post("/chat/completions", json=chat())
            assert third.status_code == 429
            assert third.json()["error"]["type"] == "rate_limit_exceeded"
            [record] = ledger_lines(rig.ledger)
            assert record.status == 429 and record.refused
            upstream.stop()  # releases the two held requests
            await asyncio.gather(*held, return_exceptions=True)


async def test_past_the_cap_on_bytes_held_a_503_is_recorded(
        tmp_path: Path, upstream: ScriptedEndpoint) -> None:
    async for rig in make_rig(tmp_path, upstream, load=Load(max_buffered=1 << 20)):
        big = chat()
        big["messages"][0]["content"] = "x" * (2 << 20)
        async with rig.client() as client:
            response = await client.post("/chat/completions", json=big)
            small = await client.post("/chat/completions", json=chat())
        assert response.status_code == 503
        assert response.json()["error"]["type"] == "server_error"
        assert small.status_code == 200  # the refused body's bytes were given back
        first, second = ledger_lines(rig.ledger)
        assert first.status == 503 and first.refused and second.status == 200
        assert len(upstream.received) == 1


async def test_a_compressed_body_is_refused_not_judged_unread(rig: Rig) -> None:
    """A body the relay cannot read is one it cannot judge: refused (415), never forwarded."""
    body = gzip.compress(json.dumps(chat(CLAUDE)).encode())
    status, answer = await raw(rig, "POST", "/v1/chat/completions", body,
                               headers=("Content-Encoding: gzip",))
    assert status == 415 and "compressed" in answer["error"]["message"]
    assert rig.upstream.received == []
    [record] = ledger_lines(rig.ledger)
    assert record.status == 415 and record.refused


async def test_a_huge_model_name_or_path_is_recorded_clipped(rig: Rig) -> None:
    name = CLAUDE + "x" * (8 << 20)
    status, answer = await raw(rig, "POST", "/v1/chat/completions",
                               json.dumps(chat(name)).encode())
    long_path = "/v1/" + "a" * 50_000
    gone, _ = await raw(rig, "GET", long_path)
    assert (status, gone) == (403, 404)
    assert len(json.dumps(answer)) < 2000
    first, second = ledger_lines(rig.ledger)
    assert first.model_asked and first.model_asked.startswith(CLAUDE)
    assert len(first.model_asked) <= 257 and len(first.refused or "") < 1000
    assert len(second.path) <= 1025
    assert rig.ledger.stat().st_size < 10_000
