"""Work items: each SOT item's written status beside what the run evidence says it could be,
and the acceptance lines with the latest real run's verdicts; re-gated as runs finish.

The same content as `cto-harness gates`, from the same `core.planning.gates` code; the screen never
writes the SOT. Open it with `WorkItemsScreen(sot_path, runs_root)`.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import DataTable, Static

from core.evidence.runs import RunsRootError
from core.planning.gates import GateReport, GateWatcher, RulesError, evidence_summary
from core.planning.sot import SotError
from tui.screens.switched import SwitchedTo
from tui.terminal_text import inert, safe
from tui.widgets.footer import SteadyFooter
from tui.widgets.keys import KeyedTable
from tui.widgets.where_bar import WhereBar

POLL_S = 1.0
"""How often the runs root, SOT and rules are stat'ed; only a change re-gates."""

COULD_BE_STYLE = {"unblockable": "bold green", "still blocked": "bold yellow",
                  "no rule": "bright_black"}
VERDICT_STYLE = {"ok": "bold green", "failed": "bold red", "not_applicable": "bright_black"}


def _safe(text: str) -> str:
    """SOT text is the user's: control sequences in it must not reach the terminal."""
    return safe(text)


class WorkItemsScreen(SwitchedTo, Screen[None]):
    DEFAULT_CSS = """
    WorkItemsScreen { layout: vertical; }
    #wi-source { height: auto; max-height: 4; padding: 0 1; background: $boost; }
    #wi-items { height: 1fr; }
    #wi-acceptance-title { height: 1; padding: 0 1; margin-top: 1; }
    #wi-acceptance { height: 2fr; }
    #wi-detail { height: auto; min-height: 2; max-height: 5; padding: 0 1;
                 border-top: solid $panel; }
    .-short #wi-acceptance-title { margin-top: 0; }
    .-short #wi-detail { max-height: 2; }
    .-short #wi-source { max-height: 2; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("R", "regate", "Re-gate now")]

    def __init__(self, sot_path: Path, runs_root: Path, rules_path: Path | None = None,
                 poll_s: float = POLL_S) -> None:
        super().__init__()
        self.watcher = GateWatcher(sot_path, rules_path, runs_root)
        self.poll_s = poll_s
        self.report: GateReport | None = None
        self.error: str | None = None

    def compose(self) -> ComposeResult:
        yield WhereBar("work")
        yield Static("Reading the SOT and the runs…", id="wi-source")
        yield KeyedTable(id="wi-items", cursor_type="row", zebra_stripes=True)
        yield Static(id="wi-acceptance-title")
        yield KeyedTable(id="wi-acceptance", cursor_type="row", zebra_stripes=True)
        yield Static(id="wi-detail")
        yield SteadyFooter()

    def on_mount(self) -> None:
        self.query_one("#wi-items", DataTable).add_columns(
            "Item", "Written", "Could be", "Evidence", "Title")
        self.query_one("#wi-acceptance", DataTable).add_columns(
            "Verdict", "Criterion", "Acceptance line")
        self._watch()

    @work(exclusive=True, group="gates")
    async def _watch(self) -> None:
        """Poll in a thread: stats each round, validation only for runs that changed."""
        while True:
            try:
                report = await asyncio.to_thread(self.watcher.poll)
            except (SotError, RulesError, RunsRootError) as exc:
                self._show_error(str(exc))
            else:
                if report is not None:
                    self._show(report)
            await asyncio.sleep(self.poll_s)

    def action_regate(self) -> None:
        self.watcher = GateWatcher(self.watcher.sot_path, self.watcher.rules_path,
                                   self.watcher.runs_root)
        self._watch()

    # -- drawing ----------------------------------------------------------------------
    def _show_error(self, message: str) -> None:
        self.error = message
        text = Text("✗ ", style="bold red")
        text.append(_safe(message))
        text.append("\nFix the file; this screen re-reads it when it changes.",
                    style="bright_black")
        self.query_one("#wi-source", Static).update(text)

    def _show(self, report: GateReport) -> None:
        self.report, self.error = report, None
        real = sum(1 for r in report.runs if not r.demo)
        source = Text()
        source.append(_safe(report.sot), style="bold")
        source.append(f"  ·  rules {_safe(report.rules.note)}\n", style="bright_black")
        for line in report.rules.unread:
            source.append(f"! {_safe(line)}\n", style="yellow")
        source.append(f"{len(report.runs)} run(s), {real} non-demo under "
                      f"{_safe(report.runs_root)}")
        if report.latest_real_run:
            source.append(safe(f"  ·  latest real run {report.latest_real_run}"))
        self.query_one("#wi-source", Static).update(source)
        self._fill_items(report)
        self._fill_acceptance(report)

    def _fill_items(self, report: GateReport) -> None:
        table = self.query_one("#wi-items", DataTable)
        keep = table.cursor_row
        table.clear()
        for g in report.items:
            written = g.written_status or ("(no status)" if g.in_sot else "(not here)")
            table.add_row(inert(g.id), inert(written), Text(g.could_be,
                                                            COULD_BE_STYLE[g.could_be]),
                          inert(evidence_summary(g)), inert(g.title or ""), key=g.id)
        if report.items:
            table.move_cursor(row=min(keep, len(report.items) - 1))

    def _fill_acceptance(self, report: GateReport) -> None:
        table = self.query_one("#wi-acceptance", DataTable)
        table.clear()
        title = self.query_one("#wi-acceptance-title", Static)
        if not report.acceptance:
            title.update(Text("No item has acceptance lines that a run can prove.",
                              style="bright_black"))
            return
        source = (f"latest real run {report.latest_real_run}" if report.latest_real_run
                  else "no real run yet")
        title.update(inert(f"Acceptance · {source}", "bold"))
        for item_id, rows in report.acceptance.items():
            for index, row in enumerate(rows):
                verdict = Text(row.verdict or "-", VERDICT_STYLE.get(row.verdict or "", ""))
                table.add_row(verdict, inert(row.criterion or "-"), inert(row.text),
                              key=f"{item_id}#{index}")

    @on(DataTable.RowHighlighted)
    def _detail(self, event: DataTable.RowHighlighted) -> None:
        if self.report is None or event.row_key.value is None:
            return
        key = event.row_key.value
        detail = Text()
        if event.data_table.id == "wi-items":
            gate = next(g for g in self.report.items if g.id == key)
            if gate.rule_source:
                detail.append(f"needs {', '.join(gate.requires)} ({_safe(gate.rule_source)})\n")
            for note in gate.notes:
                detail.append(_safe(note) + "\n", style="bright_black")
        else:
            item_id, index = key.rsplit("#", 1)
            row = self.report.acceptance[item_id][int(index)]
            detail.append(_safe(row.detail))
            for problem in self.report.latest_real_problems if row.verdict else []:
                detail.append(f"\nrun problem: {_safe(problem)}", style="red")
        self.query_one("#wi-detail", Static).update(detail)
