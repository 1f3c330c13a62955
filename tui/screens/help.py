"""`?`: every key, on one screen (the footer shows the ones that apply here)."""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

KEYS: tuple[tuple[str, str], ...] = (
    ("1 / 2 / 3 / tab", "switch screens: Live, Runs, Work items (with --sot); tab cycles"),
    ("enter", "open the selected run in Run detail"),
    ("← → / ↓", "Run detail: pick a tab on the tab bar / go into it (its table, tree, log)"),
    ("escape", "back one level (close a dialog, out of a tab, leave Run detail, clear the "
               "filter)"),
    ("r", "retry the selected or current run: same task, engine, profile; new run with retry_of"),
    ("c", "cancel the run in flight (SIGINT: it writes a `cancelled` report)"),
    ("e", "enter the endpoint URL, masked, held in memory, handed to runs started here"),
    ("f / end", "follow the log again (scrolling up pauses it)"),
    ("/", "search the log (Live, Run detail) or filter the runs (Runs); n / N next match"),
    ("ctrl+p", "command palette: every action by name"),
    ("?", "this help"),
    ("q", "quit (asks when a run started here is still going)"),
)


class HelpScreen(ModalScreen[None]):
    CSS_PATH = "dialogs.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss", "Close"),
        Binding("question_mark", "dismiss", "Close", show=False),
    ]

    def compose(self) -> ComposeResult:
        table = Table(box=None, padding=(0, 2), show_header=False)
        table.add_column(style="bold cyan", no_wrap=True)
        table.add_column()
        for key, what in KEYS:
            table.add_row(key, what)
        with Vertical(classes="dialog") as box:
            box.border_title = "Keys"
            yield Static(table)
            yield Static("\nEscape closes", classes="hint")
