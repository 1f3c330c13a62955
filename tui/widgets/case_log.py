"""The Case's log, streaming: a bounded ring of recent lines that follows the end.

Scrolling up pauses follow mode: new lines are then held back (bounded too) and counted,
so the text under the reader's eyes stays put; `f` or End resumes and shows them.
"""

from __future__ import annotations

from collections import deque
from typing import ClassVar

from rich.highlighter import Highlighter
from rich.text import Text
from textual.binding import Binding, BindingType
from textual.reactive import reactive
from textual.widgets import Log


class TermHighlighter(Highlighter):
    def __init__(self, term: str = "") -> None:
        self.term = term

    def highlight(self, text: Text) -> None:
        if self.term:
            text.highlight_words([self.term], style="black on yellow", case_sensitive=False)


class CaseLog(Log):
    DEFAULT_CSS = """
    CaseLog {
        border: round $panel-lighten-2;
        height: 1fr;
        &:focus { border: round $accent; }
    }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f", "follow", "Follow"),
        Binding("end", "follow", "Follow", show=False),
        Binding("n", "next_match(-1)", "Older match", show=False),
        Binding("N", "next_match(1)", "Newer match", show=False),
    ]

    following: reactive[bool] = reactive(True)
    held: reactive[int] = reactive(0)
    term: reactive[str] = reactive("")

    def __init__(self, ring: int, *, id: str | None = None) -> None:
        super().__init__(max_lines=ring, auto_scroll=True, highlight=True, id=id)
        self.highlighter = TermHighlighter()
        self._held: deque[str] = deque(maxlen=ring)
        self._match: int | None = None

    def on_mount(self) -> None:
        self.border_title = "Case log"
        self._caption()

    def add_lines(self, lines: list[str]) -> None:
        """Append a batch (one per frame, never one call per line)."""
        if not lines:
            return
        if self.following:
            self.write_lines(lines, scroll_end=True)
        else:
            self._held.extend(lines)
            self.held += len(lines)

    def reset(self, title: str) -> None:
        self.clear()
        self._held.clear()
        self.held = 0
        self.following = True
        self.border_title = title

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        if new_value < old_value and self.following and not self.is_vertical_scroll_end:
            self.following = False  # the reader scrolled up: keep their place

    def action_follow(self) -> None:
        held = list(self._held)
        self._held.clear()
        self.held = 0
        self.following = True
        self.write_lines(held, scroll_end=True)
        self.scroll_end(animate=False, immediate=True, x_axis=False)

    def search(self, term: str) -> None:
        """Highlight `term` and jump to its newest occurrence (follow mode pauses)."""
        self.term = term
        self.highlighter.term = term
        self.notify_style_update()
        self._match = None
        self.action_next_match(-1)
        self.refresh()

    def action_next_match(self, step: int) -> None:
        if not self.term:
            return
        needle = self.term.lower()
        lines = self.lines
        start = self._match if self._match is not None else len(lines)
        y = start + step
        while 0 <= y < len(lines):
            if needle in lines[y].lower():
                self._match = y
                self.following = False
                self.scroll_to(y=max(0, y - self.size.height // 2), animate=False,
                               immediate=True)
                self._caption()
                return
            y += step
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
