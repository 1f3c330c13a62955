"""Live (home): the current or most recent run, its four questions answered at a glance,
its stages, its log streaming, its conversation growing, and its checks once known.

The lower area holds the Case's log and the run's conversation (slice p's Conversation tab
widget, following the newest step and the answer in flight). At 120 columns and 30 rows
and more both show, the log above: each keeps ~110x15 at 160x48, enough for a table of
steps and the newest one, and a log at 10,000 lines/s stays in view. Narrower or shorter
(80x24 leaves 13 rows) they take turns in the one place: `v` switches, and the keys go
to the one shown. On a wide screen `v` moves the keys between the two."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, cast

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Input, Static

from core.evidence.follow import RunTail
from core.evidence.inflight import read_inflight
from core.evidence.liveness import harness_alive
from core.evidence.models import Readiness
from tui.failures import ReportsWorkerErrors
from tui.live_state import RunView, how_to_supply
from tui.messages import RunGrew
from tui.screens.switched import SwitchedTo
from tui.terminal_text import clean_lines, inert, safe
from tui.widgets.case_log import CaseLog
from tui.widgets.conversation import ConversationView
from tui.widgets.footer import SteadyFooter
from tui.widgets.runs_table import STATUS_STYLE
from tui.widgets.status_panel import StatusPanel
from tui.widgets.timeline import StageTimeline
from tui.widgets.where_bar import WhereBar

if TYPE_CHECKING:
    from tui.app import Dashboard

POLL_S = 0.03
"""Between polls: lines reach about 30 frames a second. Each frame redraws the whole log
area, so polling faster costs a core's worth of drawing at 10,000 lines/s for a few ms
less lag; the run on the same machine needs that core more."""
LOG_BYTES_PER_POLL = 1 << 18
"""256 KiB of log per poll: a reader behind catches up over a few frames, each bounded."""
CATCH_UP_BYTES = 4 << 20
CATCH_UP_KEEP_BYTES = 1 << 20
"""Behind by more than 4 MiB (far more than the ring of recent lines holds), Live jumps to
the last 1 MiB: what it skips the ring would have dropped anyway."""
GUIDE_HIDES = ("turn", "keys", "follow", "search")
"""Live's keys that act on the run's log or conversation: not offered while the guide
(no run yet, or one blocked before its Case) stands in the log's place."""
OPEN_TAIL_BYTES = 1 << 20
"""A run opened with a larger log starts this far from its end (Run detail has it all)."""


class LiveScreen(SwitchedTo, ReportsWorkerErrors, Screen[None]):
    CSS_PATH = "live.tcss"
    AUTO_FOCUS = "#case-log"
    """The log, and only while it is shown (`_render_view`): Textual's default, the first
    focusable widget, counts hidden ones, and gave the guide's hidden search box the keys."""
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f", "follow", "Follow"),
        Binding("slash", "search", "Search"),
        Binding("s", "stages", "Stages"),
        # `v`: one binding per place it goes, the one that applies shown (check_action), so
        # the footer says where: narrow, what takes the shared place; wide, where the keys go.
        Binding("v", "turn('conversation')", "Conversation"),
        Binding("v", "turn('log')", "Log"),
        Binding("v", "keys('conversation')", "Keys → conversation"),
        Binding("v", "keys('log')", "Keys → log"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.view = RunView()
        self.run_dir: Path | None = None

    def compose(self) -> ComposeResult:
        yield WhereBar("live")
        yield Static(id="run-info")
        with Horizontal(id="panels"):
            yield StatusPanel("Readiness", id="readiness")
            yield StatusPanel("Admission", id="admission")
            yield StatusPanel("Fallback guard", id="guard")
            yield StatusPanel("Relay", id="relay")
        with Horizontal(id="body"):
            yield StageTimeline(id="timeline")
            with Vertical(id="main-area"):
                with Vertical(id="log-area"):
                    yield Static(id="getting-started")
                    yield CaseLog(cast("Dashboard", self.app).log_ring, id="case-log")
                    yield Input(placeholder="search the log, Enter to find, Escape to close",
                                id="log-search")
                yield Vertical(id="talk")
        yield Static(id="results")
        yield SteadyFooter()

    def on_mount(self) -> None:
        self.view.demo_starting = cast("Dashboard", self.app).demo
        self.watch(self.app, "readiness", self._readiness)
        self.watch(self.app, "live_run", self._show_run)
        self.watch(self.app, "root_problem", lambda _: self._render_view())
        self.set_interval(1.0, self._tick)
        self.query_one("#talk").border_title = "Conversation · v"
        self._render_view()

    def selected_run(self) -> Path | None:
        """The run `r` and `c` act on here: the one on screen."""
        return self.run_dir

    # -- following a run -------------------------------------------------------------
    def _show_run(self, run_dir: Path | None) -> None:
        if run_dir == self.run_dir or run_dir is None:
            return
        self.run_dir = run_dir
        self.view = RunView(readiness_error=None)
        self.query_one(CaseLog).reset(inert(f"Case log · {run_dir.name}"))
        self._render_view()
        self._follow(run_dir)
        self._converse(run_dir)

    @work(exclusive=True, group="talk", exit_on_error=False)
    async def _converse(self, run_dir: Path) -> None:
        """The run's conversation in place of the previous run's: that one is gone (its
        reader with it) before this one mounts."""
        talk = self.query_one("#talk", Vertical)
        focused = self.focused is not None and talk in self.focused.ancestors
        await talk.remove_children()
        await talk.mount(ConversationView(run_dir, cast("Dashboard", self.app).redact,
                                          follow_end=True))
        if focused:
            self._focus_talk()

    @work(exclusive=True, group="follow", exit_on_error=False)
    async def _follow(self, run_dir: Path) -> None:
        """Poll the run's files from their last offsets; one batch in flight at a time, so a
        slow screen makes this reader wait, never the run."""
        tail = RunTail(run_dir, log_tail_bytes=OPEN_TAIL_BYTES)
        redact = cast("Dashboard", self.app).redact

        def read() -> tuple:
            skipped = tail.skip_ahead(CATCH_UP_KEEP_BYTES) if tail.backlog > CATCH_UP_BYTES else 0
            batch = tail.poll(LOG_BYTES_PER_POLL)
            lines = clean_lines(batch.log_lines, redact)
            if skipped:
                lines.insert(0, f"… {skipped:,} bytes skipped to catch up (the whole log is "
                                "in Run detail)")
            return batch, lines

        while True:
            batch, lines = await asyncio.to_thread(read)
            if batch:
                grew = RunGrew(run_dir, batch, lines)
                if not self.post_message(grew):
                    return  # the screen is closing: no handler will ever take it
                await grew.consumed.wait()
            if tail.finished:
                return
            if not batch.pending_bytes:
                await asyncio.sleep(POLL_S)

    @on(RunGrew)
    def _grew(self, message: RunGrew) -> None:
        try:
            if message.run_dir != self.run_dir:
                return
            batch = message.batch
            self.view.apply(batch)
            if batch.manifest is not None and self.view.report is None:
                self.view.alive = harness_alive(batch.manifest)
            self.query_one(CaseLog).add_lines(message.lines)
            if batch.relay or batch.report:  # a request ended: its exchange is recorded
                for talk in self.query(ConversationView):
                    talk.steps_arrived()
            if batch.events or batch.relay or batch.manifest or batch.readiness or (
                    batch.report or batch.problems or batch.out_of_reach is not None):
                self._render_view()  # log-only batches (the common case) skip the layout
        finally:
            message.consumed.set()

    def _readiness(self, checked: tuple[Readiness | None, str | None]) -> None:
        """The pre-run check, shown while there is no run to show."""
        if self.run_dir is None:
            self.view.readiness, self.view.readiness_error = checked
            self._render_view()

    def _tick(self) -> None:
        """Once a second: the current stage's clock, whether the harness still lives, and
        whether the folder followed is a run at all."""
        view = self.view
        if view.demo_starting and not cast("Dashboard", self.app)._running_children():
            view.demo_starting = False  # it ended before its folder: the readiness says why
            self._render_view()
        if (view.manifest is None and not view.manifest_missing and self.run_dir is not None
                and _absent(self.run_dir / "manifest.json")):
            view.manifest_missing = True
            self._render_view()
        if view.report is None and view.manifest is not None and self.run_dir is not None:
            flying = read_inflight(self.run_dir)
            if flying or view.inflight:
                view.inflight = flying
                self.query_one("#relay", StatusPanel).panel = view.relay_panel()
            alive = harness_alive(view.manifest)
            if alive != view.alive:
                view.alive = alive
                self._render_view()
            else:
                self.query_one(StageTimeline).show(view.timeline(time.time()))

    # -- drawing ----------------------------------------------------------------------
    def _render_view(self) -> None:
        view = self.view
        self.query_one("#readiness", StatusPanel).panel = view.readiness_panel()
        self.query_one("#admission", StatusPanel).panel = view.admission_panel()
        self.query_one("#guard", StatusPanel).panel = view.guard_panel()
        self.query_one("#relay", StatusPanel).panel = view.relay_panel()
        self.query_one(StageTimeline).show(view.timeline(time.time()))
        # one-line bars: new words never change their size, so no layout pass for them
        self.query_one("#run-info", Static).update(self._run_info(), layout=False)
        self.query_one("#results", Static).update(inert(view.results_line() or " "),
                                                  layout=False)
        # Before any run, and for a run blocked before its Case (no log to show): what is
        # missing and how to supply it, in the log's place.
        log = self.query_one(CaseLog)
        guide = self.run_dir is None or (view.status == "blocked" and not log.lines)
        self.query_one("#getting-started").display = guide
        log.display = not guide
        log.can_focus = not guide  # hidden, it was still given the keys (and showed its `f`)
        if guide and self.focused is log:
            self.set_focus(None)
        elif not guide and self.focused is None:
            log.focus()  # a run to show: its log takes the keys, as on a start with one
        if guide != self.has_class("-guide"):
            self.set_class(guide, "-guide")  # the guide stands in for both
            self.refresh_bindings()  # GUIDE_HIDES: their keys go or come back
        if guide:
            self.query_one("#getting-started", Static).update(self._getting_started())

    def _run_info(self) -> Text:
        view, text = self.view, Text()
        if self.run_dir is None:
            text.append("no run yet", style="bold")
            text.append(" · r runs the default task once the endpoint is ready · ? help",
                        style="bright_black")
            return text
        # What a glance needs first (status, demo), so a narrow terminal cuts the rest
        text.append(f" {view.status} ",
                    style=f"bold reverse {STATUS_STYLE.get(view.status, 'magenta')}")
        if view.manifest is not None and view.manifest.demo:
            text.append(" demo endpoint ", style="bold black on yellow")
        text.append(" ")
        text.append(safe(self.run_dir.name), style="bold")
        if view.manifest is not None:
            m = view.manifest
            case = f" ({m.case_bin_name})" if m.case_bin_name else ""
            text.append(safe(f" · {m.task} · {m.engine}{case} · {m.provider}/{m.model}"))
            if m.retry_of:
                text.append(safe(f" · retry of {m.retry_of}"), style="bright_black")
        for problem in (*view.problems, *view.out_of_reach):
            text.append(safe(f" · {problem}"), style="red")
        if view.manifest is None and view.manifest_missing:
            text.append(" · manifest.json missing: not a run, or its start was cut short",
                        style="red")
        return text

    def _getting_started(self) -> Text:
        text = Text()
        problem = cast("Dashboard", self.app).root_problem
        if problem is not None:
            text.append(safe(f"✗ {problem}\n\n"), style="bold red")
        if self.run_dir is not None:
            return self._blocked_guide(text)
        if self.view.demo_starting:
            text.append("Starting cto-harness run --demo: the embedded demo endpoint and the "
                        "reference Case, labelled demo everywhere. It shows here as soon as "
                        "its run folder appears.", style="bold")
            return text
        if self.view.readiness is None:
            text.append(self.view.readiness_error or "Checking readiness…")
            return text
        text.append(("" if problem else "No run yet under this runs root. ") + "Readiness:\n\n",
                    style="bold")
        _checklist(text, self.view.readiness)
        text.append("\nOr try the whole flow on the embedded demo endpoint: "
                    "cto-harness-tui --demo", style="bright_black")
        return text

    def _blocked_guide(self, text: Text) -> Text:
        text.append("Blocked before the Case started: no request went to any model. ",
                    style="bold")
        if self.view.readiness is None:
            reasons = self.view.report.reasons if self.view.report else []
            redact = cast("Dashboard", self.app).redact
            text.append("\n\n" + safe(redact("\n".join(reasons))) + "\n")
        else:
            text.append("Its readiness:\n\n", style="bold")
            _checklist(text, self.view.readiness)
        text.append("\nOnce it is supplied, r retries this run.", style="bright_black")
        return text

    # -- keys -------------------------------------------------------------------------
    def action_follow(self) -> None:
        self.query_one(CaseLog).action_follow()

    def action_stages(self) -> None:
        """Below 120 columns the stages fold away; `s` shows them in the log's place, and
        back. On a wide screen it folds them to give the log the width."""
        self.toggle_class("-stages")

    def _taking_turns(self) -> bool:
        """Narrow or short: the log and the conversation share one place."""
        return self.app.has_class("-narrow") or self.app.has_class("-short")

    def v_goes_to(self) -> str:
        """Where `v` goes now: `conversation` or `log` (shown in the shared place, or, when
        both show, given the keys)."""
        if self._taking_turns():
            return "log" if self.has_class("-talk") else "conversation"
        focused = self.focused
        return "log" if focused is not None and self.query_one("#talk") in focused.ancestors \
            else "conversation"

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in GUIDE_HIDES and self.has_class("-guide"):
            return False  # no run's log or conversation shown: nothing for these keys
        if action in ("turn", "keys"):
            mode = "turn" if self._taking_turns() else "keys"
            return action == mode and parameters == (self.v_goes_to(),)
        return True

    def on_resize(self) -> None:
        # across 120 columns or 30 rows `v` changes from taking turns to moving the keys
        self.refresh_bindings()

    def action_turn(self, to: str) -> None:
        """Narrow or short: `to` (the conversation or the log) in the shared place, and the
        keys with it."""
        self.set_class(to == "conversation", "-talk")
        self.remove_class("-stages")
        self._keys_to(to)

    def action_keys(self, to: str) -> None:
        """Wide (both shown): the keys to `to`, the other of the two."""
        self._keys_to(to)

    def _keys_to(self, to: str) -> None:
        if to == "conversation":
            self._focus_talk()
        else:
            self.query_one(CaseLog).focus()
        self.refresh_bindings()  # the label follows the class (a focus move refreshes too)

    def _focus_talk(self) -> None:
        for table in self.query("#talk #conv-table"):
            table.focus()

    def action_search(self) -> None:
        box = self.query_one("#log-search", Input)
        box.display = True
        box.focus()

    @on(Input.Submitted, "#log-search")
    def _search(self, event: Input.Submitted) -> None:
        log = self.query_one(CaseLog)
        log.search(event.value.strip())
        log.focus()

    def key_escape(self) -> None:
        box = self.query_one("#log-search", Input)
        if box.display:
            box.display = False
            self.query_one(CaseLog).focus()


def _checklist(text: Text, readiness: Readiness) -> None:
    for line in how_to_supply(readiness):
        text.append(safe(line) + "\n", style="red" if line.startswith("✗") else "default")


def _absent(path: Path) -> bool:
    """Whether `path` is not there; one out of reach (its folder's permissions) may be, and
    the follower says why it cannot be read."""
    try:
        path.lstat()
    except (FileNotFoundError, NotADirectoryError):
        return True
    except OSError:
        return False
    return False
