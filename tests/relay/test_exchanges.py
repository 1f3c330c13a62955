"""Every exchange kept whole through the real relay, over loopback HTTP, against the scripted
endpoint answering with tool calls: both APIs, whole and streamed; the conversation rebuilt
from the files (tool results bound to their calls, the resent history stored once and not
repeated as steps); the bound; the secret in no exchange file."""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from core.evidence.exchanges import ExchangeFolder
from core.evidence.transcript import Transcript
from core.relay.server import Relay
from core.standins.endpoint import ScriptedEndpoint, tool_then_answer
from tests.relay.test_relay import MODEL, masker
from tests.support.secret_forms import survivors

FINAL = "Done: slugify now lowercases."
ARGS = {"command": "pytest -q tests/test_slugify.py"}


class Rig:
    def __init__(self, relay: Relay, token: str, run: Path, upstream: ScriptedEndpoint):
        self.relay, self.token, self.run, self.upstream = relay, token, run, upstream

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.relay.base_url, timeout=10,
                                 headers={"authorization": f"Bearer {self.token}"})

    async def stop(self) -> None:
        await self.relay.stop()


async def make(tmp_path: Path, upstream: ScriptedEndpoint, max_bytes: int = 512 << 20
               ) -> Rig:
    token = secrets.token_hex(16)
    run = tmp_path / "run"
    relay = Relay(upstream=SecretStr(upstream.base_url), api_key=None, model=MODEL,
                  token=token, ledger=run / "backend" / "relay.jsonl",
                  redact=masker(upstream.base_url), exchanges=run / "backend" / "exchanges",
                  exchanges_max_bytes=max_bytes)
    await relay.start()
    return Rig(relay, token, run, upstream)


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    with ScriptedEndpoint(tool_then_answer("run_shell", ARGS, FINAL), model_id=MODEL) as ep:
        r = await make(tmp_path, ep)
        try:
            yield r
        finally:
            await r.stop()


def streamed_chat(text: str) -> dict:
    """The whole answer a chat stream carried, as a client would assemble it."""
    message: dict = {"role": "assistant", "content": "", "tool_calls": []}
    for line in text.splitlines():
        if not line.startswith("data: {"):
            continue
        for choice in json.loads(line[6:]).get("choices", []):
            delta = choice["delta"]
            message["content"] += delta.get("content") or ""
            for call in delta.get("tool_calls") or []:
                if "id" in call:
                    message["tool_calls"].append({"id": call["id"], "type": "function",
                                                  "function": {"name": call["function"]["name"],
                                                               "arguments": ""}})
                message["tool_calls"][call["index"]]["function"]["arguments"] += \
                    call["function"]["arguments"]
    if not message["tool_calls"]:
        del message["tool_calls"]
    return message


async def chat_loop(rig: Rig, stream: bool) -> None:
    """An agent's loop: the task, a tool call, its result, the final answer."""
    messages: list[dict] = [{"role": "system", "content": "You are a coding agent. " * 200},
                            {"role": "user", "content": "Make slugify lowercase."}]
    async with rig.client() as client:
        for _ in range(2):
            body: dict = {"model": MODEL, "messages": messages,
                          "tools": [{"type": "function", "function": {"name": "run_shell"}}]}
            if stream:
                body.update(stream=True, stream_options={"include_usage": True})
            response = await client.post("/chat/completions", json=body)
            assert response.status_code == 200
            message = streamed_chat(response.text) if stream else \
                response.json()["choices"][0]["message"]
            messages.append(message)
            for call in message.get("tool_calls") or []:
                messages.append({"role": "tool", "tool_call_id": call["id"],
                                 "content": "1 passed in 0.01s"})


async def responses_loop(rig: Rig, stream: bool) -> None:
    items: list[dict] = [{"type": "message", "role": "user", "content": [
        {"type": "input_text", "text": "Make slugify lowercase."}]}]
    async with rig.client() as client:
        for _ in range(2):
            body: dict = {"model": MODEL, "instructions": "You are Codex. " * 300,
                          "input": items, "store": False, "stream": stream}
            response = await client.post("/responses", json=body)
            assert response.status_code == 200
            if stream:
                done = [json.loads(line[6:]) for line in response.text.splitlines()
                        if line.startswith("data: ") and '"response.completed"' in line]
                output = done[-1]["response"]["output"]
            else:
                output = response.json()["output"]
            items += output
            items += [{"type": "function_call_output", "call_id": o["call_id"],
                       "output": "1 passed in 0.01s"}
                      for o in output if o["type"] == "function_call"]


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("api", ["chat", "responses"])
async def test_a_tool_loop_is_kept_whole_and_rebuilt(rig: Rig, api: str, stream: bool) -> None:
    await (chat_loop if api == "chat" else responses_loop)(rig, stream)
    await rig.stop()
    folder = ExchangeFolder.of_run(rig.run)
    entries = folder.entries()
    assert [e.seq for e in entries] == [1, 2]
    assert all(e.meta["status"] == 200 and e.meta["stream"] is stream for e in entries)
    first = folder.load(entries[0])
    assert first.problems == []
    assert first.request == rig.upstream.received[-2].body  # the body, exactly as sent
    steps = Transcript(rig.run).all_steps()
    sources = [s.source for s in steps]
    assert sources == ["system", "user", "agent", "agent"], [
        (s.source, s.first_line) for s in steps]
    call_step, final = steps[2], steps[3]
    [call] = call_step.tool_calls
    assert (call.name, call.arguments, call.problem) == ("run_shell", ARGS, None)
    assert [(o.call_id, o.content) for o in call_step.observations] == [
        (call.id, "1 passed in 0.01s")]
    assert call_step.reasoning == "I should call run_shell first."
    assert final.message == FINAL and final.answer and final.model == MODEL
    assert final.prompt_tokens and final.latency_ms is not None
    assert steps[0].segment_start == "the first request"
    assert {s.segment for s in steps} == {1}
    # The system prompt and the tools, resent on the second turn, are stored once.
    blobs = list((folder.folder / "blobs").rglob("*.json"))
    big = [b for b in blobs if b.stat().st_size > 2000]
    assert len(big) == 1, big


async def test_the_secret_reaches_no_exchange_file(tmp_path: Path) -> None:
    def leaky(messages: list[dict]) -> str:
        return f"the endpoint is {ep.base_url} ({ep.base_url.encode().hex()})"

    with ScriptedEndpoint(leaky, model_id=MODEL) as ep:
        rig = await make(tmp_path, ep)
        async with rig.client() as client:
            for stream in (False, True):
                await client.post("/chat/completions", json={
                    "model": MODEL, "stream": stream,
                    "messages": [{"role": "user", "content": f"call {ep.base_url}"}]})
        await rig.stop()
        files = [f for f in (rig.run / "backend" / "exchanges").rglob("*") if f.is_file()]
        assert len(files) >= 4
        for file in files:
            assert survivors(file.read_text(), {"endpoint": ep.base_url}) == [], file
        answers = [s.message for s in Transcript(rig.run).all_steps() if s.answer]
        assert len(answers) == 2 and all("[REDACTED:endpoint]" in a for a in answers)


async def test_past_the_bound_an_exchange_keeps_its_metadata_and_says_so(
        tmp_path: Path) -> None:
    with ScriptedEndpoint(lambda m: "x" * 3000, model_id=MODEL) as ep:
        rig = await make(tmp_path, ep, max_bytes=6000)
        async with rig.client() as client:
            for n in range(3):
                await client.post("/chat/completions", json={
                    "model": MODEL, "messages": [{"role": "user", "content": f"turn {n}"}]})
        await rig.stop()
    entries = ExchangeFolder.of_run(rig.run).entries()
    assert [e.meta["cut"] is None for e in entries] == [True, False, False]
    assert "CTO_HARNESS_EXCHANGES_MAX_BYTES" in entries[1].meta["cut"]
    steps = Transcript(rig.run).all_steps()
    assert any("CTO_HARNESS_EXCHANGES_MAX_BYTES" in p for s in steps for p in s.problems)
