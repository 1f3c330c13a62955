"""Success answers pass the redactor like error bodies: an upstream that echoes its own host
in a 200 (`/models`' `root`, the answer's text, whole or streamed, on either API, and a
stream cut into reads anywhere) never hands it to the Case, over real loopback HTTP."""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from core.relay.server import Relay
from core.secrets.redact import Redactor
from core.standins.endpoint import ScriptedEndpoint
from tests.support.relay_rig import MODEL, chat

MASK = "[REDACTED:endpoint]"


async def relay_for(tmp_path: Path, upstream_url: str, secret: str,
                    streaming: bool) -> AsyncIterator[tuple[Relay, str]]:
    token = secrets.token_hex(16)
    redactor = Redactor({"endpoint": secret})
    relay = Relay(upstream=SecretStr(upstream_url), api_key=None, model=MODEL, token=token,
                  ledger=tmp_path / "relay.jsonl", redact=redactor.redact,
                  streams=redactor.stream if streaming else None)
    await relay.start()
    try:
        yield relay, token
    finally:
        await relay.stop()


@pytest.mark.parametrize("streaming", [True, False], ids=["stream-redactor", "per-block"])
async def test_an_upstream_echoing_its_host_in_a_200_never_reaches_the_case(
        tmp_path: Path, streaming: bool) -> None:
    with ScriptedEndpoint(model_id=MODEL) as upstream:
        host = upstream.base_url.removeprefix("http://").removesuffix("/v1")
        upstream.responder = lambda messages: f"I am served from {upstream.base_url} , {host}"
        upstream.card_extra = {"root": f"{upstream.base_url}/weights", "parent": host}
        async for relay, token in relay_for(tmp_path, upstream.base_url, upstream.base_url,
                                            streaming):
            headers = {"authorization": f"Bearer {token}"}
            async with httpx.AsyncClient(base_url=relay.base_url, headers=headers,
                                         timeout=30) as client:
                answers = [
                    await client.get("/models"),
                    await client.get(f"/models/{MODEL}"),
                    await client.post("/chat/completions", json=chat()),
                    await client.post("/chat/completions", json=chat(stream=True)),
                    await client.post("/responses", json={"model": MODEL, "input": "hi"}),
                    await client.post("/responses", json={"model": MODEL, "input": "hi",
                                                          "stream": True}),
                ]
    port = host.rsplit(":", 1)[1]
    for answer in answers:
        assert answer.status_code == 200, answer.text
        assert host not in answer.text and f":{port}" not in answer.text, answer.text
        assert MASK in answer.text, answer.text
    # Still the answers their clients parse: JSON, and whole SSE events.
    assert answers[0].json()["data"][0]["id"] == MODEL
    events = [line for line in answers[3].text.splitlines() if line.startswith("data: {")]
    assert events and all(json.loads(line[6:]) for line in events)


async def test_a_stream_cut_anywhere_is_masked_the_same(tmp_path: Path) -> None:
    """A raw upstream writes one stream a few bytes at a time (the secret's form — here its
    base64, wrapped onto a second line, which no single line holds — straddling reads)."""
    secret = f"http://10.{secrets.randbelow(250)}.7.9:8000/v1"
    wrapped = base64.b64encode(secret.encode()).decode()
    half = len(wrapped) // 2
    event = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": MODEL,
             "choices": [{"index": 0, "delta": {"content": f"at {secret} ok"},
                          "finish_reason": None}]}
    body = (f"data: {json.dumps(event)}\n\n"
            f"{wrapped[:half]}\n{wrapped[half:]}\n\n"  # lines SSE ignores, base64 wrapped
            "data: [DONE]\n\n").encode()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                     b"connection: close\r\n\r\n")
        for at in range(0, len(body), 5):
            writer.write(body[at:at + 5])
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async for relay, token in relay_for(tmp_path, f"http://127.0.0.1:{port}/v1", secret,
                                            streaming=True):
            async with httpx.AsyncClient(base_url=relay.base_url, timeout=30,
                                         headers={"authorization": f"Bearer {token}"}
                                         ) as client:
                answer = await client.post("/chat/completions", json=chat(stream=True))
    finally:
        server.close()
    assert answer.status_code == 200
    assert secret not in answer.text and wrapped[:half] not in answer.text, answer.text
    assert answer.text.count(MASK) >= 2, answer.text
