"""Textual's Footer, rebuilt only when the keys it shows change.

Textual's own rebuilds every key widget whenever the bindings are refreshed (each screen
switch, each focus move), and mounting them re-applies the stylesheet to each: most of
what a key press that switches screens cost, for a footer that looks the same as before.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer


class SteadyFooter(Footer):
    _shown: tuple[object, ...] | None = None

    def _keys(self) -> tuple[object, ...]:
        """What compose() reads: the shown bindings (and the palette's), their state."""
        palette = self.app.COMMAND_PALETTE_BINDING
        return tuple((key, binding.description, binding.action, enabled, tooltip)
                     for key, (_, binding, enabled, tooltip)
                     in self.screen.active_bindings.items()
                     if binding.show or key == palette)

    def compose(self) -> ComposeResult:
        self._shown = self._keys() if self._bindings_ready else None
        yield from super().compose()

    def bindings_changed(self, screen: Screen) -> None:
        if (self._shown is not None and screen is self.screen and self.is_attached
                and self._keys() == self._shown):
            return
        super().bindings_changed(screen)
