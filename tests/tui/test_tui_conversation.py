"""The Conversation tab of Run detail, on what the harness writes: a real run of the test
Case's tool loop against the scripted endpoint answering with a tool call; a real run whose
model answers with terminal escapes; a real run watched while the model streams (the answer
in flight, then the step); and an exchanges folder written by the relay's own writer holding
what cannot be rebuilt (a body not JSON, a stream cut mid-event, tool-call arguments that
are not JSON, a blob edited by hand) — shown as what it is, never a crash."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import Static, TabbedContent

from core.evidence.exchange_store import ExchangeStore, Recorded
from core.relay.recording import reassemble
from core.settings import resolve
from core.standins.endpoint import ScriptedEndpoint, tool_then_answer
from tests.support.case_runs import mode, wait_for_case
from tests.support.harness import Harness
from tests.support.pilot import SIZE, dashboard, text_of, until
from tui.app import Dashboard
from tui.screens.detail import RunDetailScreen
from tui.widgets.conversation import ConversationView
from tui.widgets.status_panel import StatusPanel

SOLUTION = 'def slugify(text: str) -> str:\n    return "-".join(text.lower().split())\n'
FINAL = "Done: slugify.py now passes."
HOSTILE = "Sure.\x1b]52;c;cm0gLXJmIH4=\x07 \x1b[2J\x1b]0;pwned\x07 all \u202eclean\x9b31m done"


async def open_conversation(pilot: Pilot, run_dir: Path) -> ConversationView:
    await pilot.app.push_screen(RunDetailScreen(run_dir))
    screen = pilot.app.screen
    screen.query_one(TabbedContent).active = "conversation"
    view = screen.query_one(ConversationView)
    await until(pilot, lambda: view.loaded_once)
    view.table.focus()
    return view


def rows(view: ConversationView) -> list[list[str]]:
    return [list(view.table.cells(i)) for i in range(view.table.row_count)]


def shown(view: ConversationView) -> str:
    return text_of(view.query_one("#conv-step", Static))


def status(view: ConversationView) -> str:
    return text_of(view.query_one("#conv-status", Static))


def cursor(view: ConversationView) -> int:
    return view.table.cursor_row


async def test_a_real_tool_loop_run_reads_as_its_conversation(
        harness: Harness, upstream: ScriptedEndpoint) -> None:
    upstream.responder = tool_then_answer(
        "write_file", {"path": "slugify.py", "content": SOLUTION}, FINAL)
    mode(harness, "tools")
    code, out = harness.run_json("run", "--no-baseline")
    assert code in (0, 1), out  # the Case ran (without the baseline no pass is claimed)
    run_dir = Path(out["run_dir"])
    assert (run_dir / "backend" / "exchanges" / "index.jsonl").is_file(), out

    app = dashboard(harness.runs_root)
    async with app.run_test(size=SIZE) as pilot:
        view = await open_conversation(pilot, run_dir)
        got = rows(view)
        assert [r[1].split()[0] for r in got] == ["system", "user", "agent", "agent"]
        assert got[1][5] == "Make slugify() in slugify.py pass its tests."
        assert "⚙" in got[2][1] and got[2][4] and "ms" in got[2][3]  # model and latency
        assert got[3][5] == FINAL
        assert "4 steps from 2 of 2 exchanges" in status(view)

        await pilot.press("t")  # the next tool call: the agent's write_file
        await until(pilot, lambda: cursor(view) == 2)
        step = shown(view)
        assert "→ tool call write_file" in step
        assert '"path": "slugify.py"' in step  # pretty JSON, one field a line
        assert f"wrote {len(SOLUTION)} characters to slugify.py" in step
        assert "▸ reasoning, 1 line" in step and "I should call" not in step
        await pilot.press("z")
        await until(pilot, lambda: "I should call write_file first." in shown(view))

        await pilot.press("g", "slash", *"now passes", "enter")
        await until(pilot, lambda: cursor(view) == 3)
        assert FINAL in shown(view)
        await pilot.press("n")  # the only match: found again, from the start
        await until(pilot, lambda: cursor(view) == 3)
        await pilot.press("slash", *"characters to slugify", "enter")  # a tool's result,
        await until(pilot, lambda: cursor(view) == 2)  # read from its blob to be searched
        await pilot.press("x")  # no step has a problem: said, the cursor stays
        await until(pilot, lambda: any("no step with a problem" in str(n.message)
                                       for n in pilot.app._notifications))
        assert cursor(view) == 2
        assert await pilot.click(view.table, offset=(2, 2))  # the mouse: the second step
        await until(pilot, lambda: cursor(view) == 1)
        await pilot.press("escape")
        assert pilot.app.screen.focused is not view.query_one("#conv-table")


async def test_a_model_answering_with_escapes_is_shown_inert(
        harness: Harness, upstream: ScriptedEndpoint) -> None:
    upstream.responder = lambda _messages: HOSTILE
    code, out = harness.run_json("run", "--no-baseline")
    assert code in (0, 1), out  # the Case ran (without the baseline no pass is claimed)
    run_dir = Path(out["run_dir"])
    app = dashboard(harness.runs_root)
    async with app.run_test(size=SIZE) as pilot:
        view = await open_conversation(pilot, run_dir)
        await pilot.press("G")
        await until(pilot, lambda: "Sure." in shown(view))
        text = shown(view) + "".join(" ".join(r) for r in rows(view))
        for control in ("\x1b", "\x07", "\x9b", "\u202e"):
            assert control not in text
        assert "␛]52;c;cm0gLXJmIH4=␇" in text  # shown as what it is, visibly


async def test_a_run_in_flight_shows_the_answer_streaming_then_the_step(
        harness: Harness, upstream: ScriptedEndpoint) -> None:
    upstream.responder = lambda _messages: "Thinking aloud: " + "step " * 400
    upstream.token_delay = 0.05
    proc = harness.start("run", "--no-baseline", "--json")
    try:
        run_dir = wait_for_case(harness)
        app = dashboard(harness.runs_root, run_dir)
        async with app.run_test(size=SIZE) as pilot:
            relay = pilot.app.screen.query_one("#relay", StatusPanel)
            await until(pilot, lambda: "answering" in relay.panel.reason)
            assert relay.panel.state == "streaming", relay.panel
            assert re.match(r"[\d,]+ tokens · .*qwen3\.6-35b-a3b answering",
                            relay.panel.reason), relay.panel.reason
            view = await open_conversation(pilot, run_dir)
            await until(pilot, lambda: "tokens so far" in status(view))
            line = status(view)
            assert "in flight qwen3.6-35b-a3b" in line and "Thinking aloud" in line
            upstream.token_delay = 0.0
            await until(pilot, lambda: any(r[5].startswith("Thinking aloud") for r in
                                           rows(view)), timeout=60)
            await until(pilot, lambda: "in flight" not in status(view))
    finally:
        proc.wait(timeout=120)


def hostile_run(run: Path) -> Path:
    """A run's exchanges written by the relay's own writer, holding what cannot be read."""
    store = ExchangeStore(run / "backend" / "exchanges", lambda text: text)

    def write(seq: int, request: bytes, **kw: object) -> None:
        store.write(Recorded(
            seq=seq, started="2026-06-01T02:20:00.000Z", ended="2026-06-01T02:20:01.000Z",
            method="POST", route="chat/completions", api="chat", status=200, stream=True,
            model_asked="m", model_answered="m", latency_ms=10.0, prompt_tokens=1,
            completion_tokens=1, error=None, request=request, **kw))  # type: ignore[arg-type]

    ask = {"model": "m", "messages": [{"role": "user", "content": "hello"}]}
    write(1, b"{this is not json")
    answer, problems, events = reassemble(
        b'data: {"choices":[{"index":0,"delta":{"content":"half an ans"}}]}\n\n'
        b'data: {"choices":[{"index":0,"delta":{"content":"wer', "chat")
    write(2, json.dumps(ask).encode(), response=answer, problems=problems, events=events)
    bad_call = {"object": "chat.completion", "choices": [{"index": 0, "message": {
        "role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function",
        "function": {"name": "shell", "arguments": '{"cmd": "ls'}}]}}]}
    ask2 = {"model": "m", "messages": [{"role": "user", "content": "second conversation"}]}
    write(3, json.dumps(ask2).encode(), response=bad_call)
    store.close()
    blob = next(p for p in (run / "backend" / "exchanges" / "blobs").rglob("*.json")
                if b"second conversation" in p.read_bytes())
    blob.write_text('{"role": "user", "content": "edited by hand"}')
    return run


async def test_what_cannot_be_rebuilt_is_shown_with_its_reason(tmp_path: Path) -> None:
    run = hostile_run(tmp_path / "runs" / "20260601T022000Z-r1-string-slugify-1")
    app = dashboard(tmp_path / "runs")
    async with app.run_test(size=SIZE) as pilot:
        view = await open_conversation(pilot, run)
        got = rows(view)
        assert len(got) >= 4, got
        assert "the request body is not JSON" in shown(view)
        assert "{this is not json" in shown(view)  # raw, as it came
        await pilot.press("x")
        await until(pilot, lambda: cursor(view) != 0)
        reasons = set()
        for _ in range(len(got)):
            reasons.add(shown(view))
            await pilot.press("x")
            await pilot.pause()
        seen = "\n".join(reasons)
        assert "cut mid-event" in seen and "half an ans" in seen
        assert "the arguments are not valid JSON" in seen and '{"cmd": "ls' in seen
        assert "edited" in seen


async def test_a_run_without_exchanges_says_so(runs: dict[str, Path]) -> None:
    app = dashboard(runs["passed"].parent)
    async with app.run_test(size=SIZE) as pilot:
        view = await open_conversation(pilot, runs["passed"])
        assert "No exchanges recorded for this run" in status(view)
        await pilot.press("t")
        await until(pilot, lambda: any("no tool call" in str(n.message)
                                       for n in pilot.app._notifications))


@pytest.fixture(params=[(80, 24), (160, 48)], ids=["80x24", "160x48"])
def size(request: pytest.FixtureRequest) -> tuple[int, int]:
    return request.param


def test_conversation_snapshot(snap_compare, size, real_runs) -> None:  # type: ignore[no-untyped-def]
    """A real tool-loop run (tests/tui/conftest.py's `real_runs`): the tool call selected,
    its reasoning unfolded: rows, pretty arguments, the result."""
    async def settle(pilot: Pilot) -> None:
        view = await open_conversation(pilot, real_runs["tools"].resolve())
        await until(pilot, lambda: len(rows(view)) == 4)
        await pilot.press("t", "z")
        await until(pilot, lambda: "I should call write_file first." in shown(view))
        await pilot.pause(0.1)

    app = Dashboard(Path("runs"), run_id=real_runs["tools"].name, resolved=resolve())
    assert snap_compare(app, terminal_size=size, run_before=settle)
