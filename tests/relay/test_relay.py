"""The relay over real loopback HTTP: forwarding, streaming as it arrives, refusals, the
ledger, and the secret upstream never reaching the Case or a file."""

from __future__ import annotations

import asyncio
import itertools
import json
import secrets
import signal
import socket
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.relay.passage import SsePassage
from core.relay.rules import MAX_BODY
from core.standins.endpoint import ScriptedEndpoint, tokens
from tests.support.relay_rig import MODEL, Rig, chat, ledger_lines, make_rig, masker

ANSWER = "def slugify(text):\n    return text.lower()\n"
MASK = "[REDACTED:endpoint]"
CLAUDE_SWAP = "claude-sonnet-4-6"


def assert_nowhere(root: Path, *needles: str) -> None:
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            for needle in needles:
                assert needle.encode() not in data, f"{needle!r} leaked into {path}"


@pytest.fixture
def endpoint() -> Iterator[ScriptedEndpoint]:
    with ScriptedEndpoint(lambda messages: ANSWER, model_id=MODEL) as ep:
        yield ep


@pytest.fixture
async def rig(tmp_path: Path, endpoint: ScriptedEndpoint) -> AsyncIterator[Rig]:
    async for r in make_rig(tmp_path, endpoint):
        yield r


async def test_forwards_a_chat_and_records_it(rig: Rig) -> None:
    async with rig.client() as client:
        response = await client.post("/chat/completions", json=chat())
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"] == ANSWER
    [record] = ledger_lines(rig.ledger)
    assert record == rig.seen[0] == rig.relay.records[0]
    assert (record.method, record.path, record.status) == ("POST", "/v1/chat/completions", 200)
    assert (record.model_asked, record.model_answered) == (MODEL, MODEL)
    assert (record.prompt_tokens, record.completion_tokens) == (2, len(tokens(ANSWER)))
    assert record.refused is None and record.error is None and not record.stream
    assert record.latency_ms > 0
    # The Case's token stays with the relay: no API key configured, so none goes upstream.
    assert rig.upstream.received[-1].authorization is None


async def test_forwards_models_listing(rig: Rig) -> None:
    async with rig.client() as client:
        response = await client.get("/models")
    assert [m["id"] for m in response.json()["data"]] == [MODEL]
    [record] = ledger_lines(rig.ledger)
    assert (record.method, record.path, record.model_asked) == ("GET", "/v1/models", None)


async def test_sends_the_api_key_upstream_never_the_case_token(tmp_path: Path) -> None:
    key = secrets.token_hex(12)
    with ScriptedEndpoint(lambda m: ANSWER, model_id=MODEL, api_key=key) as upstream:
        async for rig in make_rig(tmp_path, upstream, api_key=key):
            async with rig.client() as client:
                response = await client.post("/chat/completions", json=chat())
            assert response.status_code == 200
            assert upstream.received[-1].authorization == f"Bearer {key}"
            assert_nowhere(tmp_path, key, rig.token)


async def test_streams_chunks_as_they_arrive(rig: Rig) -> None:
    rig.upstream.token_delay = 0.1
    n = len(tokens(ANSWER))
    arrivals: list[float] = []
    text = ""
    started = time.monotonic()
    async with rig.client() as client, client.stream(
        "POST", "/chat/completions", json=chat(stream=True)
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        async for line in response.aiter_lines():
            if line.startswith("data: {"):
                event = json.loads(line[6:])
                if event["choices"] and event["choices"][0]["delta"].get("content"):
                    arrivals.append(time.monotonic() - started)
                    text += event["choices"][0]["delta"]["content"]
    assert text == ANSWER
    assert len(arrivals) == n
    # The upstream needs n * 0.1 s to finish; the first token was here long before that.
    assert arrivals[-1] >= 0.1 * n
    assert arrivals[0] < arrivals[-1] - 0.1 * (n - 2)
    [record] = ledger_lines(rig.ledger)
    assert record.stream and record.status == 200
    assert (record.model_answered, record.completion_tokens) == (MODEL, n)
    assert record.error is None


async def test_refuses_another_model_with_403(rig: Rig) -> None:
    async with rig.client() as client:
        response = await client.post("/chat/completions", json=chat("claude-sonnet-4-6"))
    assert response.status_code == 403
    error = response.json()["error"]
    assert "claude-sonnet-4-6" in error["message"] and error["type"] == "model_not_admitted"
    assert rig.upstream.received == []
    [record] = ledger_lines(rig.ledger)
    assert record.status == 403 and record.model_asked == "claude-sonnet-4-6"
    assert record.refused and "not admitted" in record.refused
    assert rig.seen == [record]


@pytest.mark.parametrize("payload", [b"not json", b"[1, 2]", b'{"messages": []}'])
async def test_refuses_posts_without_the_admitted_model(rig: Rig, payload: bytes) -> None:
    async with rig.client() as client:
        response = await client.post("/chat/completions", content=payload)
    assert response.status_code in (400, 403)
    assert "error" in response.json()
    assert rig.upstream.received == []
    assert ledger_lines(rig.ledger)[0].refused


async def test_a_body_streamed_without_end_is_refused_not_held(rig: Rig) -> None:
    """A Case streaming a body without end (chunked, no length) gets a 413 once it passes
    MAX_BODY; the relay stops reading there instead of holding gigabytes in memory."""
    reader, writer = await asyncio.open_connection("127.0.0.1", rig.relay.port)
    writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: relay\r\n"
                 b"Authorization: Bearer " + rig.token.encode() + b"\r\n"
                 b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
    piece = b"a" * (1 << 20)
    frame = b"%x\r\n" % len(piece) + piece + b"\r\n"
    for _ in range((MAX_BODY >> 20) + 8):  # past the limit, and the body never ends
        writer.write(frame)
        await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    writer.close()
    assert head.startswith(b"HTTP/1.1 413"), head
    [record] = ledger_lines(rig.ledger)
    assert record.status == 413 and record.refused and "MiB" in record.refused
    assert rig.upstream.received == []


async def test_a_declared_huge_body_is_refused_before_it_is_read(rig: Rig) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", rig.relay.port)
    writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: relay\r\n"
                 b"Authorization: Bearer " + rig.token.encode() + b"\r\n"
                 b"Content-Length: %d\r\n\r\n{}" % (MAX_BODY + 1))
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    writer.close()
    assert head.startswith(b"HTTP/1.1 413"), head
    assert ledger_lines(rig.ledger)[0].status == 413


@pytest.mark.parametrize("token", ["", "wrong"])
async def test_rejects_a_wrong_or_missing_token(rig: Rig, token: str) -> None:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(base_url=rig.relay.base_url, headers=headers) as client:
        response = await client.post("/chat/completions", json=chat())
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "invalid_api_key"
    assert rig.upstream.received == []
    [record] = ledger_lines(rig.ledger)
    assert record.status == 401 and record.refused == "missing or wrong relay token"


async def test_other_paths_and_methods_are_refused_and_recorded(rig: Rig) -> None:
    async with rig.client() as client:
        outside = await client.get(f"http://127.0.0.1:{rig.relay.port}/admin")
        delete = await client.delete("/models")
    assert (outside.status_code, delete.status_code) == (404, 405)
    assert [r.status for r in ledger_lines(rig.ledger)] == [404, 405]
    assert rig.upstream.received == []


@pytest.mark.parametrize("stream", [False, True])
async def test_records_an_upstream_that_swaps_the_model(rig: Rig, stream: bool) -> None:
    rig.upstream.answer_model = "claude-sonnet-4-6"
    async with rig.client() as client:
        response = await client.post("/chat/completions", json=chat(stream=stream))
        assert response.status_code == 200
    [record] = ledger_lines(rig.ledger)
    assert (record.model_asked, record.model_answered) == (MODEL, "claude-sonnet-4-6")
    assert record.stream is stream
    assert rig.seen[0].model_answered == "claude-sonnet-4-6"


async def test_redacts_upstream_error_bodies_that_echo_the_secret(rig: Rig) -> None:
    rig.upstream.fail_status = 500
    async with rig.client() as client:
        response = await client.post("/chat/completions", json=chat())
    assert response.status_code == 502
    message = response.json()["error"]["message"]
    assert "HTTP 500" in message and MASK in message
    assert rig.hostport not in response.text
    [record] = ledger_lines(rig.ledger)
    assert record.status == 502 and MASK in (record.error or "")
    assert_nowhere(rig.ledger.parent.parent, rig.hostport, rig.upstream.base_url)


async def test_a_client_error_upstream_keeps_its_status(rig: Rig) -> None:
    rig.upstream.fail_status = 429
    async with rig.client() as client:
        response = await client.post("/chat/completions", json=chat())
    assert response.status_code == 429
    assert rig.hostport not in response.text
    assert ledger_lines(rig.ledger)[0].error


async def test_garbage_from_upstream_is_a_clear_502(rig: Rig) -> None:
    rig.upstream.garbage = True
    async with rig.client() as client:
        response = await client.post("/chat/completions", json=chat())
    assert response.status_code == 502
    assert "not JSON" in response.json()["error"]["message"]
    assert "not JSON" in (ledger_lines(rig.ledger)[0].error or "")


async def test_unreachable_upstream_is_a_502_without_the_url(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    gone = ScriptedEndpoint(model_id=MODEL)
    gone.port = port  # never started: nothing listens there
    async for rig in make_rig(tmp_path, gone):
        async with rig.client() as client:
            response = await client.post("/chat/completions", json=chat())
        assert response.status_code == 502
        assert "ConnectError" in response.json()["error"]["message"]
        assert "ConnectError" in (ledger_lines(rig.ledger)[0].error or "")
        assert f"127.0.0.1:{port}" not in response.text
        assert_nowhere(tmp_path, f"127.0.0.1:{port}")


async def test_a_hanging_upstream_times_out_as_504(tmp_path: Path,
                                                   endpoint: ScriptedEndpoint) -> None:
    endpoint.hang = True
    async for rig in make_rig(tmp_path, endpoint, timeout=httpx.Timeout(0.3)):
        async with rig.client() as client:
            response = await client.post("/chat/completions", json=chat())
        assert response.status_code == 504
        assert "ReadTimeout" in (ledger_lines(rig.ledger)[0].error or "")


async def test_a_case_that_hangs_up_mid_stream_is_recorded_at_once(rig: Rig) -> None:
    rig.upstream.token_delay = 0.2
    async with rig.client() as client, client.stream(
        "POST", "/chat/completions", json=chat(stream=True)
    ) as response:
        async for _ in response.aiter_lines():
            break
    for _ in range(100):
        if rig.seen:
            break
        await asyncio.sleep(0.01)
    [record] = rig.seen
    assert record.stream and "closed the stream" in (record.error or "")
    assert ledger_lines(rig.ledger) == [record]


async def test_the_secret_and_token_reach_no_file(tmp_path: Path, rig: Rig) -> None:
    async with rig.client() as client:
        await client.get("/models")
        await client.post("/chat/completions", json=chat(stream=True))
        await client.post("/chat/completions", json=chat("gpt-4o"))
        rig.upstream.fail_status = 503
        await client.post("/chat/completions", json=chat(stream=True))
    async with rig.client(token="x" * 32) as client:
        await client.get("/models")
    assert len(ledger_lines(rig.ledger)) == 5
    assert_nowhere(tmp_path, rig.hostport, rig.upstream.base_url, rig.token)
    assert rig.hostport not in repr(rig.relay) and rig.token not in repr(rig.relay)


async def test_leaves_the_harness_signal_handlers_alone(tmp_path: Path,
                                                        endpoint: ScriptedEndpoint) -> None:
    def mine(signum: int, frame: object) -> None:
        raise AssertionError("not expected to be called")

    previous = {sig: signal.signal(sig, mine) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        async for rig in make_rig(tmp_path, endpoint):
            async with rig.client() as client:
                await client.get("/models")
            assert signal.getsignal(signal.SIGINT) is mine
            assert signal.getsignal(signal.SIGTERM) is mine
        assert signal.getsignal(signal.SIGINT) is mine
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


async def test_stops_promptly_and_frees_its_port(tmp_path: Path,
                                                 endpoint: ScriptedEndpoint) -> None:
    async for rig in make_rig(tmp_path, endpoint):
        port = rig.relay.port
        started = time.monotonic()
    assert time.monotonic() - started < 1.0
    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient() as client:
            await client.get(f"http://127.0.0.1:{port}/v1/models")


def sse(*events: dict | str) -> bytes:
    return b"".join(
        f"data: {e if isinstance(e, str) else json.dumps(e)}\n\n".encode() for e in events)


STREAM = sse(
    {"model": MODEL, "choices": [{"delta": {"content": "http://ex"}}]},
    {"model": "claude-sonnet-4-6", "choices": [{"delta": {"content": "ample"}}]},
    {"model": MODEL, "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2}},
    "[DONE]",
)


@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=12),
       st.sampled_from([None, MODEL]))
def test_sse_passage_is_byte_faithful_however_the_stream_is_cut(
        cuts: list[int], expected: str | None) -> None:
    """With or without the expected model (which lets lines naming only it skip the parse),
    every model and the usage are read, and the bytes pass unchanged."""
    bounds = [0, *sorted(cuts), len(STREAM)]
    passage = SsePassage(masker("http://10.1.2.3:8000/v1"), expected_model=expected)
    out = b"".join(passage.feed(STREAM[a:b]) for a, b in itertools.pairwise(bounds))
    assert out + passage.flush() == STREAM
    assert passage.seen.models == [MODEL, "claude-sonnet-4-6"]
    assert passage.seen.usage == {"prompt_tokens": 3, "completion_tokens": 2}
    assert passage.events == 3 and passage.seen.error is None


def test_sse_error_events_are_redacted_even_when_split_across_reads() -> None:
    secret = f"http://10.{secrets.randbelow(255)}.2.3:8000/v1"
    event = sse({"error": {"message": f"engine at {secret} died", "type": "server_error"}})
    cut = event.index(b"10.") + 3
    passage = SsePassage(masker(secret))
    out = passage.feed(event[:cut]) + passage.feed(event[cut:]) + passage.flush()
    assert secret.encode() not in out and MASK.encode() in out
    assert json.loads(out.split(b"\n")[0][6:])["error"]["type"] == "server_error"
    assert passage.seen.error == f"engine at {MASK} died"


@pytest.mark.parametrize("swap", [
    f'"model": "{CLAUDE_SWAP}"',
    f'"model":"{CLAUDE_SWAP}"',
    f'"\\u006dodel": "{CLAUDE_SWAP}"',  # the key spelled with an escape
    f'"model": "{MODEL}", "model": "{CLAUDE_SWAP}"',
])
@pytest.mark.parametrize("cut", [None, 1, 4096])
def test_a_swap_deep_in_a_long_stream_is_seen_however_it_is_read(
        swap: str, cut: int | None) -> None:
    """Lines naming only the expected model skip the parse (the relay's fast path): one
    naming another, however spelled, among thousands that do not, is still read."""
    line = '{"object": "chat.completion.chunk", %s, "choices": [{"delta": {"content": "x"}}]}'
    events = [line % f'"model": "{MODEL}"'] * 3000
    events[2500] = line % swap
    stream = sse(*events[:1]) + b"".join(f"data: {e}\n\n".encode() for e in events[1:])
    passage = SsePassage(masker("http://10.1.2.3:8000/v1"), expected_model=MODEL)
    step = cut or len(stream)
    out = b"".join(passage.feed(stream[at:at + step]) for at in range(0, len(stream), step))
    assert out + passage.flush() == stream
    assert passage.seen.models == [MODEL, CLAUDE_SWAP] and passage.events == 3000
