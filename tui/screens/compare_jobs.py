"""Two jobs compared (Jobs: `space` marks two, `=` opens this), as `cto-harness compare`
computes it (core/jobs/compare.py): the verdict, pass@1 of each over the paired tasks, the
difference B − A with its 95% interval, McNemar's exact test for one attempt per task, a row
per task with what flipped, and what was left out."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import ClassVar

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Static

from core.jobs.compare import Comparison, compare_job_dirs
from core.jobs.summary import JobError
from tui.failures import ReportsWorkerErrors
from tui.terminal_text import inert
from tui.widgets.footer import SteadyFooter
from tui.widgets.keys import SCROLL_KEYS
from tui.widgets.where_bar import WhereBar


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{x:.0%}"


def _points(x: float | None) -> str:
    return "—" if x is None else f"{x * 100:+.1f}"


def comparison_view(r: Comparison) -> Group:
    """The comparison as the screen shows it: verdict first, then the figures, the tasks."""
    better = r.ci_low is not None and (r.ci_low > 0 or (r.ci_high or 0) < 0)
    parts: list[Text | Table] = [inert(r.verdict, "bold green" if better else "bold yellow")]
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold", no_wrap=True)
    head.add_column()
    head.add_row("A", inert(r.job_a))
    head.add_row("B", inert(r.job_b))
    head.add_row("pass@1", f"A {_pct(r.a_pass_at_1)} · B {_pct(r.b_pass_at_1)} over "
                           f"{len(r.tasks)} paired task(s)")
    head.add_row("B − A", f"{_points(r.difference)} points, {r.confidence:.0%} CI "
                          f"[{_points(r.ci_low)}, {_points(r.ci_high)}] (paired bootstrap "
                          f"over tasks, {r.resamples:,} resamples, seed {r.seed})")
    if r.mcnemar_p is not None:
        head.add_row("McNemar", f"exact p = {r.mcnemar_p:.4g} ({r.a_only_passed} passed by A "
                                f"only, {r.b_only_passed} by B only)")
    else:
        head.add_row("McNemar", Text("not applicable: some task had more than one attempt",
                                     style="dim"))
    if r.left_out:
        head.add_row("left out", inert(
            f"{r.left_out} task(s): " + "; ".join(
                f"{what}: {', '.join(names)}" for names, what in
                ((r.only_in_a, "only in A"), (r.only_in_b, "only in B"),
                 (r.unscored, "unscored in one")) if names)))
    parts += [Text(""), head, Text("")]
    tasks = Table(box=None, padding=(0, 2), header_style="bold underline")
    tasks.add_column("", width=1)
    tasks.add_column("task")
    tasks.add_column("A pass@1", justify="right")
    tasks.add_column("B pass@1", justify="right")
    tasks.add_column("B − A", justify="right")
    for p in r.tasks:
        sign, style = (("▲", "green") if p.difference > 0 else ("▼", "red")
                       if p.difference < 0 else ("", ""))
        tasks.add_row(Text(sign, style=style), inert(p.task), _pct(p.a_pass_at_1),
                      _pct(p.b_pass_at_1), Text(_points(p.difference), style=style))
    parts.append(tasks)
    return Group(*parts)


class CompareJobsScreen(ReportsWorkerErrors, Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "back", "Back")]
    DEFAULT_CSS = """
    CompareJobsScreen #compare-jobs { padding: 0 1; }
    """

    def __init__(self, job_a: Path, job_b: Path) -> None:
        super().__init__()
        self.job_a, self.job_b = job_a, job_b
        self.result: Comparison | None = None

    def compose(self) -> ComposeResult:
        yield WhereBar(self.app.current_mode, detail="Compare jobs")
        with _Scroll():
            yield Static("comparing…", id="compare-jobs")
        yield SteadyFooter()

    def on_mount(self) -> None:
        self.query_one(_Scroll).focus()
        self._load()

    @work(exclusive=True, group="compare-jobs", exit_on_error=False)
    async def _load(self) -> None:
        view = self.query_one("#compare-jobs", Static)
        try:
            self.result = await asyncio.to_thread(compare_job_dirs, self.job_a, self.job_b)
        except JobError as exc:
            view.update(inert(str(exc), "red"))
            return
        view.update(comparison_view(self.result))

    def action_back(self) -> None:
        self.app.pop_screen()


class _Scroll(VerticalScroll):
    BINDINGS: ClassVar[list[BindingType]] = SCROLL_KEYS
