"""The Changes tab of Run detail: what the Case changed in its workspace, against the start
the run kept (core/evidence/diff.py): the files added, removed and changed on the left, the
selected one's unified diff on the right, highlighted, laid out as wide as its widest line
(`←`/`→` move it sideways); `b` turns to the fake baseline's workspace and back.

Every name and byte is the Case's: redacted, then through the terminal-safety filter, before
Rich sees it (a file named with an OSC 52 sequence shows as `␛]52;…`, never acts). A link is
named with its target, a binary or huge file named with its size, neither shown."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

from rich.console import Group, RenderableType
from rich.syntax import Syntax
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, ScrollableContainer, Vertical
from textual.widgets import DataTable, Static

from core.evidence.diff import FileChange, WorkspaceDiff, run_diff
from tui.terminal_text import inert, safe
from tui.widgets.keys import KeyedTable

WIDEST = 10_000
"""The widest a diff is laid out (a longer line is cut there: core/evidence/diff.py already
bounds what it shows of a file)."""
SIGN = {"added": ("A", "green"), "removed": ("D", "red"), "changed": ("M", "yellow")}


def change_cells(f: FileChange, redact: Callable[[str], str]) -> tuple[Text, Text, Text]:
    """A file's row: A/D/M, its name, and +added -removed (or what it is, when not shown)."""
    sign, colour = SIGN[f.change]
    if f.kind == "text" and f.diff:
        size = Text(f"+{f.added_lines} ", style="green")
        size.append(f"-{f.removed_lines}", style="red")
    else:
        size = Text("mode" if f.kind == "text" else f.kind, style="dim")
    return Text(sign, style=f"bold {colour}"), inert(redact(f.path)), size


def diff_body(f: FileChange, redact: Callable[[str], str]) -> RenderableType:
    """One file's diff, highlighted; or, for what is not shown, why."""
    head = inert(redact(f"{f.change} · {f.path}"), "bold")
    if f.note:
        head.append(safe(redact(f"  ({f.note})")), style="dim")
    if f.kind == "text" and f.diff:
        return Group(head, Syntax(safe(redact(f.diff)), "diff", theme="ansi_dark",
                                  word_wrap=False, background_color="default"))
    what = {"binary": "a binary file: named, not shown",
            "huge": "too large to show here: `cto-harness diff` names it too",
            "link": "a symbolic link: shown as one, never followed",
            "special": "not a regular file (a FIFO, socket or device): never opened",
            "folder": "a folder",
            "unreadable": "could not be read",
            "text": "the same bytes; only its mode changed"}[f.kind]
    return Group(head, Text(what, style="italic"))


class ChangesView(Vertical):
    """The file list and the diff; read again each time the tab is shown (a running run's
    workspace keeps changing, and the read is one bounded walk)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("b", "toggle_baseline", "Case / baseline"),
        # the file list has the focus, and a row cursor has no use for ← →: they move the
        # diff sideways, to the end of lines wider than the box (priority: before the list)
        Binding("left", "sideways(-1)", "Diff left", show=False, priority=True),
        Binding("right", "sideways(1)", "Diff right", show=False, priority=True),
    ]
    SIDEWAYS = 8
    """Columns a press of ← or → moves the diff."""
    DEFAULT_CSS = """
    ChangesView #changes-head { height: auto; padding: 0 1; }
    ChangesView #changes-list { width: 40; height: 1fr; }
    ChangesView.-narrow #changes-list { width: 24; }
    ChangesView #changes-diff-box { width: 1fr; height: 1fr; padding: 0 1; }
    """

    def __init__(self, run_dir: Path, redact: Callable[[str], str], *, id: str | None = None
                 ) -> None:
        super().__init__(id=id)
        self.run_dir = run_dir
        self.redact = redact
        self.baseline = False
        self.diff: WorkspaceDiff | None = None

    def compose(self) -> ComposeResult:
        yield Static("reading…", id="changes-head")
        with Horizontal():
            yield KeyedTable(id="changes-list", cursor_type="row", zebra_stripes=True)
            with ScrollableContainer(id="changes-diff-box"):
                yield Static(id="changes-diff")

    def on_show(self) -> None:
        self.reload()

    def on_resize(self) -> None:
        self.set_class(self.size.width < 110, "-narrow")

    def action_toggle_baseline(self) -> None:
        self.baseline = not self.baseline
        self.reload()

    @work(exclusive=True, group="changes", exit_on_error=False)
    async def reload(self) -> None:
        try:
            diff = await asyncio.to_thread(run_diff, self.run_dir, baseline=self.baseline)
        except OSError as exc:
            self.query_one("#changes-head", Static).update(
                inert(f"the workspace cannot be read: {exc.strerror or exc}", "red"))
            return
        self.show_diff(diff)

    def show_diff(self, diff: WorkspaceDiff) -> None:
        self.diff = diff
        whose = "fake baseline's" if self.baseline else "Case's"
        other = "the Case's" if self.baseline else "baseline's"
        head = Text(f"{whose} workspace vs its start: ", style="bold")
        head.append(f"{diff.added} added · {diff.removed} removed · {diff.changed} changed",
                    style="")
        head.append(f"  (b: {other})", style="dim")
        if diff.problem:
            head.append("\n")
            head.append(safe(diff.problem), style="yellow")
        self.query_one("#changes-head", Static).update(head)
        table = self.query_one("#changes-list", KeyedTable)
        row = table.cursor_row
        table.clear(columns=True)
        table.add_columns("", "file", "+/-")
        for f in diff.files:
            table.add_row(*change_cells(f, self.redact))
        view = self.query_one("#changes-diff", Static)
        if not diff.files:
            view.update(Text("no change" if not diff.problem else "", style="dim"))
            return
        table.move_cursor(row=min(max(row, 0), len(diff.files) - 1))
        self._show_file(table.cursor_row)

    def _show_file(self, index: int) -> None:
        if self.diff is None or not 0 <= index < len(self.diff.files):
            return
        body = diff_body(self.diff.files[index], self.redact)
        view = self.query_one("#changes-diff", Static)
        view.update(body)
        # As wide as its widest line, so the box scrolls sideways to the end of each: with
        # `width: auto` Textual measures a Rich renderable within the box's width, and the
        # ends of longer lines were cut off with nothing to say so.
        console = self.app.console
        view.styles.width = console.measure(body, options=console.options.update_width(
            WIDEST)).maximum
        self.query_one("#changes-diff-box", ScrollableContainer).scroll_home(animate=False)

    def action_sideways(self, step: int) -> None:
        box = self.query_one("#changes-diff-box", ScrollableContainer)
        box.scroll_relative(x=step * self.SIDEWAYS, animate=False)

    @on(DataTable.RowHighlighted, "#changes-list")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_file(event.cursor_row)
