"""Jobs: every job under the runs root with its progress, pass rate and state, live; the
selected job's matrix of trials, `enter` on a cell opening its run; `r` resumes a job (its
unfinished, cancelled, interrupted and errored trials), `c` cancels one in flight.

Jobs are read only through core's API (core.jobs.summary); a resume is a `cto-harness job
--resume` child process in its own session, as runs started here are."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, cast

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import DataTable, Static

from core.evidence.liveness import cancel_harness
from core.jobs.model import Job, JobHead
from core.jobs.summary import (
    JobError,
    JobRow,
    class_counts,
    job_row,
    job_signature,
    list_job_dirs,
    live_state,
    read_job,
    read_job_head,
    resume_argv,
)
from tui.failures import ReportsWorkerErrors
from tui.screens.dialogs import ConfirmScreen
from tui.screens.switched import SwitchedTo
from tui.terminal_text import inert
from tui.widgets.footer import SteadyFooter
from tui.widgets.job_views import JobMatrix, JobsTable
from tui.widgets.where_bar import WhereBar

if TYPE_CHECKING:
    from tui.app import Dashboard

POLL_S = 1.0
FIRST_ROWS = 20
"""Jobs read before the table first shows: a screenful, so the first frame comes at once."""


class JobsScreen(SwitchedTo, ReportsWorkerErrors, Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("r", "resume_job", "Resume job"),
        Binding("c", "cancel_job", "Cancel job"),
        Binding("space", "mark_job", "Mark"),
        Binding("equals_sign", "compare_jobs", "Compare", key_display="="),
    ]
    DEFAULT_CSS = """
    #jobs-status, #matrix-title { height: 1; padding: 0 1; background: $boost;
                                  color: $text-muted; text-wrap: nowrap;
                                  text-overflow: ellipsis; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.jobs: dict[str, JobHead | None] = {}
        """Each job's head (config, summary, state): the list never reads trials."""
        self.paths: dict[str, Path] = {}
        self.signatures: dict[str, tuple[int, int] | None] = {}
        self.rows: dict[str, JobRow] = {}
        self.problem: str | None = None
        self.marked: list[str] = []
        """Job ids marked with `space` (A, then B) for `=` to compare."""

    def compose(self) -> ComposeResult:
        yield WhereBar("jobs")
        yield JobsTable(id="jobs")
        yield Static(id="matrix-title")
        yield JobMatrix(id="matrix")
        yield Static(id="jobs-status")
        yield SteadyFooter()

    def on_mount(self) -> None:
        self.query_one(JobsTable).focus()
        self._poll()
        self.set_interval(POLL_S, self._poll)

    @property
    def runs_root(self) -> Path:
        return cast("Dashboard", self.app).runs_root

    # -- reading -----------------------------------------------------------------------
    @work(thread=True, exclusive=True, group="jobs-poll", exit_on_error=False)
    def _poll(self) -> None:
        """List the job folders; read again only the job.json files that changed. The
        first screenful is shown before the rest is read."""
        try:
            dirs = list_job_dirs(self.runs_root)
            problem = None
        except JobError as exc:
            dirs, problem = [], str(exc)
        fresh: dict[str, tuple[Path, JobHead | None, JobRow, tuple[int, int] | None]] = {}
        for n, job_dir in enumerate(dirs, start=1):
            fresh[job_dir.name] = self._look(job_dir)
            if n == FIRST_ROWS and len(dirs) > n:
                self.app.call_from_thread(self._apply, dict(fresh), problem)
        self.app.call_from_thread(self._apply, fresh, problem)

    def _look(self, job_dir: Path) -> tuple[Path, JobHead | None, JobRow,
                                            tuple[int, int] | None]:
        sig = job_signature(job_dir)
        known = self.jobs.get(job_dir.name)
        if sig == self.signatures.get(job_dir.name) and job_dir.name in self.rows:
            # unchanged on disk; a running job's harness may still have died
            row = self.rows[job_dir.name]
            if known is not None and row.state == "running" and live_state(known) != "running":
                row = job_row(job_dir, known)
            return job_dir, known, row, sig
        try:
            job: JobHead | None = read_job_head(job_dir)
        except JobError:
            job = None
        return job_dir, job, job_row(job_dir, job), sig

    def _apply(self, fresh: dict, problem: str | None) -> None:
        changed = [row for name, (_, _, row, _) in fresh.items() if self.rows.get(name) != row]
        for name, (path, job, row, sig) in fresh.items():
            self.paths[name], self.jobs[name], self.rows[name] = path, job, row
            self.signatures[name] = sig
        table = self.query_one(JobsTable)
        table.show(changed, list(fresh))
        self.problem = problem
        selected = table.selected_job_id()
        shown = self.query_one(JobMatrix).job
        if selected and (shown is None or shown.job_id != selected
                         or self.rows[selected] in changed):
            self._load_matrix(selected)
        self._status()

    def _status(self) -> None:
        running = sum(r.state == "running" for r in self.rows.values())
        count = len(self.rows)
        text = (f"{count:,} job{'' if count == 1 else 's'} · {running} running · under "
                f"{self.app.sub_title} · enter on a trial opens its run")
        if not self.rows:
            text = "no jobs yet: cto-harness job --demo starts one · " + text
        if self.marked:
            text += " · marked " + ", ".join(f"{'AB'[i]} {job_id}"
                                             for i, job_id in enumerate(self.marked))
            text += " (= compares)" if len(self.marked) == 2 else " (space marks another)"
        if self.problem:
            text += f" · {self.problem}"
        self.query_one("#jobs-status", Static).update(inert(text))

    @work(thread=True, exclusive=True, group="jobs-matrix", exit_on_error=False)
    def _load_matrix(self, job_id: str) -> None:
        """The whole job.json (its trials) of the one job the matrix shows."""
        path = self.paths.get(job_id)
        try:
            job = read_job(path) if path is not None else None
            problem = None
        except JobError as exc:
            job, problem = None, str(exc)
        self.app.call_from_thread(self._show_matrix, job, problem)

    def _show_matrix(self, job: Job | None, problem: str | None) -> None:
        self.query_one(JobMatrix).show(job, job is not None and live_state(job) == "running")
        title = self.query_one("#matrix-title", Static)
        if job is None:
            title.update(inert(problem or ""))
            return
        s = job.summary
        title.update(inert(f"{job.job_id}: {len(job.config.tasks)} task(s) × "
                           f"{job.config.attempts} attempt(s), concurrency "
                           f"{job.config.concurrency} · blocked {s.blocked} · errors {s.errors}"
                           f" · unproven {s.unproven} · tripped {s.tripped} · leaked {s.leaked}"
                           + (f" · not passed: {classes}"
                              if (classes := class_counts(s.failure_classes)) else "")))

    @on(DataTable.RowHighlighted, "#jobs")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._load_matrix(str(event.row_key.value))

    @on(DataTable.RowSelected, "#jobs")
    def _into_matrix(self) -> None:
        self.query_one(JobMatrix).focus()

    @on(DataTable.CellSelected, "#matrix")
    def _open_trial(self) -> None:
        trial = self.query_one(JobMatrix).trial_at_cursor()
        if trial is None or trial.run_id is None:
            self.notify("this trial has no run yet", severity="warning")
            return
        from tui.screens.detail import RunDetailScreen

        self.app.push_screen(RunDetailScreen(self.runs_root / trial.run_id))

    # -- actions ---------------------------------------------------------------------------
    def _selected(self) -> tuple[Path, JobHead] | None:
        job_id = self.query_one(JobsTable).selected_job_id()
        job = self.jobs.get(job_id or "")
        if job_id is None or job is None:
            self.notify("no readable job selected", severity="warning")
            return None
        return self.paths[job_id], job

    def action_mark_job(self) -> None:
        """Mark the selected job (A, then B; a third mark drops the oldest), or unmark it."""
        job_id = self.query_one(JobsTable).selected_job_id()
        if job_id is None:
            return
        if job_id in self.marked:
            self.marked.remove(job_id)
        else:
            self.marked = [*self.marked, job_id][-2:]
        self._status()

    def action_compare_jobs(self) -> None:
        marked = [self.paths[j] for j in self.marked if j in self.paths]
        if len(marked) != 2:
            self.notify("mark two jobs with space, then press =", severity="warning")
            return
        from tui.screens.compare_jobs import CompareJobsScreen

        self.app.push_screen(CompareJobsScreen(*marked))

    def action_resume_job(self) -> None:
        picked = self._selected()
        if picked is None:
            return
        job_dir, job = picked
        if live_state(job) == "running":
            self.notify(f"{job.job_id} is running; cancel it first (c)", severity="warning")
            return
        question = (f"Resume {job.job_id}? Its trials with no report, cancelled, interrupted or "
                    "errored run again as new runs (a failed trial is a result and stays).")

        def answered(yes: bool | None) -> None:
            if yes:
                self._resume(job_dir)

        self.app.push_screen(ConfirmScreen("Resume job", question), answered)

    @work(thread=True, group="job-resume", exit_on_error=False)
    def _resume(self, job_dir: Path) -> None:
        with tempfile.TemporaryFile() as output:
            proc = subprocess.Popen(resume_argv(job_dir, self.runs_root), env=dict(os.environ),
                                    stdin=subprocess.DEVNULL, stdout=output,
                                    stderr=subprocess.STDOUT, start_new_session=True)
            self.app.call_from_thread(self.notify, f"resuming {job_dir.name} (pid {proc.pid})")
            code = proc.wait()
            output.seek(0)
            lines = output.read().decode("utf-8", "replace").strip().splitlines()
        if code not in (0, 1):
            last = cast("Dashboard", self.app).redact(lines[-1] if lines else "")
            self.app.call_from_thread(self.notify, f"resume of {job_dir.name} exited {code}: "
                                      f"{last}", severity="error", timeout=10)

    def action_cancel_job(self) -> None:
        picked = self._selected()
        if picked is None:
            return
        _, job = picked
        if live_state(job) != "running":
            self.notify(f"{job.job_id} is not running", severity="warning")
            return

        def answered(yes: bool | None) -> None:
            if yes and cancel_harness(job):
                self.notify(f"cancelling {job.job_id}: its trials write cancelled reports")
            elif yes:
                self.notify(f"{job.job_id}: its harness is already gone", severity="warning")

        self.app.push_screen(ConfirmScreen(
            "Cancel job", f"Cancel {job.job_id}? Its harness gets SIGINT; each trial in flight "
            "writes a cancelled report, and the job can be resumed (r)."), answered)
