"""The Jobs screen's two tables: every job with a progress bar, pass rate and state; and one
job's matrix, a row per task and a coloured cell per attempt."""

from __future__ import annotations

import re

from rich.text import Text

from core.jobs.model import Job, Trial
from core.jobs.summary import JobRow, class_counts
from tui.terminal_text import inert
from tui.widgets.keys import KeyedTable
from tui.widgets.runs_table import cut

JOB_COLUMNS = ("job", "state", "progress", "pass@1", "pass@k", "passed", "note")
WIDE = 120
"""From this many columns the list shows whole job names, states and a long bar."""
STATE_STYLE = {"running": "bold cyan", "finished": "green", "cancelled": "yellow",
               "interrupted": "magenta", "blocked": "yellow", "unreadable": "bold magenta"}
TRIAL_LOOK = {
    "passed": ("✓ pass", "bold green"), "failed": ("✗ fail", "bold red"),
    "timed_out": ("⧗ time", "red"), "running": ("▶ run", "bold cyan"),
    "pending": ("· wait", "bright_black"), "blocked": ("■ block", "yellow"),
    "error": ("! error", "bold red"), "cancelled": ("⊘ canc", "yellow"),
    "interrupted": ("? intr", "magenta"),
}
"""Each status a glyph and a word (never colour alone) and a colour."""


def job_widths(columns: int) -> tuple[dict[str, int], int]:
    """The list's column widths, and its progress bar's, for a terminal `columns` wide:
    every column but the note fits in 80 (the count, pass@1, pass@k and passed are what a
    job is watched for); the note takes what is left."""
    wide = columns >= WIDE
    bar = 16 if wide else 3
    widths = {"job": 30 if wide else 16, "state": 16, "progress": bar + 9,
              "pass@1": 6, "pass@k": 8, "passed": 6}
    room = columns - sum(widths.values()) - 2 * len(JOB_COLUMNS) - 2  # padding, scrollbar
    if room >= 8:  # else no note at all, rather than a column of single letters
        widths["note"] = min(60, room)
    return widths, bar


STAMPED = re.compile(r"\d{4}(\d\d)(\d\d)T(\d\d)(\d\d)\d\dZ-(.+)")
"""A job id: `<UTCSTAMP>-<name>` (core/jobs/runner.py's new_job): month, day, hour, minute,
name."""


def job_label(job_id: str, width: int) -> Text:
    """The job's id as its column shows it: the name the user gave it (`--name`: demo,
    naive, a suite's) first, where it survives, then the 16-character stamp shortened to
    its time, dim at the right edge (`naive      03:01`; `06-01 03:01` from 24 columns).
    The stamp only orders the jobs, which the list already does newest first, and tells
    apart jobs of one name; cut to its first 15 characters at 80 columns it hid the name.
    A long name is cut with … before the time goes. Every row alike (the whole id where it
    fits and not elsewhere read as two formats); the whole id is in the matrix's title
    below for the selected job, and a folder not named so is shown as it is."""
    found = STAMPED.fullmatch(job_id)
    if found is None:
        return cut(inert(job_id), width)
    month, day, hour, minute, shown = found.groups()
    when = f" {month}-{day} {hour}:{minute}" if width >= 24 else f" {hour}:{minute}"
    name = inert(shown)
    if width < len(when) + 4:  # no room for both: the name alone
        return cut(name, width)
    name = cut(name, width - len(when))
    name.pad_right(width - len(when) - name.cell_len)
    name.append(when, style="bright_black")
    return name


def progress_bar(done: int, total: int, width: int) -> Text:
    filled = round(width * done / total) if total else 0
    bar = Text("█" * filled, style="green")
    bar.append("░" * (width - filled), style="bright_black")
    bar.append(f" {done}/{total}")
    return bar


def rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def job_cells(row: JobRow, bar: int, job: int) -> tuple[str | Text, ...]:
    """The row's cells, the job's label fitted to its column `job` wide (job_label)."""
    state = inert(row.state, STATE_STYLE.get(row.state, ""))
    if row.demo:
        state.append(" demo", style="black on yellow")
    return (job_label(row.job_id, job), state, progress_bar(row.done, row.trials, bar),
            rate(row.pass_at_1), f"{rate(row.pass_at_k)} k={row.k}", f"{row.passes}/{row.scored}",
            inert(row.problem or class_counts(row.failure_classes), "bright_black"))


def as_text(cell: str | Text) -> Text:
    return cell if isinstance(cell, Text) else Text(cell)


class JobsTable(KeyedTable):
    DEFAULT_CSS = """
    JobsTable { height: 2fr; }
    """

    def on_mount(self) -> None:
        self.cursor_type = "row"
        self.zebra_stripes = True
        self.shown: dict[str, JobRow] = {}
        self.order: list[str] = []
        self._lay_out(self.app.size.width)

    def on_resize(self) -> None:
        if job_widths(self.app.size.width) != (self.widths, self.bar):
            self._lay_out(self.app.size.width)
            self._refill()

    def _lay_out(self, columns: int) -> None:
        self.widths, self.bar = job_widths(columns)
        self.clear(columns=True)
        for name, width in self.widths.items():
            self.add_column(name, key=name, width=width)

    def show(self, rows: list[JobRow], order: list[str]) -> None:
        """Update changed rows in place; when a job is new, lay the table out again in
        `order` (newest first), keeping the cursor on its job."""
        self.shown.update({row.job_id: row for row in rows})
        self.order = order
        if any(row.job_id not in self.rows for row in rows):
            self._refill()
            return
        for row in rows:
            for key, value in self._cells(row).items():
                self.update_cell(row.job_id, key, value)

    def _cells(self, row: JobRow) -> dict[str, str | Text]:
        """The shown columns' cells, each cut to its column with "…" (never silently)."""
        cells = dict(zip(JOB_COLUMNS, job_cells(row, self.bar, self.widths["job"]),
                         strict=True))
        return {name: cut(as_text(cells[name]), width) for name, width in self.widths.items()}

    def _refill(self) -> None:
        selected = self.selected_job_id()
        self.clear()
        for job_id in self.order:
            if (row := self.shown.get(job_id)) is not None:
                self.add_row(*self._cells(row).values(), key=job_id)
        if selected is not None and selected in self.rows:
            self.move_cursor(row=self.get_row_index(selected), animate=False)

    def selected_job_id(self) -> str | None:
        if not self.row_count:
            return None
        return str(self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value)


def trial_cell(trial: Trial, job_alive: bool) -> Text:
    """A running trial of a job whose harness is gone is shown as what it is: cut short."""
    status = "interrupted" if trial.status == "running" and not job_alive else trial.status
    word, style = TRIAL_LOOK.get(status, (status, ""))
    return inert(word, style)


class JobMatrix(KeyedTable):
    """Tasks × attempts; `enter` on a cell opens that trial's run (the screen does)."""

    DEFAULT_CSS = """
    JobMatrix { height: 3fr; }
    """

    def on_mount(self) -> None:
        self.cursor_type = "cell"
        self.job: Job | None = None

    def show(self, job: Job | None, alive: bool = True) -> None:
        """Redraw for `job` (`alive`: its harness still runs); the cursor stays on the same
        cell when the job is the same."""
        same = job is not None and self.job is not None and job.job_id == self.job.job_id
        cursor = self.cursor_coordinate if same else None
        self.job = job
        self.clear(columns=True)
        if job is None:
            return
        self.add_column("task", key="task", width=28)
        for attempt in range(1, job.config.attempts + 1):
            self.add_column(f"#{attempt}", key=f"a{attempt}", width=8)
        grid = {t.key: t for t in job.trials}
        for task in job.config.tasks:
            row: list[str | Text] = [inert(task.id)]
            for attempt in range(1, job.config.attempts + 1):
                trial = grid.get((task.id, attempt))
                row.append(trial_cell(trial, alive) if trial else Text(""))
            self.add_row(*row, key=task.id)
        if cursor is not None:
            self.move_cursor(row=cursor.row, column=cursor.column, animate=False)
        elif self.row_count:
            self.move_cursor(row=0, column=1, animate=False)

    def trial_at_cursor(self) -> Trial | None:
        if self.job is None or not self.row_count:
            return None
        keys = self.coordinate_to_cell_key(self.cursor_coordinate)
        column = str(keys.column_key.value)
        if not column.startswith("a"):
            return None
        wanted = (str(keys.row_key.value), int(column[1:]))
        return next((t for t in self.job.trials if t.key == wanted), None)
