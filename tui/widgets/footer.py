"""The footer: the keys that apply here, the most needed kept when the terminal is narrow.

Textual's Footer cuts whatever does not fit at its right end, which is where `?` and `q`
were (an 80-column terminal lost `e ? q`). This one drops the least needed keys first
(PRIORITY), shows the rest in their usual order, and is rebuilt only when what it shows
changes. Textual's own rebuilds every key widget on every bindings change (each focus
move, each screen switch, each widget mounted below the screen: 358 rebuilds while Run
detail opened its Conversation tab), and each key it mounts passes the stylesheet three
times (mounted, then `compact` set, then bound to the footer's `compact`).
"""

from __future__ import annotations

from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer
from textual.widgets._footer import FooterKey

V_ACTIONS = ("turn('conversation')", "turn('log')", "keys('conversation')", "keys('log')")
"""Live's `v`, one action for each place it goes (only one applies at a time)."""
PRIORITY = ("help", "quit", "back", "stages", *V_ACTIONS, "search", "find", "filter",
            "mark", "compare", "mark_job", "compare_jobs", "resume_job", "cancel_job", "regate",
            "follow", "sort", "into_tab")
"""Actions by how much a user needs to see their key. `stages` and Live's `v` come early:
below 120 columns the stages and the conversation fold away and `s`, `v` are the only ways
to them. After these come the keys of the widget in focus that are not named
here (the Conversation tab's `t` `x` `z`, the Changes tab's `b`), then LATER, then the
command palette."""
LATER = ("retry", "cancel_run", "endpoint", "show('live')", "show('runs')",
         "show('work')", "show('jobs')")
"""Keys that apply everywhere, left out first when the terminal is narrow: the number keys
last of all, since the bar at the top of every screen names them (`1 Live 2 Runs 4 Jobs`).
So at 80 columns Runs and Jobs keep `space` and `=`, the Conversation tab its own keys."""
KEY_PADDING = 3
"""Columns a key takes beside its key and description text (spaces around them)."""

Entry = tuple[Binding, bool, str]


class SteadyKey(FooterKey):
    """A footer key whose `compact` is fixed when it is made: Textual's FooterKey starts
    compact, and the footer then binds it to its own `compact`; each change restyles it."""

    def __init__(self, *args: object, compact: bool, **kw: object) -> None:
        super().__init__(*args, **kw)  # type: ignore[arg-type]
        self.set_reactive(FooterKey.compact, compact)
        self.set_class(compact, "-compact", update=False)

    def _watch_compact(self, compact: bool) -> None:
        if self.has_class("-compact") != compact:  # on mount: already so, no style pass
            self.set_class(compact, "-compact")


class SteadyFooter(Footer):
    _shown: tuple[object, ...] | None = None
    """What compose() last showed (None: nothing yet)."""
    _refit_pending = False

    def _entries(self) -> list[Entry]:
        """The bindings to show, one per action, in the order they are bound."""
        palette = self.app.COMMAND_PALETTE_BINDING
        by_action: dict[str, Entry] = {}
        for key, (_, binding, enabled, tooltip) in self.screen.active_bindings.items():
            if binding.action == "show('work')" and "work" not in getattr(
                    self.app, "screens_in_order", ()):
                continue  # no SOT, no Work items screen: `3` only says how to get one
            if binding.show or (key == palette and self.show_command_palette):
                by_action.setdefault(binding.action, (binding, enabled, tooltip))
        return list(by_action.values())

    def _fitting(self) -> list[Entry]:
        entries = self._entries()
        width = self.app.size.width

        palette = self.app.COMMAND_PALETTE_BINDING

        def rank(entry: Entry) -> int:
            binding = entry[0]
            if binding.action in PRIORITY:
                return PRIORITY.index(binding.action)
            if binding.action in LATER:
                return len(PRIORITY) + 1 + LATER.index(binding.action)
            if binding.key == palette:
                return len(PRIORITY) + len(LATER) + 1
            return len(PRIORITY)

        def cost(entry: Entry) -> int:
            binding = entry[0]
            return (len(self.app.get_key_display(binding)) + len(binding.description)
                    + KEY_PADDING)

        kept = sorted(entries, key=rank)
        while kept and sum(cost(e) for e in kept) > width:
            kept.pop()
        return [e for e in entries if e in kept]

    @staticmethod
    def _state(fitting: list[Entry]) -> tuple[object, ...]:
        """What compose() shows: the keys kept and their state."""
        return tuple((b.key, b.description, b.action, enabled, tooltip)
                     for b, enabled, tooltip in fitting)

    def compose(self) -> ComposeResult:
        if not self._bindings_ready:
            self._shown = None
            return
        fitting = self._fitting()
        self._shown = self._state(fitting)
        self.styles.grid_size_columns = len(fitting)
        for binding, enabled, tooltip in fitting:
            yield SteadyKey(binding.key, self.app.get_key_display(binding),
                            binding.description, binding.action, disabled=not enabled,
                            tooltip=tooltip, compact=self.compact)

    async def _refit(self) -> None:
        """Rebuild the keys if what they would show differs from what they show."""
        self._refit_pending = False
        if self.is_attached and (self._shown is None
                                 or self._state(self._fitting()) != self._shown):
            await self.recompose()

    async def on_resize(self, event: events.Resize) -> None:
        # Awaited: un-awaited, the coroutine never ran and a narrowed terminal kept keys
        # that no longer fit (mypy found it).
        if self._shown is not None:
            await self._refit()

    def bindings_changed(self, screen: Screen) -> None:
        """At most one refit per refresh, however many times the bindings changed before
        it, and none when the keys shown stay the same (Textual's schedules a rebuild for
        each change)."""
        self._bindings_ready = True
        # Textual's also waits while the app has no focus; a terminal that never reports
        # focus (tmux without focus-events) then kept a footer made before the screen's
        # own keys were bound: Run detail showed none of them. A refit is cheap.
        if screen is not self.screen or not self.is_attached:
            return
        if not self._refit_pending:
            self._refit_pending = True
            self.call_after_refresh(self._refit)
