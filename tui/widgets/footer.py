"""The footer: the keys that apply here, the most needed kept when the terminal is narrow.

Textual's Footer cuts whatever does not fit at its right end, which is where `?` and `q`
were (an 80-column terminal lost `e ? q`). This one drops the least needed keys first
(PRIORITY), shows the rest in their usual order, and is rebuilt only when what it shows
changes: Textual's own rebuilds every key widget on each screen switch and focus move, most
of what a key press that switches screens cost.
"""

from __future__ import annotations

from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer
from textual.widgets._footer import FooterKey

PRIORITY = ("help", "quit", "back", "show('live')", "show('runs')", "show('work')", "show('jobs')",
            "stages", "search", "filter", "follow", "retry", "cancel_run", "regate",
            "into_tab", "endpoint")
"""Actions by how much a user needs to see their key; others come after, palette last.
`stages` comes early: below 120 columns the stages fold away and `s` is the only way to them."""
KEY_PADDING = 3
"""Columns a key takes beside its key and description text (spaces around them)."""


class SteadyFooter(Footer):
    _shown: tuple[object, ...] | None = None

    def _entries(self) -> list[tuple[Binding, bool, str]]:
        """The bindings to show, one per action, in the order they are bound."""
        palette = self.app.COMMAND_PALETTE_BINDING
        by_action: dict[str, tuple[Binding, bool, str]] = {}
        for key, (_, binding, enabled, tooltip) in self.screen.active_bindings.items():
            if binding.action == "show('work')" and "work" not in getattr(
                    self.app, "screens_in_order", ()):
                continue  # no SOT, no Work items screen: `3` only says how to get one
            if binding.show or (key == palette and self.show_command_palette):
                by_action.setdefault(binding.action, (binding, enabled, tooltip))
        return list(by_action.values())

    def _fitting(self) -> list[tuple[Binding, bool, str]]:
        entries = self._entries()
        width = self.app.size.width

        def rank(entry: tuple[Binding, bool, str]) -> int:
            action = entry[0].action
            return PRIORITY.index(action) if action in PRIORITY else len(PRIORITY)

        def cost(entry: tuple[Binding, bool, str]) -> int:
            binding = entry[0]
            return (len(self.app.get_key_display(binding)) + len(binding.description)
                    + KEY_PADDING)

        kept = sorted(entries, key=rank)
        while kept and sum(cost(e) for e in kept) > width:
            kept.pop()
        return [e for e in entries if e in kept]

    def _keys(self) -> tuple[object, ...]:
        """What compose() shows: the keys kept and their state."""
        return tuple((b.key, b.description, b.action, enabled, tooltip)
                     for b, enabled, tooltip in self._fitting())

    def compose(self) -> ComposeResult:
        if not self._bindings_ready:
            self._shown = None
            return
        fitting = self._fitting()
        self._shown = self._keys()
        self.styles.grid_size_columns = len(fitting)
        for binding, enabled, tooltip in fitting:
            yield FooterKey(binding.key, self.app.get_key_display(binding),
                            binding.description, binding.action, disabled=not enabled,
                            tooltip=tooltip).data_bind(compact=Footer.compact)

    async def on_resize(self, event: events.Resize) -> None:
        # Awaited: un-awaited, the coroutine never ran and a narrowed terminal kept keys
        # that no longer fit (mypy found it).
        if self._shown is not None and self._keys() != self._shown:
            await self.recompose()

    def bindings_changed(self, screen: Screen) -> None:
        if (self._shown is not None and screen is self.screen and self.is_attached
                and self._keys() == self._shown):
            return
        super().bindings_changed(screen)
