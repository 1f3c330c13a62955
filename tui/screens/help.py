"""`?`: every key, on one screen (the footer shows the ones that apply here)."""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

KEYS: tuple[tuple[str, str], ...] = (
    ("1 / 2 / 3 / 4 / tab", "switch screens: Live, Runs, Work items (with --sot), Jobs; tab "
                            "cycles"),
    ("enter", "open the selected run in Run detail"),
    ("← → / ↓", "Run detail: pick a tab on the tab bar / go into it (its table, tree, log)"),
    ("escape", "back one level (close a dialog, out of a tab, leave Run detail, clear the "
               "filter)"),
    ("r", "retry the selected or current run: same task, engine, profile; new run with retry_of"),
    ("c", "cancel the run in flight (SIGINT: it writes a `cancelled` report)"),
    ("e", "enter the endpoint URL, masked, held in memory, handed to runs started here"),
    ("j k / ↑ ↓", "move in every list and log; g / G first / last; PgUp PgDn Home End"),
    ("f / end / G", "follow the log again (scrolling up pauses it)"),
    ("s", "Live: fold or show the stages (below 120 columns they fold; s shows them in "
          "the log's place) · Runs: sort (time, status, task, duration, checks)"),
    ("v", "Live: under 120 columns or 30 rows, the conversation in the log's place, and "
          "back; larger, the keys to the conversation or the log"),
    ("y / Y", "copy the selected run's id / path (OSC 52)"),
    ("o", "Run detail: open the viewed file (Files) or the log in $EDITOR, as a read-only "
          "copy"),
    ("t T / x X / z", "Conversation (Run detail, Live): next / previous tool call, step with a "
                      "problem; z shows or folds the reasoning"),
    ("R", "Work items: re-gate now"),
    ("r / c", "Jobs: resume the selected job (its missing trials) / cancel it"),
    ("enter", "Jobs: open the selected trial (a cell of the tasks × attempts matrix) in Run "
              "detail"),
    ("space / =", "Runs: mark two runs of one task (A, B) / compare them side by side · Jobs: "
                  "the same for two jobs (pass@1, B − A with its 95% CI, McNemar)"),
    ("b", "Run detail › Changes: the fake baseline's workspace diff / the Case's"),
    ("← →", "Run detail › Changes, in the file list: move the diff sideways (lines wider "
            "than the screen)"),
    ("/", "search the log (Live, Run detail), the conversation (its tab) or filter the runs "
          "(Runs); n / N next match"),
    ("ctrl+p", "command palette: every action by name"),
    ("?", "this help"),
    ("q", "quit (asks when a run started here is still going)"),
)


class HelpScreen(ModalScreen[None]):
    CSS_PATH = "dialogs.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss", "Close"),
        Binding("question_mark", "dismiss", "Close", show=False),
        Binding("j", "scroll(1)", "Down", show=False),
        Binding("k", "scroll(-1)", "Up", show=False),
    ]

    def action_scroll(self, lines: int) -> None:
        self.query_one("#help-keys", VerticalScroll).scroll_relative(y=lines, animate=False)

    def compose(self) -> ComposeResult:
        table = Table(box=None, padding=(0, 2), show_header=False)
        table.add_column(style="bold cyan", no_wrap=True)
        table.add_column()
        for key, what in KEYS:
            table.add_row(key, what)
        with Vertical(classes="dialog", id="help-dialog") as box:
            box.border_title = "Keys"
            with VerticalScroll(id="help-keys"):
                yield Static(table)
            yield Static("↑ ↓ j k scroll · Escape closes", classes="hint")
