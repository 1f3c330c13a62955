"""The Live screen's conversation, growing with a real run (issue 21: "Live: the conversation
grows as the run goes, and the request in flight shows its streamed answer as it arrives").

One real run of the test Case's tool loop against the scripted endpoint: the first answer (a
tool call) comes at once, the second streams slowly, so the dashboard is looked at while the
run is still running — the tool-call step already there, the answer in flight shown as it
streams, the model answering with terminal escapes — and then again once the answer has
ended. The slow stream is a gate, not a clock: it is opened (`token_delay = 0`) only once
what is asserted mid-run was seen, and it would take minutes to end on its own."""

from __future__ import annotations

from textual.widgets import Static

from core.standins.endpoint import ScriptedEndpoint, tool_then_answer
from tests.support.case_runs import mode, wait_for_case
from tests.support.harness import Harness
from tests.support.pilot import dashboard, text_of, until
from tui.screens.live import LiveScreen
from tui.widgets.case_log import CaseLog
from tui.widgets.conversation import ConversationView

SOLUTION = 'def slugify(text: str) -> str:\n    return "-".join(text.lower().split())\n'
HOSTILE = "Done.\x1b]52;c;cm0gLXJmIH4=\x07 \x1b[2J\x1b]0;pwned\x07 all \u202eclean\x9b31m "
FINAL = HOSTILE + "I checked each case of TASK.md in turn. " * 400
"""~3,000 tokens: at the gate's pace (0.05 s a token) minutes, far past any wait below."""
CONTROLS = ("\x1b", "\x07", "\x9b", "\u202e")


def rows(view: ConversationView) -> list[tuple[str, ...]]:
    return [view.table.cells(i) for i in range(view.table.row_count)]


def below(view: ConversationView) -> str:
    return text_of(view.query_one("#conv-step", Static))


def status(view: ConversationView) -> str:
    return text_of(view.query_one("#conv-status", Static))


def cursor(view: ConversationView) -> int:
    return view.table.cursor_row


async def test_the_conversation_grows_on_live_while_the_run_goes(
        harness: Harness, upstream: ScriptedEndpoint) -> None:
    upstream.responder = tool_then_answer(
        "write_file", {"path": "slugify.py", "content": SOLUTION}, FINAL)
    upstream.token_delay = 0.05
    mode(harness, "tools")
    proc = harness.start("run", "--no-baseline", "--json")
    try:
        run_dir = wait_for_case(harness)
        report = run_dir / "report.json"
        app = dashboard(harness.runs_root, run_dir)
        async with app.run_test(size=(160, 48)) as pilot:
            screen = pilot.app.screen
            assert isinstance(screen, LiveScreen)
            await until(pilot, lambda: screen.query(ConversationView))
            view = screen.query_one(ConversationView)
            assert view.run_dir == run_dir
            assert screen.query_one("#talk").display and screen.query_one("#log-area").display
            # Mid-run: the tool call's step is there, the next answer streams below it.
            await until(pilot, lambda: any(r[1].startswith("agent ⚙") for r in rows(view)))
            await until(pilot, lambda: "in flight" in status(view)
                        and "I checked each case" in below(view))
            assert not report.exists() and proc.poll() is None, "the run is still running"
            assert [r[1].split()[0] for r in rows(view)] == ["system", "user", "agent"]
            assert cursor(view) == 2, "the newest step is the one followed"
            streaming = below(view)
            assert "qwen3.6-35b-a3b" in streaming and "tokens so far" in streaming
            assert "␛]0;pwned␇" in streaming  # the escapes shown as what they are
            assert not any(c in streaming + status(view) for c in CONTROLS)
            # The gate opens: the answer ends, and becomes the newest step, followed.
            upstream.token_delay = 0.0
            await until(pilot, lambda: len(rows(view)) == 4, timeout=60)
            await until(pilot, lambda: "in flight" not in status(view) and cursor(view) == 3)
            last = rows(view)[3]
            assert last[1].startswith("agent") and last[5].startswith("Done.␛]52;c;")
            shown = below(view)
            assert "step 4" in shown and "I checked each case" in shown
            assert not any(c in shown + "".join(" ".join(r) for r in rows(view))
                           for c in CONTROLS)

            # 80x24: the log and the conversation take turns in the one place; `v`.
            await pilot.resize_terminal(80, 24)
            log, talk, log_area = (screen.query_one(CaseLog), screen.query_one("#talk"),
                                   screen.query_one("#log-area"))
            await until(pilot, lambda: not talk.display and log_area.display)
            await pilot.press("v")
            await until(pilot, lambda: talk.display and not log_area.display)
            assert screen.focused is view.table
            await pilot.press("k")  # the conversation's own keys act on it now
            assert cursor(view) == 2
            await pilot.press("v")
            await until(pilot, lambda: log_area.display and not talk.display)
            assert screen.focused is log
    finally:
        upstream.token_delay = 0.0
        proc.wait(timeout=120)
