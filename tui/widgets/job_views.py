"""The Jobs screen's two tables: every job with a progress bar, pass rate and state; and one
job's matrix, a row per task and a coloured cell per attempt."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import DataTable

from core.jobs.model import Job, Trial
from core.jobs.summary import JobRow, class_counts
from tui.terminal_text import inert

BAR = 16
JOB_WIDTHS = {"job": 40, "state": 17, "progress": BAR + 10, "pass@1": 7, "pass@k": 10,
              "passed": 8, "note": 60}
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


def progress_bar(done: int, total: int) -> Text:
    filled = round(BAR * done / total) if total else 0
    bar = Text("█" * filled, style="green")
    bar.append("░" * (BAR - filled), style="bright_black")
    bar.append(f" {done}/{total}")
    return bar


def rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def job_cells(row: JobRow) -> tuple[str | Text, ...]:
    state = inert(row.state, STATE_STYLE.get(row.state, ""))
    if row.demo:
        state.append(" demo", style="black on yellow")
    return (inert(row.job_id), state, progress_bar(row.done, row.trials), rate(row.pass_at_1),
            f"{rate(row.pass_at_k)} k={row.k}", f"{row.passes}/{row.scored}",
            inert(row.problem or class_counts(row.failure_classes), "bright_black"))


class JobsTable(DataTable[str | Text]):
    DEFAULT_CSS = """
    JobsTable { height: 2fr; }
    """

    def on_mount(self) -> None:
        self.cursor_type = "row"
        self.zebra_stripes = True
        for name, width in JOB_WIDTHS.items():
            self.add_column(name, key=name, width=width)

    def show(self, rows: list[JobRow], order: list[str]) -> None:
        """Update changed rows in place; when a job is new, lay the table out again in
        `order` (newest first), keeping the cursor on its job."""
        if any(row.job_id not in self.rows for row in rows):
            selected = self.selected_job_id()
            known = {str(key.value): [self.get_cell(key, c) for c in JOB_WIDTHS]
                     for key in self.rows}
            known.update({row.job_id: list(job_cells(row)) for row in rows})
            self.clear()
            for job_id in order:
                if job_id in known:
                    self.add_row(*known[job_id], key=job_id)
            if selected is not None and selected in self.rows:
                self.move_cursor(row=self.get_row_index(selected), animate=False)
            return
        for row in rows:
            for key, value in zip(JOB_WIDTHS, job_cells(row), strict=True):
                self.update_cell(row.job_id, key, value)

    def selected_job_id(self) -> str | None:
        if not self.row_count:
            return None
        return str(self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value)


def trial_cell(trial: Trial, job_alive: bool) -> Text:
    """A running trial of a job whose harness is gone is shown as what it is: cut short."""
    status = "interrupted" if trial.status == "running" and not job_alive else trial.status
    word, style = TRIAL_LOOK.get(status, (status, ""))
    return inert(word, style)


class JobMatrix(DataTable[str | Text]):
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
