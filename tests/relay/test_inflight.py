"""The relay's in-flight record (`backend/exchanges/inflight.json`), through the real relay
over loopback HTTP against the scripted endpoint streaming slowly: the answer so far, its
model, its token count and rate appear while it streams, for chat and the Responses API;
the secret streamed in the answer never reaches the file; when the answer ends, the list
is empty. Every wait is on a condition (the stream is held at the endpoint's pace)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from core.evidence.inflight import NAME, InFlight, read_inflight
from core.standins.endpoint import ScriptedEndpoint
from tests.relay.test_exchanges import make
from tests.relay.test_relay import MODEL
from tests.support.secret_forms import survivors

WORDS = 400


async def until(ready: Callable[[], object], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        assert time.monotonic() < deadline, "timed out waiting for the in-flight record"
        await asyncio.sleep(0.02)


def now(run: Path) -> list[InFlight]:
    return read_inflight(run)


@pytest.mark.parametrize("api", ["chat", "responses"])
async def test_a_streaming_answer_is_seen_as_it_arrives_and_the_secret_never(
        tmp_path: Path, api: str) -> None:
    with ScriptedEndpoint(model_id=MODEL, token_delay=0.05) as ep:
        ep.responder = lambda _m: f"Calling {ep.base_url} now. " + "word " * WORDS
        rig = await make(tmp_path, ep)
        try:
            body: dict = {"model": MODEL, "stream": True}
            if api == "chat":
                path = "/chat/completions"
                body.update(messages=[{"role": "user", "content": "talk"}],
                            stream_options={"include_usage": True})
            else:
                path = "/responses"
                body.update(input="talk", store=False)
            async with rig.client() as client, client.stream("POST", path, json=body) as got:
                chunks = got.aiter_bytes()
                await chunks.__anext__()
                await until(lambda: now(rig.run) and now(rig.run)[0].tokens >= 5)
                [req] = now(rig.run)
                assert req.stream and req.api == api
                assert req.model == MODEL and req.model_asked == MODEL
                assert req.text.startswith("Calling ") and "word" in req.text
                await until(lambda: (now(rig.run) or [InFlight("", "", False)])[0]
                            .tokens_per_s is not None)
                raw = (rig.run / "backend" / "exchanges" / NAME).read_text()
                assert survivors(raw, {"endpoint": ep.base_url}) == [], raw
                ep.token_delay = 0.0
                async for _ in chunks:
                    pass
            await until(lambda: json.loads((rig.run / "backend" / "exchanges" / NAME)
                                           .read_text())["requests"] == [])
        finally:
            await rig.stop()
        assert now(rig.run) == []


async def test_a_whole_answer_waits_in_flight_and_the_relay_stopping_clears_it(
        tmp_path: Path) -> None:
    with ScriptedEndpoint(model_id=MODEL) as ep:
        ep.hang = True
        rig = await make(tmp_path, ep)
        try:
            async with rig.client() as client:
                ask = asyncio.create_task(client.post("/chat/completions", json={
                    "model": MODEL, "messages": [{"role": "user", "content": "hi"}]}))
                await until(lambda: now(rig.run))
                [req] = now(rig.run)
                assert not req.stream and req.tokens == 0 and req.model_asked == MODEL
                ask.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await ask
        finally:
            await rig.stop()
        assert now(rig.run) == []


def test_a_bad_inflight_file_reads_as_nothing_in_flight(tmp_path: Path) -> None:
    folder = tmp_path / "backend" / "exchanges"
    folder.mkdir(parents=True)
    for text in ("not json", "[]", '{"requests": 3}', '{"requests": [1, {"tokens": "x"}]}'):
        (folder / NAME).write_text(text)
        assert read_inflight(tmp_path) == []
    (folder / NAME).unlink()
    (folder / NAME).symlink_to("/dev/zero")
    assert read_inflight(tmp_path) == []
