"""A titled panel answering one question with a coloured word and a one-line reason."""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widgets import Static

from tui.live_state import PanelState
from tui.terminal_text import inert, safe

TONES = ("ok", "bad", "warn", "idle")
SYMBOLS = {"ok": "●", "bad": "✗", "warn": "▲", "idle": "○"}


class StatusPanel(Static):
    DEFAULT_CSS = """
    StatusPanel {
        border: round $panel-lighten-2;
        height: 5;
        width: 1fr;
        padding: 0 1;
        &.-ok { border: round $success; }
        &.-bad { border: round $error; }
        &.-warn { border: round $warning; }
    }
    """

    panel: reactive[PanelState] = reactive(PanelState("…", "idle", ""), layout=False)

    def __init__(self, title: str, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.border_title = title

    def watch_panel(self, panel: PanelState) -> None:
        for tone in TONES:
            self.set_class(panel.tone == tone, f"-{tone}")
        colour = {"ok": "green", "bad": "red", "warn": "yellow", "idle": "bright_black"}
        text = Text()
        text.append(f"{SYMBOLS[panel.tone]} {safe(panel.state)}",
                    style=f"bold {colour[panel.tone]}")
        text.append("\n")
        text.append(safe(panel.reason), style="default")
        self.update(text, layout=False)  # a fixed-size box: no layout pass for new words
        self.tooltip = inert(panel.reason)
