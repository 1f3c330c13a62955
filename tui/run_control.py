"""Starting, retrying, cancelling and quitting with runs in flight: the dashboard's actions on
runs, mixed into the app. Runs it starts are `cto-harness run` child processes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from pydantic import SecretStr
from textual import work
from textual.screen import Screen

from core.evidence.liveness import cancel_harness, harness_alive
from core.evidence.runs import Unreadable, load_manifest, load_report
from tui.launcher import ChildRun, ChildRunRequest, start_run
from tui.screens.dialogs import ConfirmScreen, QuitChoice, QuitScreen
from tui.terminal_text import safe

CHILD_POLL_S = 0.1


@dataclass(frozen=True)
class CancelTarget:
    """A run in flight `c` can cancel: one started here (perhaps still without its folder)
    or one another process started."""

    run_dir: Path | None
    child: ChildRun | None

    @property
    def name(self) -> str:
        if self.run_dir is not None:
            return safe(self.run_dir.name)
        return f"the run starting now (harness pid {self.child.pid if self.child else '?'})"

    def going(self) -> bool:
        """Whether it is still in flight: its harness runs and no report is written."""
        if self.child is not None and not self.child.running:
            return False
        if self.run_dir is None:
            return self.child is not None
        try:
            manifest, report = load_manifest(self.run_dir), load_report(self.run_dir)
        except Unreadable:
            return self.child is not None
        if report is not None:
            return False
        return self.child is not None or (manifest is not None and harness_alive(manifest))


class RunHost(Protocol):
    """What RunControl needs of the app it is mixed into, so that this module does not import
    the app (the app imports it): the runs root, the endpoint typed in, the children it
    started, what Live follows, and Textual's own App methods."""

    runs_root: Path
    endpoint: SecretStr | None
    started_runs: list[ChildRun]
    pinned: Path | None
    live_run: Path | None
    redact: Callable[[str], str]

    @property
    def screen(self) -> Screen[Any]: ...
    def notify(self, message: str, *, title: str = "", severity: Any = "information",
               timeout: float | None = None, markup: bool = True) -> None: ...
    def push_screen(self, screen: Any, callback: Any = None) -> Any: ...
    def switch_mode(self, mode: str) -> Any: ...
    def exit(self) -> None: ...
    def _selected_run(self) -> Path | None: ...
    # RunControl's own methods, called on self.
    def _start(self, request: ChildRunRequest) -> None: ...
    def _await_child(self, child: ChildRun) -> Any: ...
    def _running_children(self) -> list[ChildRun]: ...
    def _cancel_target(self) -> CancelTarget | None: ...


class RunControl:
    """Mixed into the Dashboard (self is the app, seen through RunHost)."""

    pinned: Path | None
    live_run: Path | None

    def _start(self: RunHost, request: ChildRunRequest) -> None:
        try:
            child = start_run(request, self.runs_root, self.endpoint)
        except OSError as exc:
            self.notify(f"could not start cto-harness run: {exc.strerror}", severity="error")
            return
        self.started_runs.append(child)
        what = "demo run" if request.demo else f"run of {request.task} ({request.engine})"
        self.notify(f"started a {what}, harness pid {child.pid}", timeout=4)
        self._await_child(child)

    @work(group="children", exit_on_error=False)
    async def _await_child(self: RunHost, child: ChildRun) -> None:
        """Show the child's run on Live as soon as its folder appears; say how it ended."""
        run_dir = None
        while child.running or run_dir is None:
            if run_dir is None and (run_dir := child.run_dir()) is not None:
                self.pinned = run_dir
                self.live_run = run_dir
                self.switch_mode("live")
            if not child.running and run_dir is None:
                break
            await asyncio.sleep(CHILD_POLL_S)
        code = child.process.returncode
        if run_dir is None:
            self.notify(self.redact(f"cto-harness run exited {code} before starting a run: "
                                    f"{child.last_output()}"), severity="error", timeout=10)
        else:
            self.notify(f"{run_dir.name} ended (exit {code})", timeout=5)
        self.pinned = None
        child.close()

    def _running_children(self: RunHost) -> list[ChildRun]:
        return [c for c in self.started_runs if c.running]

    def action_retry(self: RunHost) -> None:
        run_dir = self._selected_run()
        if run_dir is None:
            request = ChildRunRequest()
            question = (f"No run yet. Start {request.task} with engine {request.engine}, "
                        f"profile {request.profile}?")
        else:
            try:
                manifest = load_manifest(run_dir)
            except Unreadable as exc:
                self.notify(f"cannot retry {run_dir.name}: {exc}", severity="error")
                return
            if manifest is None:
                self.notify(f"cannot retry {run_dir.name}: it has no manifest.json",
                            severity="error")
                return
            request = ChildRunRequest.retry(manifest)
            question = safe(f"Retry {manifest.task} (engine {manifest.engine}, profile "
                            f"{manifest.profile}{', demo endpoint' if manifest.demo else ''}) "
                            f"as a new run with retry_of {manifest.run_id}?")

        def answered(yes: bool | None) -> None:
            if yes:
                self._start(request)

        self.push_screen(ConfirmScreen("Retry", question), answered)

    def action_cancel_run(self: RunHost) -> None:
        target = self._cancel_target()
        if target is None:
            self.notify("no run in flight to cancel", severity="warning")
            return

        def answered(yes: bool | None) -> None:
            if yes is None:  # the dialog closed itself: the run ended under it
                self.notify(f"{target.name} ended before it was cancelled", timeout=5)
                return
            if not yes:
                return
            if not target.going():
                self.notify(f"{target.name} has already ended: nothing to cancel",
                            severity="warning")
                return
            if target.child is not None:
                target.child.cancel()
            else:
                manifest = load_manifest(target.run_dir) if target.run_dir else None
                if manifest is None or not cancel_harness(manifest):
                    self.notify(f"{target.name}: its harness is already gone",
                                severity="warning")
                    return
            self.notify(f"cancelling {target.name}: it will write a cancelled report")

        question = (f"Cancel {target.name}? Its harness gets SIGINT, ends the Case and writes "
                    "a cancelled report.")
        self.push_screen(ConfirmScreen("Cancel run", question, while_true=target.going),
                         answered)

    def _cancel_target(self: RunHost) -> CancelTarget | None:
        """The selected run if it is in flight, else the newest run started here, with or
        without its folder yet (`c` right after `r` must not say "no run in flight")."""
        running = self._running_children()
        mine = {c.run_dir(): c for c in running}
        run_dir = self._selected_run()
        if run_dir is not None:
            if run_dir in mine:
                return CancelTarget(run_dir, mine[run_dir])
            target = CancelTarget(run_dir, None)
            if target.going():
                return target
        if running:
            child = running[-1]
            return CancelTarget(child.run_dir(), child)
        return None

    async def action_quit(self: RunHost) -> None:
        """`q`, ctrl+q and the palette's Quit alike: ask first while a run started here goes."""
        running = self._running_children()
        if not running:
            self.exit()
            return
        if isinstance(self.screen, QuitScreen):
            return  # already asking

        def chosen(choice: QuitChoice | None) -> None:
            if choice == "cancel":
                for child in running:
                    child.cancel()
            if choice in ("leave", "cancel"):
                self.exit()

        self.push_screen(QuitScreen(len(running)), chosen)

