"""Runs: every run under the runs root, newest first, filterable, loaded lazily so the
first rows show at once however many runs there are."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, cast

from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import DataTable, Input, Static
from textual.worker import get_current_worker

from core.evidence.runs import RunSummary, summarize
from tui.failures import ReportsWorkerErrors
from tui.messages import RowsSummarized
from tui.screens.switched import SwitchedTo
from tui.terminal_text import inert, safe
from tui.widgets.footer import SteadyFooter
from tui.widgets.runs_table import RunsTable, matches
from tui.widgets.where_bar import WhereBar

if TYPE_CHECKING:
    from tui.app import Dashboard

FIRST_ROWS = 60
CHUNK_ROWS = 500
SORTS = ("time", "status", "task", "duration", "checks")
"""What `s` cycles through (or a click on the column's header); time is newest first."""
UNSETTLED = ("running", "unreadable")
"""Rows re-read every second: a run still going, or a folder caught before its manifest."""


class RunsScreen(SwitchedTo, ReportsWorkerErrors, Screen[None]):
    CSS_PATH = "runs.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("slash", "filter", "Filter"),
        Binding("escape", "clear_filter", "Clear filter", show=False),
        Binding("s", "sort", "Sort"),
        Binding("space", "mark", "Mark"),
        Binding("equals_sign", "compare", "Compare", key_display="="),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.summaries: dict[str, RunSummary] = {}
        self.order: list[str] = []
        self.paths: dict[str, Path] = {}
        self._last_row: str | None = None
        self.sort = SORTS[0]

    def compose(self) -> ComposeResult:
        yield WhereBar("runs")
        yield Input(placeholder="filter: task, status, engine, model, run id…  (/ to focus)",
                    id="filter")
        yield RunsTable(id="runs")
        yield Static(id="runs-status")
        yield SteadyFooter()

    def on_mount(self) -> None:
        self.watch(self.app, "run_dirs", self._listed)
        self.watch(self.app, "root_problem", lambda _: self._count())
        self.set_interval(1.0, self._refresh_unsettled)
        self.query_one(RunsTable).focus()

    def selected_run(self) -> Path | None:
        run_id = self.query_one(RunsTable).selected_run_id()
        return self.paths.get(run_id) if run_id else None

    # -- loading ---------------------------------------------------------------------
    def _listed(self, dirs: tuple[Path, ...]) -> None:
        known = set(self.paths)
        self.order = [d.name for d in dirs]
        self.paths = {d.name: d for d in dirs}
        fresh = [d for d in dirs if d.name not in known]
        gone = known - set(self.paths)
        for run_id in gone:
            self.summaries.pop(run_id, None)
        if gone:
            self._rebuild()
        if fresh:
            self._summarize(fresh)
        self._count()

    @work(thread=True, group="summaries", exit_on_error=False)
    def _summarize(self, dirs: list[Path]) -> None:
        """The first screenful at once, then the rest in chunks, newest first."""
        worker = get_current_worker()
        first = dirs[:FIRST_ROWS]
        self.post_message(RowsSummarized([summarize(d) for d in first], first=True))
        rest = dirs[FIRST_ROWS:]
        for start in range(0, len(rest), CHUNK_ROWS):
            if worker.is_cancelled:
                return
            chunk = rest[start:start + CHUNK_ROWS]
            self.post_message(RowsSummarized([summarize(d) for d in chunk]))

    @on(RowsSummarized)
    def _rows(self, message: RowsSummarized) -> None:
        rows = [r for r in message.rows if r.run_id in self.paths]
        for row in rows:
            self.summaries[row.run_id] = row
        position = {run_id: i for i, run_id in enumerate(self.order)}
        table = self.query_one(RunsTable)
        last = position.get(self._last_row or "", -1)
        if (rows and not self._filter_text() and self.sort == SORTS[0]
                and min(position[r.run_id] for r in rows) > last):
            table.add_summaries(rows)  # all older than what is shown: append, no redraw
            self._last_row = rows[-1].run_id
        else:
            self._rebuild()
        self._count()

    def _refresh_unsettled(self) -> None:
        unsettled = [self.paths[r.run_id] for r in self.summaries.values()
                     if r.status in UNSETTLED and r.run_id in self.paths]
        if unsettled:
            self._resummarize(unsettled)

    @work(group="refresh", exclusive=True, exit_on_error=False)
    async def _resummarize(self, dirs: list[Path]) -> None:
        rows = await asyncio.to_thread(lambda: [summarize(d) for d in dirs])
        table = self.query_one(RunsTable)
        for row in rows:
            old = self.summaries.get(row.run_id)
            if old is None or old == row:
                continue
            self.summaries[row.run_id] = row
            if row.run_id in table.rows:
                table.update_summary(row)
        self._count()

    # -- filter ------------------------------------------------------------------------
    def _filter_text(self) -> str:
        return self.query_one("#filter", Input).value.strip().lower()

    def _rebuild(self) -> None:
        table = self.query_one(RunsTable)
        selected = table.selected_run_id()
        needle = self._filter_text()
        rows = [self.summaries[i] for i in self.order if i in self.summaries]
        if needle:
            rows = [r for r in rows if matches(r, needle)]
        rows = sort_rows(rows, self.sort)
        table.clear()
        table.add_summaries(rows)
        self._last_row = rows[-1].run_id if rows else None
        if selected is not None and selected in table.rows:
            table.move_cursor(row=table.get_row_index(selected), animate=False)
        self._count()

    def on_resize(self, event: events.Resize) -> None:
        if self.query_one(RunsTable).fit(event.size.width):
            self._rebuild()

    def action_sort(self) -> None:
        self.sort = SORTS[(SORTS.index(self.sort) + 1) % len(SORTS)]
        self._rebuild()

    @on(DataTable.HeaderSelected)
    def _sort_by_header(self, event: DataTable.HeaderSelected) -> None:
        key = str(event.column_key.value)
        if key in SORTS:
            self.sort = key
            self._rebuild()

    @on(Input.Changed, "#filter")
    def _filtered(self) -> None:
        self._rebuild()

    @on(Input.Submitted, "#filter")
    def _filter_done(self) -> None:
        self.query_one(RunsTable).focus()

    def action_filter(self) -> None:
        self.query_one("#filter", Input).focus()

    def action_clear_filter(self) -> None:
        box = self.query_one("#filter", Input)
        if box.value:
            box.value = ""
        self.query_one(RunsTable).focus()

    def _count(self) -> None:
        table = self.query_one(RunsTable)
        loaded, total = len(self.summaries), len(self.order)
        order = "newest first" if self.sort == SORTS[0] else f"by {self.sort}"
        text = (f"{table.row_count:,} shown, {order} (s sorts) · {total:,} runs under "
                f"{self.app.sub_title}")
        if loaded < total:
            text += f" · reading {loaded:,}/{total:,}…"
        problem = cast("Dashboard", self.app).root_problem
        status = inert(text)
        if problem is not None:
            status.append(safe(f" · {problem}"), style="bold red")
        repository = cast("Dashboard", self.app).root_repository
        if repository is not None:
            status.append(safe(f" · the runs root is inside the git repository {repository}: "
                               "runs are written there; set CTO_HARNESS_RUNS_ROOT (or "
                               "--runs-root) to a folder outside it"), style="bold yellow")
        self.query_one("#runs-status", Static).update(status)

    # -- compare two -------------------------------------------------------------------
    def action_mark(self) -> None:
        """Mark the selected run (A, then B; a third mark drops the oldest), or unmark it."""
        table = self.query_one(RunsTable)
        run_id = table.selected_run_id()
        if run_id is None:
            return
        touched = {run_id, *table.marked}
        if run_id in table.marked:
            table.marked.remove(run_id)
        else:
            table.marked = [*table.marked, run_id][-2:]
        for marked in touched:
            if marked in self.summaries and marked in table.rows:
                table.update_summary(self.summaries[marked])

    def action_compare(self) -> None:
        from tui.screens.compare_runs import CompareRunsScreen, same_task_problem

        marked = [self.paths[m] for m in self.query_one(RunsTable).marked if m in self.paths]
        if len(marked) != 2:
            self.notify("mark two runs of the same task with space, then press =",
                        severity="warning")
            return
        problem = same_task_problem(*marked)
        if problem is not None:
            self.notify(safe(problem), severity="warning", markup=False)
            return
        self.app.push_screen(CompareRunsScreen(*marked))

    # -- drill in ----------------------------------------------------------------------
    @on(DataTable.RowSelected)
    def _open(self, event: DataTable.RowSelected) -> None:
        path = self.paths.get(str(event.row_key.value))
        if path is not None:
            from tui.screens.detail import RunDetailScreen

            self.app.push_screen(RunDetailScreen(path))


def sort_rows(rows: list[RunSummary], by: str) -> list[RunSummary]:
    """Rows in the order asked for; time keeps the listing's (newest first), durations
    longest first, checks by number (3/5 before 10/12), the rest A to Z; ties keep the
    listing's order."""
    if by == "time":
        return rows
    if by == "duration":
        return sorted(rows, key=lambda r: -(r.duration_s or 0.0))
    if by == "checks":
        return sorted(rows, key=lambda r: checks_key(r.checks))
    return sorted(rows, key=lambda r: (getattr(r, by) or "").lower())


def checks_key(checks: str | None) -> tuple[int, int]:
    """`passed/total` as numbers, so "10/12" sorts after "3/5" (as text it came first); a run
    without checks first, as the empty text did."""
    passed, _, total = (checks or "").partition("/")
    try:
        return int(passed), int(total)
    except ValueError:
        return -1, -1
