"""The stage timeline: every trace event with its time and duration, the current one marked."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from tui.live_state import Stage
from tui.terminal_text import inert

MARKS = {"done": ("✓", "green"), "current": ("▶", "bold cyan"), "todo": ("·", "bright_black"),
         "alarm": ("!", "bold red")}


def seconds(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.1f} s"


class StageTimeline(Static):
    DEFAULT_CSS = """
    StageTimeline {
        border: round $panel-lighten-2;
        width: 46;
        height: 1fr;
        padding: 0 1;
    }
    """

    def on_mount(self) -> None:
        self.border_title = "Stages"
        self.show([])

    def show(self, stages: list[Stage]) -> None:
        table = Table.grid(padding=(0, 1), expand=True)
        table.add_column(width=1)
        table.add_column(ratio=1, no_wrap=True, overflow="ellipsis")
        table.add_column(width=8)
        table.add_column(width=8, justify="right")
        if not stages:
            table.add_row("", Text("no trace yet", style="bright_black"), "", "")
        for stage in stages:
            symbol, style = MARKS[stage.mark]
            name_style = "bright_black" if stage.mark == "todo" else style
            table.add_row(Text(symbol, style=style), inert(stage.event, name_style),
                          Text(stage.at, style="bright_black"), seconds(stage.duration_s))
        self.update(table, layout=False)  # its size is set by CSS, not by the stages
