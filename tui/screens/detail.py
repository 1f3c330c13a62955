"""Run detail: one run, in tabs: its report and evidence checklist, trace, full log,
relay ledger, the real-vs-fake baseline, and its files."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, cast

from rich.console import Group, RenderableType
from rich.json import JSON as RichJSON
from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult, SuspendNotSupported
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import (
    DataTable,
    DirectoryTree,
    Input,
    Static,
    TabbedContent,
    TabPane,
    Tabs,
)

from core.evidence.models import Report
from core.evidence.rundir import RunPaths
from tui.failures import ReportsWorkerErrors
from tui.live_state import ALARMS, clock, plural, since_previous
from tui.run_record import (
    VERDICT,
    RunRecord,
    exit_code,
    outcome_cell,
    read_record,
    retry_table,
    sandbox_line,
    tokens,
)
from tui.terminal_text import check_name, inert, safe
from tui.widgets.changes import ChangesView
from tui.widgets.conversation import ConversationView
from tui.widgets.file_view import FileView, viewer_command
from tui.widgets.footer import SteadyFooter
from tui.widgets.keys import KeyedTable
from tui.widgets.run_files import RunFilesTree
from tui.widgets.runs_table import STATUS_STYLE
from tui.widgets.timeline import seconds
from tui.widgets.where_bar import WhereBar

if TYPE_CHECKING:
    from tui.app import Dashboard

REREAD_S = 2.0


class FillingTabs(TabbedContent):
    """Tabs that call `fill(tab)` as a tab becomes the active one, before it is shown
    (a watcher registered with `watch()` would run later, from the message queue)."""

    def __init__(self, fill: Callable[[str], None], **kw: object) -> None:
        super().__init__(**kw)  # type: ignore[arg-type]
        self._filler = fill

    def _watch_active(self, active: str) -> None:
        if active:
            self._filler(active)
        super()._watch_active(active)


class RunDetailScreen(ReportsWorkerErrors, Screen[None]):
    CSS_PATH = "detail.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back"),
        Binding("slash", "search", "Search log"),
        # `tab` switches screens, so ↓ is how the keyboard gets from the tab bar into a tab
        # (escape goes back); the tables, tree and viewers handle ↓ themselves.
        Binding("down", "into_tab", "Into tab", key_display="↓"),
        Binding("o", "open_file", "Open in $EDITOR"),
    ]

    def __init__(self, run_dir: Path) -> None:
        super().__init__()
        self.run_dir = run_dir
        self.record = RunRecord()
        self._saw_running = False

    def selected_run(self) -> Path | None:
        return self.run_dir

    def compose(self) -> ComposeResult:
        redact = cast("Dashboard", self.app).redact
        yield WhereBar(self.app.current_mode, detail=True)
        yield Static(inert(self.run_dir.name, "bold"), id="detail-title")
        with FillingTabs(self._fill, id="tabs"):
            with TabPane("Summary", id="summary"), VerticalScroll():
                yield Static("reading…", id="report")
                yield Static(id="evidence")
            with TabPane("Trace", id="trace"):
                yield KeyedTable(id="trace-table", cursor_type="row", zebra_stripes=True)
                with VerticalScroll(id="trace-detail-box"):
                    yield Static(id="trace-detail")
            with TabPane("Log", id="log"):
                yield Input(placeholder="search the whole log; Enter, then n/N", id="log-find")
                yield FileView(redact, id="log-view")
            yield TabPane("Conversation", id="conversation")  # filled when first shown
            with TabPane("Relay", id="relay"):
                yield KeyedTable(id="relay-table", cursor_type="row", zebra_stripes=True)
            with TabPane("Baseline", id="baseline"), VerticalScroll():
                yield Static(id="baseline-view")
            yield TabPane("Changes", id="changes")
            yield TabPane("Files", id="files")
        yield SteadyFooter()

    LATER: ClassVar[tuple[str, ...]] = ("conversation", "changes", "files")
    """Tabs whose content is made when the tab is first shown, not with the screen: the
    tree of the run's files, the workspace's diff and the conversation's reader were
    ~40% of the screen's mount (and a diff and a read of the exchanges that most opens of
    Run detail never look at)."""

    def _fill(self, tab: str) -> None:
        """Make the content of `tab` if it is one of LATER and has none yet. Called as
        the tab becomes the active one (FillingTabs), so the content is in the DOM as soon
        as the tab is (a query right after switching finds it)."""
        if tab not in self.LATER:
            return
        pane = self.query_one(TabbedContent).get_pane(tab)
        if pane.children:
            return
        redact = cast("Dashboard", self.app).redact
        if tab == "conversation":
            pane.mount(ConversationView(self.run_dir, redact, id="conversation-view"))
        elif tab == "changes":
            pane.mount(ChangesView(self.run_dir, redact, id="changes-view"))
        else:  # mounted one level at a time: a child passed to a container's constructor
            box, side = Horizontal(), Vertical(id="file-pane")  # is in the DOM only later
            pane.mount(box)
            box.mount(RunFilesTree(self.run_dir, id="tree"), side)
            side.mount(FileView(redact, id="file-view"))

    def on_mount(self) -> None:
        self._log_loaded = False
        self._saw_running = not RunPaths(self.run_dir).report.exists()
        self._load()

    @work(exclusive=True, group="detail", exit_on_error=False)
    async def _load(self) -> None:
        """Read the run; while it is still going (no report yet), read it again every
        REREAD_S so Summary, Trace, Relay and Baseline keep up, and reload the log once
        the report is in (Live is the place to watch the log grow)."""
        while True:
            self.record = await asyncio.to_thread(read_record, self.run_dir)
            self._summary()
            self._trace()
            self._relay()
            self._baseline()
            if self.record.report is not None or self.record.manifest is None:
                break
            await asyncio.sleep(REREAD_S)
        if self._saw_running and self._log_loaded:
            self.query_one("#log-view", FileView).load(RunPaths(self.run_dir).case_log)

    def _log_view(self) -> FileView:
        """The Log tab's view, its file indexed the first time it is needed (the tab shown,
        `/`, `o`), not on mount: indexing a 300 MB log holds the interpreter for seconds
        while the other tabs draw their first frame."""
        view = self.query_one("#log-view", FileView)
        if not self._log_loaded:
            self._log_loaded = True
            view.load(RunPaths(self.run_dir).case_log)
        return view

    @on(TabbedContent.TabActivated)
    def _tab_shown(self, event: TabbedContent.TabActivated) -> None:
        if event.pane.id == "log":
            self._log_view()

    # -- tabs ----------------------------------------------------------------------
    def _summary(self) -> None:
        record, redact = self.record, cast("Dashboard", self.app).redact
        report, manifest = record.report, record.manifest
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold", no_wrap=True)
        table.add_column()

        def row(label: str, value: object, style: str = "") -> None:
            table.add_row(label, inert(redact(str(value)), style))

        status = report.status if report else (record.validation.status
                                                if record.validation else "unknown")
        row("status", status, STATUS_STYLE.get(status, "magenta"))
        for problem in record.problems:
            row("problem", problem, "red")
        if manifest is not None:
            row("task", f"{manifest.task} · engine {manifest.engine} · profile "
                        f"{manifest.profile}")
            if manifest.case_bin_name:
                row("case", manifest.case_bin_name)
            if manifest.demo:
                row("endpoint", "demo endpoint: never evidence for the real model",
                    "black on yellow")
            if manifest.retry_of:
                row("retry of", manifest.retry_of)
        if report is not None:
            self._report_rows(report, row)
        elif manifest is not None:
            row("report", "none yet (running or interrupted)")
        parts: list[RenderableType] = [Text("Report", style="bold underline"), table]
        if record.this is not None and record.retried is not None:
            parts += [Text("\nBeside the run it retried", style="bold underline"),
                      retry_table(record.this, record.retried)]
        self.query_one("#report", Static).update(Group(*parts))
        self.query_one("#detail-title", Static).update(self._title(status))
        self.query_one("#evidence", Static).update(self._evidence())

    def _title(self, status: str) -> Text:
        """The run's status chip, then what it is: the first things read on this screen."""
        text = Text(f" {status} ", style=f"bold reverse {STATUS_STYLE.get(status, 'magenta')}")
        manifest = self.record.manifest
        if manifest is not None and manifest.demo:
            text.append(" demo endpoint ", style="bold black on yellow")
        text.append(" ")
        text.append(safe(self.run_dir.name), style="bold")
        if manifest is not None:
            case = f" ({manifest.case_bin_name})" if manifest.case_bin_name else ""
            text.append(safe(f" · {manifest.task} · {manifest.engine}{case}"))
        return text

    @staticmethod
    def _report_rows(report: Report, row: Callable[..., None]) -> None:
        row("stage", f"reached stage {report.stage} of 2 · Stage 2 "
                     f"{'passed' if report.stage2_passed else 'did not pass'}")
        row("provider / model", f"{report.case_model_provider} / {report.case_model}")
        row("admission", report.case_model_admission_status)
        row("fallback", f"{'DETECTED' if report.fallback_detected else 'none'} · guard "
                        f"{report.guard_state}", "bold red" if report.fallback_detected else "")
        for ev in report.fallback_evidence:
            row("", f"{ev.file}{f':{ev.line}' if ev.line else ''} {ev.detail}")
        row("case network", f"{report.case_network} · {report.case_network_detail}",
            "" if report.case_network == "isolated" else "yellow")
        sandbox = getattr(report, "case_sandbox", None)
        if sandbox is not None:
            row("case sandbox", sandbox_line(sandbox))
        relay = report.relay
        row("relay", f"{plural(relay.requests, 'request')} · {relay.forwarded} forwarded · "
                     f"{relay.refused} refused · {plural(relay.errors, 'error')} · tokens "
                     f"{tokens(relay.prompt_tokens)} in / {tokens(relay.completion_tokens)} "
                     f"out · models {', '.join(relay.models_seen) or 'none'}")
        checks = report.checks
        row("checks", f"{checks.passed}/{checks.total} passed" if checks.ran
            else f"not run ({checks.detail})" if checks.detail else "not run")
        row("baseline", f"{report.baseline.status} · "
            + (report.comparison.detail if report.comparison else "no comparison"))
        red = report.redaction
        row("redaction", f"{red.forms} forms · {red.log_redactions} in the log · leaks "
                         f"{'FOUND' if report.leak_detected else 'none'}")
        row("duration", seconds(report.durations.total_s))
        for reason in report.reasons:
            row("reason", reason)

    def _evidence(self) -> Group:
        validation = self.record.validation
        title = Text("\nEvidence (cto-harness validate)", style="bold underline")
        if validation is None:
            return Group(title, Text("not validated"))
        verdict = Text("accepted" if validation.ok else "not accepted",
                       style="bold green" if validation.ok else "bold red")
        if validation.stage2_pass_evidence:
            verdict.append(" · real Case Stage 2 pass evidence", style="green")
        table = Table(expand=True, show_edge=False, box=None, padding=(0, 1))
        table.add_column("", width=1)
        table.add_column("criterion", no_wrap=True)
        table.add_column("detail", ratio=2)
        table.add_column("evidence", ratio=1)
        for c in validation.criteria:
            symbol, colour = VERDICT[c.verdict]
            pointers = ", ".join(
                f"{e.file}{f':{e.line}' if e.line else ''}{f' {e.field}' if e.field else ''}"
                for e in c.evidence)
            table.add_row(Text(symbol, style=colour), inert(c.id), inert(c.detail),
                          inert(pointers, "cyan"))
        problems = [inert(f"! {p}", "red") for p in validation.problems]
        return Group(title, verdict, table, *problems)

    def _trace(self) -> None:
        table = self.query_one("#trace-table", DataTable)
        table.clear(columns=True)  # read again while the run goes on
        table.add_columns("seq", "time", "took", "event", "fields")
        events = self.record.trace
        redact = cast("Dashboard", self.app).redact
        for took, ev in zip(since_previous(events), events, strict=True):
            extra = json.dumps(ev.model_extra or {}, ensure_ascii=False, default=str)
            style = "bold red" if ev.event in ALARMS else ""
            table.add_row(str(ev.seq), clock(ev.ts), seconds(took),
                          inert(ev.event, style),
                          inert(redact(extra[:160] + ("…" if len(extra) > 160 else ""))))

    @on(DataTable.RowHighlighted, "#trace-table")
    def _trace_event(self, event: DataTable.RowHighlighted) -> None:
        """The highlighted event whole, as indented, highlighted JSON. Dumped ASCII-only, so
        every control or bidi character a run put in it shows as its \\u escape."""
        events = self.record.trace
        if not 0 <= event.cursor_row < len(events):
            return
        trace_event = events[event.cursor_row]
        data = {"seq": trace_event.seq, "ts": trace_event.ts, "event": trace_event.event,
                **(trace_event.model_extra or {})}
        redact = cast("Dashboard", self.app).redact
        text = redact(json.dumps(data, indent=2, ensure_ascii=True, default=str))
        self.query_one("#trace-detail", Static).update(RichJSON(text, ensure_ascii=True))

    def _relay(self) -> None:
        table = self.query_one("#relay-table", DataTable)
        table.clear(columns=True)
        # The route last: it is nearly always the same, and at 80 columns what went wrong
        # (status, models, latency, tokens, the refusal) must fit before it.
        table.add_columns("time", "status", "asked", "answered", "latency", "in/out",
                          "refused / error", "request")
        for r in self.record.relay:
            bad = r.refused or r.error or r.status >= 400
            table.add_row(clock(r.ts), Text(str(r.status), style="red" if bad else "green"),
                          inert(r.model_asked or ""), inert(r.model_answered or ""),
                          f"{r.latency_ms:.0f} ms",
                          "?" if r.prompt_tokens is None and r.completion_tokens is None
                          else f"{tokens(r.prompt_tokens)}/{tokens(r.completion_tokens)}",
                          inert(r.refused or r.error or "", "red"), inert(f"{r.method} {r.path}"))
        if not self.record.relay:
            table.add_row("", "", "no request went through the relay", "", "", "", "", "")

    def _baseline(self) -> None:
        report = self.record.report
        view = self.query_one("#baseline-view", Static)
        if report is None:
            view.update("No report yet: the baseline runs after the Case, in the same run.")
            return
        table = Table(title="Same-run comparison", expand=True)
        table.add_column("", style="bold")
        table.add_column(f"real ({report.engine})")
        table.add_column("fake baseline")
        base, checks = report.baseline, report.checks
        real_status = "passed" if checks.all_passed else "failed"
        table.add_row("outcome", Text(real_status, style=STATUS_STYLE.get(real_status, "")),
                      Text(base.status, style=STATUS_STYLE.get(base.status, "")))
        table.add_row("exit code", exit_code(report.case_exit_code), exit_code(base.exit_code))
        table.add_row("checks", f"{checks.passed}/{checks.total}",
                      f"{base.checks.passed}/{base.checks.total}")
        table.add_row("detail", inert(checks.detail), inert(base.checks.detail))
        for name, real, fake in self.record.check_pairs:
            table.add_row(check_name(name), outcome_cell(real), outcome_cell(fake))
        table.add_row("log", "backend/case.log", "baseline/case.log")
        comparison = report.comparison
        verdict = Text("\n")
        if comparison is None:
            verdict.append("No comparison: the Case never ran.", style="yellow")
        elif comparison.discriminating:
            verdict.append(safe(f"Discriminating: {comparison.detail}. The checks tell a real "
                                "solution from the fake one."), style="green")
        else:
            verdict.append(safe(f"Not discriminating: {comparison.detail}. No pass claim can "
                                "rest on it."), style="red")
        view.update(Group(table, verdict))

    # -- keys and events -------------------------------------------------------------
    @on(DirectoryTree.FileSelected)
    def _open_file(self, event: DirectoryTree.FileSelected) -> None:
        self.query_one("#file-view", FileView).load(event.path, root=self.run_dir)

    def action_open_file(self) -> None:
        """The file in the viewer (Files) or the log, in `viewer_command`'s program, the
        dashboard suspended meanwhile. A read-only copy: the run's files are evidence,
        hashed in its report, and an edit would break them."""
        tabs = self.query_one(TabbedContent)
        view = self.query_one("#file-view", FileView) if tabs.active == "files" \
            else self._log_view()
        viewer = viewer_command(os.environ)
        if view.path is None:
            self.notify("pick a file in Files first (enter opens it in the viewer)",
                        severity="warning")
            return
        if viewer is None:
            self.notify("set $EDITOR, $VISUAL or $PAGER to open files from here (no less "
                        "on PATH either)", severity="warning")
            return
        try:
            with view.open_viewed() as source, \
                    tempfile.TemporaryDirectory(prefix="cto-harness-view-") as folder:
                copy = Path(folder) / "file"
                with copy.open("wb") as fh:
                    shutil.copyfileobj(source, fh)
                copy.chmod(0o444)
                with self.app.suspend():
                    subprocess.run([*viewer, str(copy)], check=False)
        except SuspendNotSupported:
            self.notify("this terminal cannot hand itself to an editor", severity="error")
        except OSError as exc:
            self.notify(f"cannot open {view.path.name}: {exc.strerror}", severity="error")

    def action_back(self) -> None:
        """One level up: from the search box to the log, from a tab's content to the tab
        bar, from the tab bar out of Run detail."""
        box = self.query_one("#log-find", Input)
        if box.has_focus:
            box.remove_class("-shown")
            self.query_one("#log-view", FileView).focus()
            return
        tabs = self.query_one(TabbedContent).query_one(Tabs)
        if self.focused is not None and self.focused is not tabs:
            tabs.focus()
            return
        self.app.pop_screen()

    def action_into_tab(self) -> None:
        """Focus the first thing in the open tab that takes keys (its table, tree, viewer)."""
        tabs = self.query_one(TabbedContent)
        pane = tabs.get_pane(tabs.active)
        target = next((w for w in pane.query("*")
                       if w.focusable and not isinstance(w, Input)), None)  # `/` has it
        if target is not None:
            target.focus()

    def action_search(self) -> None:
        if self.query_one(TabbedContent).active == "conversation":
            self.query_one(ConversationView).action_find()
            return
        self.query_one(TabbedContent).active = "log"
        box = self.query_one("#log-find", Input)
        box.add_class("-shown")
        box.focus()

    @on(Input.Submitted, "#log-find")
    def _find(self, event: Input.Submitted) -> None:
        event.input.remove_class("-shown")
        view = self._log_view()
        view.search(event.value.strip())
        view.focus()
