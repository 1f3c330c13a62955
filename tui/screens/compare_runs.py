"""Two runs of the same task side by side (Runs: `space` marks two, `=` opens this): status,
failure class, Case, model, tokens, time, each check real vs real, and each run's workspace
diff (a Changes view per run, in tabs).

Both runs are read in a worker through core's readers, as Run detail reads one; every string
from them goes through the terminal-safety filter."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, cast

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Static, TabbedContent, TabPane

from core.evidence.check_cases import check_outcomes
from core.evidence.models import Manifest, Report
from core.evidence.rundir import CHECK_RESULTS, RunPaths
from core.evidence.runs import Unreadable, load_manifest, load_report
from tui.failures import ReportsWorkerErrors
from tui.run_record import outcome_cell, tokens
from tui.terminal_text import check_name, inert
from tui.widgets.changes import ChangesView
from tui.widgets.footer import SteadyFooter
from tui.widgets.runs_table import STATUS_STYLE
from tui.widgets.timeline import seconds
from tui.widgets.where_bar import WhereBar

if TYPE_CHECKING:
    from tui.app import Dashboard


OUTCOME_WIDTH = len("not run")
"""The widest outcome a check shows (outcome_cell): passed, failed, error, skipped, not run."""


class RunSide:
    """One run as the comparison reads it: manifest, report, checks, or why not."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.manifest: Manifest | None = None
        self.report: Report | None = None
        self.problems: list[str] = []
        for name, load in (("manifest", load_manifest), ("report", load_report)):
            try:
                setattr(self, name, load(run_dir))
            except Unreadable as exc:
                self.problems.append(str(exc))
        self.checks = check_outcomes(RunPaths(run_dir).checks / CHECK_RESULTS)

    @property
    def task(self) -> str | None:
        return self.manifest.task if self.manifest else None


def same_task_problem(a: Path, b: Path) -> str | None:
    """Why two runs cannot be compared (different tasks, unreadable), in one line; None when
    they can."""
    tasks = []
    for run in (a, b):
        try:
            manifest = load_manifest(run)
        except Unreadable as exc:
            return f"{run.name}: {exc}"
        if manifest is None:
            return f"{run.name}: no manifest.json yet, so no task to compare by"
        tasks.append(manifest.task)
    if tasks[0] != tasks[1]:
        return (f"these runs are of different tasks ({tasks[0]} and {tasks[1]}): mark two "
                "runs of the same task to compare them")
    return None


def side_by_side(a: RunSide, b: RunSide) -> Table:
    """The fields of both runs, a row each; rows that differ marked with `≠`."""
    table = Table(expand=True, box=None, padding=(0, 1), header_style="bold underline")
    table.add_column("", width=1)
    table.add_column("", style="bold", no_wrap=True)
    table.add_column("A", ratio=1)
    table.add_column("B", ratio=1)

    def facts(side: RunSide) -> dict[str, str]:
        r, m = side.report, side.manifest
        case = (m.case_bin_name or m.engine) if m else None
        relay = r.relay if r else None
        return {
            "status": r.status if r else ("running or interrupted" if m else "unreadable"),
            "failure class": (r.failure_class or "—") if r else "—",
            "Case": f"{case} ({m.engine})" if m and case else "—",
            "model": f"{r.case_model_provider} / {r.case_model}" if r else "—",
            "answered by": ", ".join(r.relay.models_seen) or "none" if r else "—",
            "tokens in / out": (f"{tokens(relay.prompt_tokens)} / "
                                f"{tokens(relay.completion_tokens)}") if relay else "—",
            "requests": f"{relay.requests} ({relay.refused} refused)" if relay else "—",
            "time": seconds(r.durations.total_s) if r else "—",
            "checks": (f"{r.checks.passed}/{r.checks.total} passed" if r.checks.ran
                       else f"not run ({r.checks.detail})") if r else "—",
            "baseline": r.baseline.status if r else "—",
        }

    fa, fb = facts(a), facts(b)
    for label in fa:
        differ = fa[label] != fb[label]
        table.add_row(Text("≠" if differ else "", style="yellow"), label,
                      inert(fa[label], STATUS_STYLE.get(fa[label], "")),
                      inert(fb[label], STATUS_STYLE.get(fb[label], "")))
    return table


def checks_table(a: RunSide, b: RunSide) -> Table:
    """Each hidden check, A's outcome beside B's; the ones that differ first. A name too
    long for the terminal is cut with an ellipsis (check_name); the outcome columns keep
    their width, so A and B stay in line on every row at 80 columns too."""
    table = Table(title="Each check, real vs real", box=None, padding=(0, 1),
                  header_style="bold underline", title_style="bold")
    table.add_column("", width=1)
    table.add_column("check")  # the one column Rich narrows to fit
    table.add_column("A", width=OUTCOME_WIDTH, no_wrap=True)
    table.add_column("B", width=OUTCOME_WIDTH, no_wrap=True)
    names = list(dict.fromkeys([*a.checks, *b.checks]))
    names.sort(key=lambda n: a.checks.get(n) == b.checks.get(n))  # stable: differing first
    for name in names:
        ra, rb = a.checks.get(name), b.checks.get(name)
        table.add_row(Text("≠" if ra != rb else "", style="yellow"), check_name(name),
                      outcome_cell(ra), outcome_cell(rb))
    if not names:
        table.add_row("", Text("neither run has check results", style="dim"), "", "")
    return table


class CompareRunsScreen(ReportsWorkerErrors, Screen[None]):
    """Two runs of one task: the facts and checks side by side, then each one's changes."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back"),
    ]
    DEFAULT_CSS = """
    CompareRunsScreen #compare-title { height: 2; padding: 0 1; background: $boost; }
    CompareRunsScreen #compare-tabs { height: 1fr; }
    CompareRunsScreen #compare-facts { padding: 0 1; }
    """

    def __init__(self, run_a: Path, run_b: Path) -> None:
        super().__init__()
        self.run_a, self.run_b = run_a, run_b
        self.sides: tuple[RunSide, RunSide] | None = None

    def compose(self) -> ComposeResult:
        redact = cast("Dashboard", self.app).redact
        yield WhereBar(self.app.current_mode, detail="Compare runs")
        yield Static(id="compare-title")
        with TabbedContent(id="compare-tabs"):
            with TabPane("Side by side", id="side"), VerticalScroll():
                yield Static("reading…", id="compare-facts")
            with TabPane("A's changes", id="changes-a"):
                yield ChangesView(self.run_a, redact, id="changes-a-view")
            with TabPane("B's changes", id="changes-b"):
                yield ChangesView(self.run_b, redact, id="changes-b-view")
        yield SteadyFooter()

    def on_mount(self) -> None:
        title = Text("Compare  A ", style="bold")
        title.append_text(inert(self.run_a.name))
        title.append("\n         B ", style="bold")
        title.append_text(inert(self.run_b.name))
        self.query_one("#compare-title", Static).update(title)
        self._load()

    @work(exclusive=True, group="compare", exit_on_error=False)
    async def _load(self) -> None:
        a, b = await asyncio.gather(asyncio.to_thread(RunSide, self.run_a),
                                    asyncio.to_thread(RunSide, self.run_b))
        self.sides = (a, b)
        problems = [inert(f"! {side.run_dir.name}: {p}", "red")
                    for side in (a, b) for p in side.problems]
        self.query_one("#compare-facts", Static).update(
            Group(*problems, side_by_side(a, b), Text(""), checks_table(a, b)))

    def action_back(self) -> None:
        self.app.pop_screen()
