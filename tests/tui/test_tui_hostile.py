"""A hostile run walked through every screen and tab of the dashboard: what reaches the
terminal is read from the bytes the app writes (a recording driver), never from widget text.

The run is built at test time with escape sequences and invisible controls in every string
a Case, a task or the upstream can reach: model names, file names, reasons, log lines."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import ClassVar

import pytest
from textual.drivers import headless_driver
from textual.widgets import TabbedContent

from core.evidence.models import Evidence
from core.settings import resolve
from tests.support.pilot import until
from tests.support.signing import harness_setting
from tests.support.tui_fixtures import FixtureRun, exited, run_id, stage2
from tui.app import Dashboard
from tui.screens.detail import RunDetailScreen
from tui.widgets.runs_table import RunsTable

OSC52 = "\x1b]52;c;ZWNobyBwd25lZA==\x07"
OSC2 = "\x1b]2;pwned title\x1b\\"
CSI = "\x1b[2J\x1b[6n"
C1 = "\x9b31m\x9d0;x\x9c"
BIDI = "\u202eevil\u202c\u2066x\u2069\u200b"
MARKUP = "[link=https://evil.example]click[/link][reverse]"
HOSTILE = f"{OSC52}{OSC2}{CSI}{C1}{BIDI}{MARKUP}"

TEXTUAL_OWN = re.compile(
    r"\x1b\[(?:\d+(?:;\d+)*)?[mHJKABCDGf]"   # colours, cursor moves, erase
    r"|\x1b\[\?\d+[hl]"                        # modes (synchronised output, cursor)
    r"|\x1b\]22;[a-z-]+(?:\x07|\x1b\\)"          # OSC 22: the mouse pointer's shape
)
"""The sequences the compositor itself writes for a frame; anything else is not ours."""


class RecordingDriver(headless_driver.HeadlessDriver):
    """Headless input, but every frame rendered and its bytes kept, as a terminal gets them."""

    written: ClassVar[list[str]] = []

    @property
    def is_headless(self) -> bool:
        return False

    def write(self, data: str) -> None:
        RecordingDriver.written.append(data)


def hostile_run(root: Path) -> Path:
    run = FixtureRun(root, run_id(0, 3001))
    run.preflight()
    stage2(run)
    run.relay(7, f"claude{HOSTILE}", f"qwen{HOSTILE}", status=403,
              refused=f"model not admitted {HOSTILE}")
    run.log(f"case says {HOSTILE}")
    (run.paths.workspace / f"file{HOSTILE.replace('/', '_')}.py").parent.mkdir(
        parents=True, exist_ok=True)
    (run.paths.workspace / f"file{OSC52}{BIDI}.py").write_text(f"print('{HOSTILE}')\n")
    evidence = Evidence(file="backend/relay.jsonl", line=4, field="model_asked",
                        detail=f"relay refused claude{HOSTILE}")
    run.event(7.01, "guard_tripped", evidence=evidence.model_dump(exclude_none=True))
    run.event(8, "case_process_exited", **exited(1, 7.5))
    run.report("failed", 9.5, fallback_detected=True, guard_state="tripped",
               fallback_evidence=[evidence], case_model=f"qwen{HOSTILE}",
               reasons=[f"fallback detected: {HOSTILE}"],
               case_network_detail=f"isolated {HOSTILE}")
    return run.paths.root


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    for name in list(os.environ):
        if harness_setting(name):
            monkeypatch.delenv(name)
    monkeypatch.setattr(headless_driver, "HeadlessDriver", RecordingDriver)
    RecordingDriver.written = []
    return RecordingDriver.written


def unsafe_left(output: str) -> list[str]:
    """What is left of terminal control once the compositor's own sequences are taken out:
    any ESC, C0 but newline and CR, DEL, C1, bidi or zero-width control."""
    rest = TEXTUAL_OWN.sub("", output)
    return sorted({f"U+{ord(ch):04X}" for ch in rest
                   if (ord(ch) < 0x20 and ch not in "\n\r") or 0x7F <= ord(ch) <= 0x9F
                   or ch in "\u061c\u200b\u200e\u200f\u2028\u2029\u202a\u202b\u202c\u202d"
                   "\u202e\u2060\u2061\u2062\u2063\u2064\u2066\u2067\u2068\u2069\ufeff"})


async def test_a_hostile_run_reaches_the_terminal_only_as_inert_text(
        tmp_path: Path, recorded: list[str]) -> None:
    run_dir = hostile_run(tmp_path / "runs")
    app = Dashboard(tmp_path / "runs", run_id=run_dir.name, resolved=resolve())
    async with app.run_test(size=(160, 48)) as pilot:
        await until(pilot, lambda: app.screen.view.report is not None)  # type: ignore[attr-defined]
        await pilot.pause(0.3)
        await pilot.press("2")
        await until(pilot, lambda: app.screen.query_one(RunsTable).row_count == 1)
        await pilot.pause(0.2)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, RunDetailScreen)
                    and app.screen.record.validation is not None)
        for tab in ("summary", "trace", "log", "relay", "baseline", "files"):
            app.screen.query_one(TabbedContent).active = tab
            await pilot.pause(0.3)
            if tab == "trace":  # each event whole, below the table
                app.screen.query_one("#trace-table").focus()
                for _ in range(20):
                    await pilot.press("j")
                    await pilot.pause(0.02)
        tree = app.screen.query_one("#tree")
        tree.focus()
        await pilot.press("down", "enter", "down", "down", "enter")  # open workspace/, a file
        await pilot.pause(0.5)
        await pilot.press("escape", "escape", "r")  # the retry dialog quotes the run
        await pilot.pause(0.3)
        await pilot.press("escape", "escape", "4")  # Jobs
        await pilot.pause(0.5)
        await pilot.press("question_mark")
        await pilot.pause(0.3)
    output = "".join(recorded)
    assert len(output) > 10_000, "frames were written"
    assert "\x1b]" not in TEXTUAL_OWN.sub("", output), "an OSC sequence got through"
    assert "\x1b[6n" not in output and "\x1b[2J" not in output
    assert unsafe_left(output) == []
    # and the hostile text was on screen, shown, not acted on or left out
    assert "␛]52;c;" in output and "claude␛" in output
