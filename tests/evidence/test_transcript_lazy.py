"""The transcript read lazily (the dashboard's way): the same steps as read eagerly (the
exports' way) once each is filled; tool results not read until asked for, and let go
again; a result's blob edited by hand becomes its step's problem when it is read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.evidence.exchange_store import ExchangeStore, Recorded
from core.evidence.transcript import Transcript
from core.standins.endpoint import ScriptedEndpoint, tool_then_answer
from tests.relay.test_exchanges import ARGS, FINAL, chat_loop, make, responses_loop
from tests.relay.test_relay import MODEL

TURNS = 30


def tool_loop(run: Path) -> None:
    """A tool loop of TURNS turns, written by the relay's own writer."""
    store = ExchangeStore(run / "backend" / "exchanges", lambda text: text)
    messages: list[dict] = [{"role": "system", "content": "You are a coding agent."},
                            {"role": "user", "content": "Fix the tests."}]
    for turn in range(1, TURNS + 1):
        call = {"role": "assistant", "content": None, "tool_calls": [
            {"id": f"call_{turn}", "type": "function",
             "function": {"name": "shell", "arguments": json.dumps({"cmd": f"step {turn}"})}}]}
        store.write(Recorded(
            seq=turn, started="2026-06-01T00:00:00.000Z", ended="2026-06-01T00:00:01.000Z",
            method="POST", route="chat/completions", api="chat", status=200, stream=False,
            model_asked="m", model_answered="m", latency_ms=5.0, prompt_tokens=turn,
            completion_tokens=1, error=None,
            request=json.dumps({"model": "m", "messages": messages}).encode(),
            response={"object": "chat.completion", "choices": [{"index": 0,
                                                                "message": call}]}))
        messages += [call, {"role": "tool", "tool_call_id": f"call_{turn}",
                            "content": f"output of step {turn}"}]
    store.close()


def test_lazy_steps_are_the_eager_ones_once_filled(tmp_path: Path) -> None:
    tool_loop(tmp_path)
    eager = Transcript(tmp_path).all_steps()
    lazy = Transcript(tmp_path, lazy=True)
    steps = lazy.all_steps()
    assert len(steps) == len(eager) > TURNS
    unread = [o for s in steps for o in s.observations]
    assert len(unread) == TURNS - 1 and all(o.content == "" for o in unread)
    for step in steps:
        lazy.fill(step)
    assert [s.as_dict() for s in steps] == [s.as_dict() for s in eager]
    middle = steps[TURNS]
    assert middle.observations[0].content.startswith("output of step")
    lazy.unfill(middle.observations)
    assert middle.observations[0].content == ""
    assert lazy.fill(middle) and middle.observations[0].content


def test_an_edited_result_is_its_steps_problem_when_read(tmp_path: Path) -> None:
    tool_loop(tmp_path)
    blob = next(p for p in (tmp_path / "backend" / "exchanges" / "blobs").rglob("*.json")
                if b"output of step 7" in p.read_bytes())
    blob.write_text('{"role": "tool", "tool_call_id": "call_7", "content": "forged"}')
    lazy = Transcript(tmp_path, lazy=True)
    step = next(s for s in lazy.all_steps() if s.tool_calls and s.tool_calls[0].id == "call_7")
    assert lazy.fill(step) == []
    assert any("edited" in p for p in step.problems), step.problems
    assert "forged" not in json.dumps(step.as_dict())


@pytest.mark.parametrize("api", ["chat", "responses"])
async def test_through_the_real_relay_lazy_and_eager_agree(tmp_path: Path, api: str) -> None:
    """Both APIs' tool results (chat `tool` messages, Responses `function_call_output`
    items), recorded by the real relay from the scripted endpoint's tool calls."""
    with ScriptedEndpoint(tool_then_answer("run_shell", ARGS, FINAL), model_id=MODEL) as ep:
        rig = await make(tmp_path, ep)
        try:
            await (chat_loop if api == "chat" else responses_loop)(rig, False)
        finally:
            await rig.stop()
    eager = Transcript(rig.run).all_steps()
    lazy = Transcript(rig.run, lazy=True)
    steps = lazy.all_steps()
    [call] = [s for s in steps if s.tool_calls]
    assert call.observations and call.observations[0].content == ""
    for step in steps:
        lazy.fill(step)
    assert [s.as_dict() for s in steps] == [s.as_dict() for s in eager]
    assert call.observations[0].content == "1 passed in 0.01s"
