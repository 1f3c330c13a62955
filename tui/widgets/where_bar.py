"""Where am I: a one-line tab bar on every screen (as k9s and lazygit have), the current
screen marked, Run detail shown as a level below Runs, the runs root at the right."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from tui.terminal_text import safe

LABELS = {"live": ("1", "Live"), "runs": ("2", "Runs"), "work": ("3", "Work items"),
          "jobs": ("4", "Jobs")}


class WhereBar(Static):
    DEFAULT_CSS = """
    WhereBar {
        height: 1;
        background: $panel;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    """

    def __init__(self, current: str, *, detail: bool | str = False) -> None:
        """`detail`: a level below `current`: True for Run detail, or its own name."""
        super().__init__()
        self.current = current
        self.detail = detail

    def on_mount(self) -> None:
        self.update(self.bar())

    def bar(self) -> Text:
        app = self.app
        text = Text(" cto-harness ", style="bold")
        for mode in getattr(app, "screens_in_order", ["live", "runs"]):
            key, label = LABELS.get(mode, ("", mode))
            here = mode == self.current and not self.detail
            text.append(" ")
            text.append(f" {key} {label} ", style="bold reverse" if here else "dim")
        if self.detail:
            text.append(" › ", style="dim")
            label = self.detail if isinstance(self.detail, str) else "Run detail"
            text.append(f" {label} ", style="bold reverse")
        repository = getattr(app, "root_repository", None)
        if repository is not None:  # before the root: a narrow terminal cuts the root first
            text.append(f"   ⚠ runs inside git repo {safe(repository.name)}",
                        style="bold yellow")
        text.append(f"   {safe(str(app.sub_title))}", style="dim")
        return text
