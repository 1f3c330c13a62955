"""`cto-harness-tui`: the dashboard that watches run directories.

The app holds what every screen shares (the runs root's listing, the run Live shows, the
typed endpoint, the runs it started) as attributes the screens watch; workers do all I/O.
Runs it starts are `cto-harness run` child processes, so neither can take the other down.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import gc
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import ClassVar

from pydantic import SecretStr
from textual import events, work
from textual.app import App, CSSPathType, SystemCommand
from textual.binding import Binding, BindingType
from textual.notifications import SeverityLevel
from textual.reactive import reactive, var
from textual.screen import Screen
from textual.widget import AwaitMount
from watchfiles import awatch

from core.evidence.models import Readiness
from core.evidence.rundir import enclosing_repository
from core.evidence.runs import RunsRootError, list_run_dirs
from core.run.readiness import check_readiness
from core.settings import Resolved
from tui.failures import ReportsWorkerErrors
from tui.launcher import ChildRun, ChildRunRequest
from tui.redaction import display_redactor
from tui.run_control import RunControl
from tui.screens.dialogs import EndpointScreen
from tui.screens.help import HelpScreen
from tui.screens.jobs import JobsScreen
from tui.screens.live import LiveScreen
from tui.screens.runs import RunsScreen
from tui.screens.work_items import WorkItemsScreen
from tui.terminal_text import safe

DEFAULT_LOG_LINES = 10_000
NARROW, SHORT = 120, 30
NARROW_TOAST_S = 3.0
"""How long a toast stays on a narrow or short terminal, where it hides the footer."""
RUN_FOLDER = re.compile(r"\d{8}T\d{6}Z-")
"""How a run's folder name starts (its UTC stamp): Live follows only such folders, so a
stray folder under the root (`notes`, `old`) is never taken for the most recent run."""


def _listing(root: Path) -> tuple[tuple[Path, ...], str | None]:
    """The run folders under the root, or none and why not (a file, unreadable)."""
    try:
        return tuple(list_run_dirs(root)), None
    except RunsRootError as exc:
        return (), str(exc)


class Dashboard(RunControl, ReportsWorkerErrors, App[None]):
    CSS_PATH: ClassVar[CSSPathType | None] = [
        "global.tcss", "app.tcss",
        # Each screen's own, read up front too: read when the screen first shows, one
        # reparses the whole stylesheet and restyles every screen, a stall on a key press.
        "screens/live.tcss", "screens/runs.tcss", "screens/detail.tcss", "screens/dialogs.tcss",
    ]
    TITLE = "cto-harness"
    MODES: ClassVar[dict[str, str | Callable[[], Screen]]] = {
        "live": LiveScreen,
        "runs": RunsScreen,
        "jobs": JobsScreen,
    }
    DEFAULT_MODE = "live"
    SCREENS_IN_ORDER: ClassVar[list[str]] = ["live", "runs", "jobs"]
    """The order `tab` cycles through; number keys 1, 2, … pick by position."""
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("1", "show('live')", "Live"),
        Binding("2", "show('runs')", "Runs"),
        Binding("3", "show('work')", "Work items"),
        Binding("4", "show('jobs')", "Jobs"),
        Binding("tab", "next_screen", "Next screen", show=False, priority=True),
        Binding("r", "retry", "Retry"),
        Binding("c", "cancel_run", "Cancel"),
        Binding("e", "endpoint", "Endpoint"),
        Binding("y", "copy('id')", "Copy run id", show=False),
        Binding("Y", "copy('path')", "Copy run path", show=False),
        Binding("question_mark", "help", "Help"),
        Binding("q", "quit", "Quit"),
    ]

    run_dirs: reactive[tuple[Path, ...]] = reactive(tuple, always_update=False)
    """Every run folder under the root, newest first (watched by the Runs screen)."""
    live_run: reactive[Path | None] = reactive(None)
    """The run the Live screen follows."""
    readiness: var[tuple[Readiness | None, str | None]] = var((None, None))
    """The pre-run readiness check: (result, or why it could not run)."""
    root_problem: var[str | None] = var(None)
    """Why the runs root cannot be listed (a file, unreadable), or None."""

    def __init__(self, runs_root: Path, *, run_id: str | None = None, demo: bool = False,
                 log_ring: int = DEFAULT_LOG_LINES, resolved: Resolved | None = None,
                 config_error: str | None = None, sot: Path | None = None,
                 rules: Path | None = None) -> None:
        super().__init__()
        self.screens_in_order = list(self.SCREENS_IN_ORDER)
        if sot is not None:
            # The root as typed (as in the subtitle): the screen shows it.
            self.add_mode("work", lambda: WorkItemsScreen(sot, runs_root, rules))
            # in the order of their keys (3), as the tab bar and `tab` show them
            self.screens_in_order.insert(self.screens_in_order.index("jobs"), "work")
        self.sub_title = safe(str(runs_root))  # as the user typed it
        self.runs_root = runs_root.resolve()
        self.root_repository = enclosing_repository(self.runs_root)
        """The git work tree the runs root sits in (the quick start's ./harness-runs in a
        clone), or None: every screen says so, as every command does on stderr."""
        self.log_ring = log_ring
        self.demo = demo
        self.resolved = resolved
        self.config_error = config_error
        self.endpoint: SecretStr | None = None
        self.redact: Callable[[str], str] = display_redactor(resolved, None)
        self.started_runs: list[ChildRun] = []
        self.pinned: Path | None = self.runs_root / run_id if run_id else None
        self._built = {self.DEFAULT_MODE}
        self._instant = False

    def on_resize(self, event: events.Resize) -> None:
        self._fit(event.size.width, event.size.height)

    def _fit(self, width: int, height: int) -> None:
        """Classes the stylesheets adapt the layout to: side panels fold below 120 columns
        (-narrow), panels shrink below 30 rows (-short)."""
        self.set_class(width < NARROW, "-narrow")
        self.set_class(height < SHORT, "-short")

    def on_mount(self) -> None:
        self._fit(*self.size)
        if self.pinned is not None:
            self.live_run = self.pinned
        self._watch_root()
        self._check_readiness()
        if self.demo:
            self._start(ChildRunRequest(demo=True))
        self.call_after_refresh(self._build_screens)

    # -- screens ---------------------------------------------------------------------
    def _build_screens(self) -> None:
        """Build the screens `tab` switches between once the first frame is out, so that no
        key press pays for it: Textual builds a mode's screen on its first switch and
        restyles the whole app twice on the way (a few hundred ms)."""
        if not self.is_running:  # already closing: Textual is taking the screens down
            return
        current = self.current_mode
        built = [self.switch_mode(mode) for mode in self.SCREENS_IN_ORDER]
        self.switch_mode(current)
        self._freeze_when_built(built)

    @work(group="build-screens", exit_on_error=False)
    async def _freeze_when_built(self, built: list[AwaitMount]) -> None:
        """Keep what the built dashboard holds out of the garbage collector's way: each full
        collection otherwise walks all of it, a ~100 ms pause every second or so while a
        log grows at 10,000 lines a second."""
        for mounted in built:
            await mounted
        gc.freeze()

    def on_unmount(self) -> None:
        gc.unfreeze()  # what it froze may be garbage now (tests run many apps in a process)

    def switch_mode(self, mode: str) -> AwaitMount:
        """Textual's, except that a screen already built is drawn at once: Textual holds
        every frame for 50 ms after a switch, to hide a new screen being put together."""
        self._instant = mode in self._built
        try:
            mounted = super().switch_mode(mode)
        finally:
            self._instant = False
        self._built.add(mode)
        return mounted

    def delay_update(self, delay: float = 0.05) -> None:
        if not self._instant:
            super().delay_update(delay)

    # -- live data ---------------------------------------------------------------------
    @work(exclusive=True, group="watch-root", exit_on_error=False)
    async def _watch_root(self) -> None:
        """List the root at once, then again whenever an entry appears or goes; a run's
        own files are followed by polling (watchfiles batches changes up to 1.6 s)."""
        root = self.runs_root
        while True:
            self.run_dirs, self.root_problem = await asyncio.to_thread(_listing, root)
            if self.root_problem is not None or not root.is_dir():
                await asyncio.sleep(1.0)  # until it is created or mended
                continue
            try:
                async for _ in awatch(root, recursive=False, debounce=200, step=20,
                                      ignore_permission_denied=True):
                    self.run_dirs, self.root_problem = await asyncio.to_thread(_listing, root)
            except (OSError, RuntimeError):
                await asyncio.sleep(1.0)

    def watch_run_dirs(self, dirs: tuple[Path, ...]) -> None:
        newest = next((d for d in dirs if RUN_FOLDER.match(d.name)), None)
        if self.pinned is None and newest is not None and self.live_run != newest:
            self.live_run = newest

    @work(exclusive=True, group="readiness", exit_on_error=False)
    async def _check_readiness(self) -> None:
        if self.resolved is None:
            self.readiness = (None, f"cannot read the configuration: {self.config_error}")
            return
        resolved = self.resolved
        if self.endpoint is not None:
            resolved = dataclasses.replace(resolved, endpoint=self.endpoint,
                                           endpoint_source="typed in the dashboard",
                                           endpoint_problem=None)
        readiness = await asyncio.to_thread(check_readiness, resolved, redact=self.redact)
        self.readiness = (readiness, None)

    # -- actions -------------------------------------------------------------------
    def _selected_run(self) -> Path | None:
        pick = getattr(self.screen, "selected_run", None)
        return pick() if pick is not None else self.live_run

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """`tab` outranks focus moves (a priority binding) but never acts under a dialog."""
        return not (action == "next_screen" and self.screen.is_modal)

    def action_show(self, mode: str) -> None:
        if mode == "work" and "work" not in self.screens_in_order:
            self.notify("No planning SOT: start with --sot FILE (or set CTO_HARNESS_SOT) to "
                        "see which work items the evidence unblocks.", severity="warning")
            return
        self.switch_mode(mode)

    def action_next_screen(self) -> None:
        order = self.screens_in_order
        current = order.index(self.current_mode) if self.current_mode in order else -1
        self.switch_mode(order[(current + 1) % len(order)])

    def notify(self, message: str, *, title: str = "", severity: SeverityLevel = "information",
               timeout: float | None = None, markup: bool = False) -> None:
        """Textual's, always with markup off (widgets pass markup=True by default): a
        message quoting a run's id, a file or an error shows its brackets as written, never
        as styles or links. On a small terminal the toast covers the footer: it is shown
        for less long (an error keeps its time)."""
        if severity != "error" and (self.has_class("-narrow") or self.has_class("-short")):
            # one row over the footer at 80x24 (global.tcss): gone sooner, as its keys are
            timeout = min(timeout or self.NOTIFICATION_TIMEOUT, NARROW_TOAST_S)
        super().notify(safe(message), title=safe(title), severity=severity, timeout=timeout,
                       markup=False)

    def action_endpoint(self) -> None:
        def entered(endpoint: SecretStr | None) -> None:
            if endpoint is None:
                return
            self.endpoint = endpoint
            self.redact = display_redactor(self.resolved, endpoint)
            self.notify("endpoint held in memory; runs started here will use it")
            self._check_readiness()

        self.push_screen(EndpointScreen(), entered)

    def action_copy(self, what: str) -> None:
        """The selected run's id or path to the clipboard (OSC 52, as Textual writes it):
        only a name with no terminal control in it, so nothing of a run's choosing rides
        along into the clipboard sequence."""
        run_dir = self._selected_run()
        if run_dir is None:
            self.notify("no run selected to copy", severity="warning")
            return
        text = run_dir.name if what == "id" else str(run_dir)
        if safe(text) != text:
            self.notify("not copied: the name holds terminal control characters",
                        severity="error")
            return
        self.copy_to_clipboard(text)
        self.notify(f"copied the run's {what}: {text}", timeout=3)

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        """Our commands only, each in our words: Textual's stock ones (Keys, Maximize,
        Screenshot, Theme) are not this dashboard's."""
        yield SystemCommand("Live", "The current or most recent run (1)",
                            lambda: self.action_show("live"))
        yield SystemCommand("Runs", "Every run under the runs root (2)",
                            lambda: self.action_show("runs"))
        yield SystemCommand("Jobs", "Every job: progress, pass rate, its trials (4)",
                            lambda: self.action_show("jobs"))
        yield SystemCommand("Retry run", "Same task, engine and profile, as a new run (r)",
                            self.action_retry)
        yield SystemCommand("Cancel run", "SIGINT the run in flight (c)", self.action_cancel_run)
        yield SystemCommand("Enter endpoint", "Masked, held in memory only (e)",
                            self.action_endpoint)
        if "work" in self.screens_in_order:
            yield SystemCommand("Work items", "The SOT's items and what the evidence says (3)",
                                lambda: self.action_show("work"))
        yield SystemCommand("Help", "Every key of the dashboard (?)", self.action_help)
        yield SystemCommand("Quit", "Leave the dashboard; asks first while a run started "
                            "here goes (q)", self.action_quit)
        for binding in screen.BINDINGS:  # this screen's own keys, each by its name
            if isinstance(binding, Binding) and binding.description:
                key = self.get_key_display(binding)  # "/", not Textual's name "slash"
                yield SystemCommand(binding.description, f"on this screen ({key})",
                                    functools.partial(screen.run_action, binding.action))
