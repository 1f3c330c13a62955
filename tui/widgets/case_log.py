"""The Case's log, streaming: a bounded ring of recent lines that follows the end.

A virtual view (only the rows on screen are rendered) over a deque, so a batch of lines
costs one append and one refresh, whatever its size. Scrolling up pauses follow mode: new
lines are then held back (bounded too) and counted, so the text under the reader's eyes
stays put; `f` or End resumes and shows them.
"""

from __future__ import annotations

from collections import deque
from typing import ClassVar

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.cache import LRUCache
from textual.geometry import Region, Size
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

STRIP_CACHE = 256
"""Rendered lines kept for redrawing (a few screens' worth): each holds a dozen objects the
garbage collector walks, and at 10,000 lines a second a larger cache only lengthens its
pauses."""


MORE = Segment("›", Style(dim=True, bold=True))


def marked_crop(strip: Strip, scroll_x: int, width: int, style: Style) -> Strip:
    """The visible part of a line; one that goes on past the right edge ends in `›`, so a
    line is never cut without a marker (→ or the mouse scrolls to the rest)."""
    if strip.cell_length <= scroll_x + width or width < 2:
        return strip.crop_extend(scroll_x, scroll_x + width, style)
    return Strip([*strip.crop(scroll_x, scroll_x + width - 1), MORE], width)


class CaseLog(ScrollView, can_focus=True):
    DEFAULT_CSS = """
    CaseLog {
        border: round $panel-lighten-2;
        height: 1fr;
        /* no horizontal bar: `›` marks each cut line, and → still scrolls to the rest; the
           bar cost one of 13 log rows at 80x24 and drew a stray block under the log */
        scrollbar-size-horizontal: 0;
        &:focus { border: round $accent; }
    }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f", "follow", "Follow"),
        Binding("end", "follow", "Follow", show=False),
        Binding("n", "next_match(-1)", "Older match", show=False),
        Binding("N", "next_match(1)", "Newer match", show=False),
        Binding("j", "scroll_down", "Down", show=False),
        Binding("k", "scroll_up", "Up", show=False),
        Binding("g", "scroll_home", "Top", show=False),
        Binding("G", "follow", "Bottom, following", show=False),
    ]

    following: reactive[bool] = reactive(True)
    held: reactive[int] = reactive(0)

    def __init__(self, ring: int, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.lines: deque[str] = deque(maxlen=ring)
        self._held: deque[str] = deque(maxlen=ring)
        self._dropped = 0
        """Lines that fell off the front of the ring: absolute number of lines[0]."""
        self._width = 0
        self._strips: LRUCache[tuple[int, int], Strip] = LRUCache(STRIP_CACHE)
        self._style = Style()
        self.term = ""
        self._match: int | None = None
        """Absolute line number of the current search match."""

    def on_mount(self) -> None:
        self.border_title = "Case log"
        self._caption()

    # -- content ---------------------------------------------------------------------
    def add_lines(self, lines: list[str]) -> None:
        """Append a batch (one per frame, never one call per line)."""
        if not lines:
            return
        if not self.following:
            self._held.extend(lines)
            self.held += len(lines)
            return
        self._append(lines)

    def _append(self, lines: list[str]) -> None:
        ring = self.lines
        overflow = max(0, len(ring) + len(lines) - (ring.maxlen or 0))
        self._dropped += overflow
        ring.extend(lines)
        widest = max(len(line) if line.isascii() else cell_len(line) for line in lines)
        self._width = max(self._width, widest)
        self.virtual_size = Size(self._width, len(ring))
        if self.following:  # at once, so this very frame shows the end; forced, as Textual
            # refuses to scroll until a layout has given the view its scrollbar
            self.scroll_end(animate=False, x_axis=False, immediate=True, force=True)
        self.refresh()

    def reset(self, title: str | Text) -> None:
        self.lines.clear()
        self._held.clear()
        self._dropped = self._width = 0
        self._strips.clear()
        self.held = 0
        self.term, self._match = "", None
        self.following = True
        self.virtual_size = Size(0, 0)
        self.border_title = title

    def render_lines(self, crop: Region) -> list[Strip]:
        self._style = self.rich_style  # once per frame: it costs as much as a line
        return super().render_lines(crop)

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        index = scroll_y + y
        width = self.scrollable_content_region.width  # not under the vertical scrollbar
        if index >= len(self.lines):
            return Strip.blank(width, self._style)
        number = self._dropped + index
        key = (number, hash((self.term, self._match == number)))
        strip = self._strips.get(key)
        if strip is None:
            strip = self._strips[key] = self._strip(self.lines[index], number)
        return marked_crop(strip, scroll_x, width, self._style).apply_offsets(scroll_x, index)

    def _strip(self, line: str, number: int) -> Strip:
        if not self.term and self._match != number:  # the common case: plain text
            return Strip([Segment(line)], len(line) if line.isascii() else cell_len(line))
        text = Text(line, no_wrap=True, end="")
        if self.term:
            text.highlight_words([self.term], style="black on yellow", case_sensitive=False)
        if self._match == number:
            text.stylize("reverse")
        return Strip(list(text.render(self.app.console)) or [Segment("")])

    # -- follow mode -----------------------------------------------------------------
    # The reader's intent pauses follow mode at once, before any (animated) scroll moves:
    # a batch landing mid-animation must be held, not scrolled to.
    def _pause(self) -> None:
        if self.following and self.scroll_y > 0:
            self.following = False

    def action_scroll_up(self) -> None:
        self._pause()
        super().action_scroll_up()

    def action_page_up(self) -> None:
        self._pause()
        super().action_page_up()

    def action_scroll_home(self) -> None:
        self._pause()
        super().action_scroll_home()

    def _on_mouse_scroll_up(self, event: events.MouseScrollUp) -> None:
        if not (event.ctrl or event.shift):
            self._pause()  # Widget's own handler, called next, does the scrolling

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        if new_value < old_value and self.following and not self.is_vertical_scroll_end:
            self.following = False  # the scrollbar dragged up: keep the reader's place

    def action_follow(self) -> None:
        held = list(self._held)
        self._held.clear()
        self.held = 0
        self.following = True
        if held:
            self._append(held)
        self.scroll_end(animate=False, x_axis=False)

    # -- search ----------------------------------------------------------------------
    def search(self, term: str) -> None:
        """Highlight `term` and jump to its newest occurrence (follow mode pauses)."""
        self.term = term
        self._match = None
        self.action_next_match(-1)
        self.refresh()

    def action_next_match(self, step: int) -> None:
        if not self.term:
            return
        needle = self.term.lower()
        lines = self.lines
        index = (self._match - self._dropped if self._match is not None
                 and self._match >= self._dropped else len(lines)) + step
        while 0 <= index < len(lines):
            if needle in lines[index].lower():
                self._match = self._dropped + index
                self.following = False
                self.scroll_to(y=max(0, index - self.size.height // 2), animate=False,
                               immediate=True)
                self._caption()
                self.refresh()
                return
            index += step
        self.notify(f"no {'older' if step < 0 else 'newer'} match for {self.term!r}",
                    severity="warning", timeout=2)

    def watch_following(self) -> None:
        self._caption()

    def watch_held(self) -> None:
        self._caption()

    def _caption(self) -> None:
        found = (f" · match at line {self._match + 1} (n/N)"
                 if self.term and self._match is not None else "")
        if self.following:
            self.border_subtitle = f"following{found}"
        else:
            self.border_subtitle = f"paused · {self.held:,} new lines · f to follow{found}"
