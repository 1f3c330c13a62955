"""The Conversation tab of Run detail: the run's model exchanges rebuilt as steps (who,
first line, tokens, latency, model), the selected step whole below, `/` search with n/N,
and keys to the next tool call (`t`/`T`) or problem (`x`/`X`).

Read lazily: `Transcript.steps()` is asked a page at a time, so a run of 5,000 exchanges
opens on its first page; the next pages are read on behind it, a page at a time in a thread
(a step's tool results are read only when it is shown), so `G`, a search or a jump reach
the end without a wait once that is done. The rows are a `StepList` (Line API: only the
lines in view are drawn). While the run goes on (no report yet) the tab reads what the
exchanges index grew by and shows the request in flight (`backend/exchanges/inflight.json`,
written by the relay) as it streams.

Public surface (the Live screen shows the same widget):

    ConversationView(run_dir, redact, poll_s=LIVE_S)   # poll_s None: read on only when told
    ConversationView(..., follow_end=True)  # Live: the cursor keeps to the newest step while
                                            # on the last row; the answer in flight below
    view.steps_arrived()    # the exchanges grew: read them now, not at the next poll
    view.steps              # the steps read so far; view.loaded_once: the first page is in
    view.shown_row          # the step shown whole below (None before the first)

Every string here came from a model, an agent or a run folder: it is shown only through
`safe()`/`inert()` (tui/terminal_text.py) and the display redactor, never as markup."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Input, Static

from core.evidence.inflight import InFlight, read_inflight
from core.evidence.rundir import RunPaths
from core.evidence.steps import Observation, Step
from core.evidence.transcript import Transcript
from tui.terminal_text import safe
from tui.widgets.step_list import StepList
from tui.widgets.step_view import inflight_line, inflight_view, step_text, step_view

PAGE = 200
"""Steps read per page (one thread hop, the reader's lock held for it)."""
FIRST_PAGE = 60
"""The first page: a screen's worth and some, read before the first frame."""
NEAR_END = 20
LIVE_S = 0.5
"""How often a run in flight is read again (its index, its in-flight answer)."""
class ConversationView(Vertical):
    """The tab's content (see the module docstring)."""

    DEFAULT_CSS = """
    ConversationView #conv-find { display: none; border: tall $panel; }
    ConversationView #conv-find.-shown { display: block; }
    ConversationView #conv-status { height: auto; max-height: 4; padding: 0 1; }
    ConversationView #conv-table { height: 1fr; }
    ConversationView #conv-step-box { height: 2fr; border-top: solid $panel; padding: 0 1; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("slash", "find", "Search"),
        Binding("n", "next_match(1)", "Next match", show=False),
        Binding("N", "next_match(-1)", "Previous match", show=False),
        Binding("t", "next_tool(1)", "Next tool call"),
        Binding("T", "next_tool(-1)", "Previous tool call", show=False),
        Binding("x", "next_problem(1)", "Next problem"),
        Binding("X", "next_problem(-1)", "Previous problem", show=False),
        Binding("z", "fold", "Reasoning"),
        Binding("escape", "leave", "Back", show=False),
    ]

    def __init__(self, run_dir: Path, redact: Callable[[str], str], *,
                 poll_s: float | None = LIVE_S, follow_end: bool = False,
                 **kw: object) -> None:
        """`poll_s`: how often a run still going is read again; None: only when
        `steps_arrived()` says so (its owner watches the run's files itself).
        `follow_end`: the cursor keeps to the newest step while it is on the last row, and
        there the answer in flight is shown whole below as it streams (Live)."""
        super().__init__(**kw)  # type: ignore[arg-type]
        self.run_dir = run_dir
        self.follow_end = follow_end
        self.redact = redact
        self.poll_s = poll_s
        self._nudge = asyncio.Event()
        self.transcript = Transcript(run_dir, lazy=True)
        self._filled: list[Observation] = []
        """The shown step's results, read for it (let go when another step is shown)."""
        self.steps: list[Step] = []
        self._lock = asyncio.Lock()
        self._term = ""
        self._reasoning = False
        self.inflight: list[InFlight] = []
        self.loaded_once = False
        self.shown_row: int | None = None
        """The step shown whole below the list."""

    def compose(self) -> ComposeResult:
        yield Input(placeholder="search the whole conversation; Enter, then n/N",
                    id="conv-find")
        yield Static("reading the exchanges…", id="conv-status")
        yield StepList(self.redact, id="conv-table")
        with VerticalScroll(id="conv-step-box"):
            yield Static(id="conv-step")

    def on_mount(self) -> None:
        self._follow()

    def steps_arrived(self) -> None:
        """The run's exchanges grew (or its report appeared): read them now."""
        self._nudge.set()

    @property
    def table(self) -> StepList:
        return self.query_one("#conv-table", StepList)

    # -- reading ------------------------------------------------------------------
    async def _more(self, until: int | None = None) -> bool:
        """Read steps up to `until` (default: a PAGE more than there are once the reader is
        ours: another reader may have read on meanwhile), in a thread, one reader at a
        time; add their rows. False when nothing more came."""
        async with self._lock:
            have = len(self.steps)
            until = have + PAGE if until is None else until
            got = await asyncio.to_thread(self.transcript.steps, have, max(until - have, 0))
            got = [s for s in got if s.index >= len(self.steps)]
            at_end = self.table.cursor_row >= len(self.steps) - 1
            self.steps.extend(got)
            self.table.add(got)
            if got and have == 0:
                self._show(0)  # now, as the rows come (its Highlighted then draws nothing)
            if got and self.follow_end and at_end:
                self.table.move_cursor(len(self.steps) - 1)
                self._show(len(self.steps) - 1)  # now: the cursor and the step agree
        return bool(got)

    async def _tail_changes(self) -> None:
        """Steps already shown can still change as the run goes on: a tool result arrives
        for the last answer's call. Their rows and the open step are redrawn."""
        async with self._lock:
            fresh = await asyncio.to_thread(self.transcript.steps, max(len(self.steps) - 3, 0),
                                            3)
        table = self.table
        for step in fresh:
            table.changed(step)
        if table.cursor_row >= len(self.steps) - 3:
            self._show(table.cursor_row)

    @work(exclusive=True, group="conversation", exit_on_error=False)
    async def _follow(self) -> None:
        """The first page; the rest behind it, a page at a time; then, while the run has
        no report, what it grew by."""
        await self._more(FIRST_PAGE)
        self.loaded_once = True
        self._status()
        drawn = asyncio.Event()  # the first frame first: the rest is read behind it
        self.call_after_refresh(drawn.set)
        await drawn.wait()
        await self._read_ahead()
        report = RunPaths(self.run_dir).report
        while not report.exists():
            self._nudge.clear()
            with contextlib.suppress(TimeoutError):  # the poll's time, or a nudge
                await asyncio.wait_for(self._nudge.wait(), self.poll_s)
            async with self._lock:
                before = self.transcript.folder.count()
                await asyncio.to_thread(self.transcript.refresh)
                grew = self.transcript.folder.count() != before
            flew, self.inflight = self.inflight, await asyncio.to_thread(
                read_inflight, self.run_dir)
            if self.follow_end and (self.inflight or flew) and not grew:
                self._show_flying()
            if grew:
                await self._tail_changes()
            await self._read_ahead()
            self._status()
        self.inflight = []
        async with self._lock:
            await asyncio.to_thread(self.transcript.refresh)
        await self._tail_changes()
        await self._more()
        await self._read_ahead()
        self._status()

    async def _read_ahead(self) -> None:
        """The rest of the conversation, a page at a time, while this view's screen is the
        one shown: a Live screen left below Run detail read the same 5,000 exchanges for
        nobody, and made the tab's jump to the middle take three times as long."""
        while self._unread() and self._shown_screen() and await self._more():
            self._status()

    def _unread(self) -> bool:
        """Steps not in the list yet: exchanges not read, or steps the reader rebuilt for
        another caller (a tool result's look-ahead reads the next exchange)."""
        return not self.transcript.complete or len(self.steps) < self.transcript.known

    def _shown_screen(self) -> bool:
        """This view's screen is the one on top (Screen.is_current also holds for the
        Live screen left below Run detail)."""
        return self.is_attached and self.app.screen is self.screen

    def _status(self) -> None:
        t = self.transcript
        text = Text()
        if not t.folder.exists() and not RunPaths(self.run_dir).report.exists():
            text.append("No model exchange recorded yet.", style="bright_black")
        elif not t.folder.exists():
            text.append("No exchanges recorded for this run (backend/exchanges/ is absent: "
                        "no request was forwarded — each refused, or the run blocked — or the "
                        "run is from before recording, or recording was off).", style="yellow")
        else:
            more = "" if t.complete else " so far (reading on)"
            text.append(f"{len(self.steps):,} steps from {t.exchanges_read:,} of "
                        f"{t.exchanges:,} exchanges{more}")
            if self._term:
                text.append(f" · search {safe(self._term)!r}: n/N")
        for problem in t.problems[:2]:
            text.append("\n")
            text.append(safe(self.redact(f"! {problem}")), style="red")
        if self.inflight:
            text.append("\n")
            text.append_text(inflight_line(self.inflight, self.redact,
                                           tail=not self.follow_end))
        self.query_one("#conv-status", Static).update(text)

    # -- the step below ------------------------------------------------------------
    def _show(self, row: int) -> None:
        """The step whole below the table; its tool results read now (lazily: a few blobs),
        and the previous step's let go."""
        if 0 <= row < len(self.steps):
            step = self.steps[row]
            keep = set(map(id, step.observations))
            self.transcript.unfill([o for o in self._filled if id(o) not in keep])
            self._filled = self.transcript.fill(step) + [
                o for o in self._filled if id(o) in keep]
            self.query_one("#conv-step", Static).update(
                step_view(step, self.redact, self._reasoning))
            self.shown_row = row

    def _show_flying(self) -> None:
        """Live, the cursor on the newest step: the answer streaming now is shown below as
        it arrives (the step it becomes takes its place once recorded); none now, the
        step under the cursor again."""
        row = self.table.cursor_row
        if row < len(self.steps) - 1:
            return  # the reader is further up: leave what they read alone
        if not self.inflight:
            self._show(row)
            return
        self.query_one("#conv-step", Static).update(inflight_view(self.inflight, self.redact))
        self.query_one("#conv-step-box").scroll_end(animate=False)  # the newest words

    @on(StepList.Highlighted, "#conv-table")
    def _highlighted(self, event: StepList.Highlighted) -> None:
        if event.row != self.shown_row:  # not shown already by whoever moved the cursor
            self._show(event.row)
        if (event.row >= len(self.steps) - NEAR_END and not self.transcript.complete
                and self._shown_screen()):
            self._page()  # Live's cursor kept on the newest step: this read on for nobody

    @work(exclusive=True, group="conversation-page", exit_on_error=False)
    async def _page(self) -> None:
        await self._more()
        self._status()

    def action_fold(self) -> None:
        self._reasoning = not self._reasoning
        self._show(self.table.cursor_row)

    # -- moving --------------------------------------------------------------------
    def _go(self, row: int) -> None:
        table = self.table
        table.move_cursor(row)
        self._show(row)  # now, not when Highlighted arrives: the cursor and step agree
        table.focus()

    def _scan(self, rows: range | list[int], match: Callable[[Step], bool]) -> int | None:
        """The first of `rows` whose step matches (in a thread: a search reads each step's
        tool results, and lets them go again)."""
        shown = {id(o) for o in self._filled}
        for row in rows:
            step = self.steps[row]
            filled = self.transcript.fill(step)
            try:
                if match(step):
                    return row
            finally:
                self.transcript.unfill([o for o in filled if id(o) not in shown])
        return None

    @work(exclusive=True, group="conversation-seek", exit_on_error=False)
    async def _seek(self, match: Callable[[Step], bool], direction: int, what: str) -> None:
        """The next (or previous) step that `match`es from the cursor, reading further
        pages when the loaded ones hold none; wraps around once."""
        if not self.steps and not await self._more(PAGE):
            self.notify(f"no {what}: no steps", severity="warning")
            return
        start = self.table.cursor_row
        if direction > 0:
            checked = len(self.steps)
            async with self._lock:
                found = await asyncio.to_thread(self._scan, range(start + 1, checked), match)
            while found is None and await self._more():
                self._status()
                async with self._lock:
                    found = await asyncio.to_thread(
                        self._scan, range(checked, len(self.steps)), match)
                checked = len(self.steps)
            if found is None:  # wrap around to the start
                async with self._lock:
                    found = await asyncio.to_thread(self._scan, range(0, start + 1), match)
        else:
            while start == 0 and await self._more():
                self._status()  # wrapping back from the first step reads to the end
            async with self._lock:
                found = await asyncio.to_thread(
                    self._scan, [*range(start - 1, -1, -1),
                                 *range(len(self.steps) - 1, start - 1, -1)], match)
        if found is None:
            self.notify(f"no {what}", severity="warning")
            return
        self._go(found)

    def action_next_tool(self, direction: int) -> None:
        self._seek(lambda s: bool(s.tool_calls), direction, "tool call")

    def action_next_problem(self, direction: int) -> None:
        self._seek(lambda s: bool(s.problems), direction, "step with a problem")

    def action_find(self) -> None:
        box = self.query_one("#conv-find", Input)
        box.value = ""  # a new search (the current one is in the status line; n/N repeat it)
        box.add_class("-shown")
        box.focus()

    def find(self, term: str) -> None:
        self._term = term.strip()
        self._status()
        self.action_next_match(1)

    def action_next_match(self, direction: int) -> None:
        if not self._term:
            self.action_find()
            return
        needle = self._term.casefold()
        self._seek(lambda s: needle in step_text(s).casefold(), direction,
                   f"step with {self._term!r}")

    @on(Input.Submitted, "#conv-find")
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.query_one("#conv-find", Input).remove_class("-shown")
        self.find(event.value)

    def action_leave(self) -> None:
        box = self.query_one("#conv-find", Input)
        if box.has_focus:
            box.remove_class("-shown")
            self.table.focus()
            return
        back = getattr(self.screen, "action_back", None)
        if back is not None:
            back()
