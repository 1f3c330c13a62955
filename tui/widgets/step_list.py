"""The Conversation tab's list of steps: one line a step (#, who, tokens, latency, model, first
line) under a header that stays put, a cursor, zebra stripes.

Drawn with Textual's Line API, as toolong draws a log: only the lines in view are made, when
they are drawn, so adding 5,000 steps costs a list append each and a screen of rows. A
DataTable measures every cell of every row it holds on each change (about 60% of a jump to
the middle of a 5,000-step run, and most of the tab's first frame), which is the cost this
widget does not have. The widths of the figures' columns grow with what was added; the
first line takes what is left (no horizontal scroll, the figures stay in view at 80
columns).

Every cell is made by `step_row` (tui/widgets/step_view.py): through `inert()` and the
display redactor, never as markup."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Region, Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from core.evidence.steps import Step
from tui.widgets.keys import LIST_KEYS
from tui.widgets.step_view import MODEL_W, MODEL_W_NARROW, figures, step_row

HEADER = ("#", "who", "tokens", "latency", "model", "first line")
GAP = 2
"""Columns between two cells."""
WHO_W = 9
"""'system', 'agent ⚙ !': the widest a `who` cell gets."""


class StepList(ScrollView, can_focus=True):
    """The steps, one line each (see the module docstring). Public surface:
    `add(steps)`, `changed(step)`, `clear()`, `row_count`, `cursor_row`, `move_cursor(row)`,
    `cells(row)`; posts `StepList.Highlighted` when the cursor moves to a row."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "step-list--header", "step-list--cursor", "step-list--even-row"}
    DEFAULT_CSS = """
    StepList {
        background: $surface;
        color: $foreground;
        &:focus {
            background-tint: $foreground 5%;
            & > .step-list--cursor {
                background: $block-cursor-background;
                color: $block-cursor-foreground;
                text-style: $block-cursor-text-style;
            }
        }
        & > .step-list--header { text-style: bold; background: $panel; color: $foreground; }
        & > .step-list--even-row { background: $surface-lighten-1 50%; }
        &:dark > .step-list--even-row { background: $surface-darken-1 40%; }
        & > .step-list--cursor {
            background: $block-cursor-blurred-background;
            color: $block-cursor-blurred-foreground;
            text-style: $block-cursor-blurred-text-style;
        }
    }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "cursor_up", "Up", show=False),
        Binding("down", "cursor_down", "Down", show=False),
        Binding("pageup", "page_up", "Page up", show=False),
        Binding("pagedown", "page_down", "Page down", show=False),
        Binding("home", "scroll_top", "First", show=False),
        Binding("end", "scroll_bottom", "Last", show=False),
        *LIST_KEYS,
    ]

    cursor_row: reactive[int] = reactive(0, repaint=False, init=False)

    class Highlighted(Message):
        """The cursor is on `row` (as DataTable.RowHighlighted: also for the first row)."""

        def __init__(self, step_list: StepList, row: int) -> None:
            super().__init__()
            self.step_list = step_list
            self.row = row

        @property
        def control(self) -> StepList:
            return self.step_list

    def __init__(self, redact: Callable[[str], str], **kw: object) -> None:
        super().__init__(**kw)  # type: ignore[arg-type]
        self.redact = redact
        self._steps: list[Step] = []
        self._tokens_w = len(HEADER[2])
        self._latency_w = len(HEADER[3])
        self._model_w = len(HEADER[4])
        self._strips: dict[tuple[int, tuple[int, ...], str, bool], Strip] = {}
        """(row, the columns' widths, its component class, focused) -> the line drawn, for
        the rows drawn lately (a few screens' worth: dropped whole past CACHED), so a cursor
        move or a scroll draws only the lines it brings."""

    CACHED = 600

    # -- the rows ------------------------------------------------------------------------
    @property
    def row_count(self) -> int:
        return len(self._steps)

    def add(self, steps: list[Step]) -> None:
        """Rows for these steps, after the others. The first row added gets the cursor."""
        if not steps:
            return
        first = not self._steps
        self._steps.extend(steps)
        for step in steps:
            self._widen(step)
        self._sized()
        if first:
            self.post_message(self.Highlighted(self, self.cursor_row))

    def changed(self, step: Step) -> None:
        """`step` (already a row) changed: a tool result arrived for it."""
        if 0 <= step.index < len(self._steps):
            self._steps[step.index] = step
            self._widen(step)
            self._strips.clear()  # its widths may have changed every line
            self.refresh()

    def clear(self) -> None:
        self._steps.clear()
        self._strips.clear()
        self.set_reactive(StepList.cursor_row, 0)
        self._sized()

    def cells(self, row: int) -> tuple[str, ...]:
        """The row's cells as plain text (what a user reads there)."""
        return tuple(c.plain for c in step_row(self._steps[row], self.redact,
                                               self.app.size.width or 160))

    def _widen(self, step: Step) -> None:
        tokens, latency = figures(step)
        self._tokens_w = max(self._tokens_w, len(tokens))
        self._latency_w = max(self._latency_w, len(latency))
        self._model_w = max(self._model_w, min(len(step.model or ""), MODEL_W))

    def _sized(self) -> None:
        self.virtual_size = Size(self.size.width, len(self._steps) + 1)
        self.refresh()

    # -- the cursor ----------------------------------------------------------------------
    def move_cursor(self, row: int) -> None:
        """The cursor to `row` (clamped), scrolled into view."""
        if not self._steps:
            return
        self.cursor_row = max(0, min(row, len(self._steps) - 1))
        self._into_view()

    def watch_cursor_row(self, old: int, new: int) -> None:
        top = self.scroll_offset.y
        for row in (old, new):  # only the two lines change (a scroll redraws the rest)
            self.refresh(Region(0, row - top + 1, self.size.width, 1))
        if 0 <= new < len(self._steps):
            self.post_message(self.Highlighted(self, new))

    def _into_view(self) -> None:
        """Scroll so the cursor's line shows below the header."""
        top, shown = self.scroll_offset.y, max(1, self.scrollable_content_region.height - 1)
        if self.cursor_row < top:
            self.scroll_to(y=self.cursor_row, animate=False, immediate=True, force=True)
        elif self.cursor_row >= top + shown:
            self.scroll_to(y=self.cursor_row - shown + 1, animate=False, immediate=True,
                           force=True)

    def _page(self) -> int:
        return max(1, self.scrollable_content_region.height - 2)

    def action_cursor_up(self) -> None:
        self.move_cursor(self.cursor_row - 1)

    def action_cursor_down(self) -> None:
        self.move_cursor(self.cursor_row + 1)

    def action_page_up(self) -> None:
        self.move_cursor(self.cursor_row - self._page())

    def action_page_down(self) -> None:
        self.move_cursor(self.cursor_row + self._page())

    def action_scroll_top(self) -> None:
        self.move_cursor(0)

    def action_scroll_bottom(self) -> None:
        self.move_cursor(len(self._steps) - 1)

    def on_click(self, event: events.Click) -> None:
        row = event.y - 1 + self.scroll_offset.y
        if event.y >= 1 and 0 <= row < len(self._steps):
            self.focus()
            self.move_cursor(row)

    def _on_resize(self, event: events.Resize) -> None:
        self.virtual_size = Size(event.size.width, len(self._steps) + 1)

    # -- drawing -------------------------------------------------------------------------
    def _widths(self, width: int) -> list[int]:
        number = max(len(HEADER[0]), len(f"{len(self._steps)}"))
        model = min(self._model_w, MODEL_W if width >= 120 else MODEL_W_NARROW)
        fixed = [number, WHO_W, self._tokens_w, self._latency_w, model]
        rest = width - sum(fixed) - GAP * len(fixed) - 2
        return [*fixed, max(rest, 0)]

    def _line(self, cells: tuple[Text, ...], widths: list[int], width: int,
              base: Style) -> Strip:
        line = Text(" ", no_wrap=True, end="")
        for n, (cell, w) in enumerate(zip(cells, widths, strict=True)):
            piece = cell.copy()
            piece.truncate(w, overflow="ellipsis", pad=n < len(cells) - 1)
            if n in (2, 3):  # figures: right-aligned
                piece = Text(" " * (w - piece.cell_len)) + piece
            line.append_text(piece)
            if n < len(cells) - 1:
                line.append(" " * GAP)
        segments = list(line.render(self.app.console))
        return Strip(Segment.apply_style(segments, base)).crop_extend(0, width, base)

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        widths = self._widths(width)
        if y == 0:
            header = self.get_component_rich_style("step-list--header")
            return self._line(tuple(Text(h) for h in HEADER), widths, width, header)
        row = self.scroll_offset.y + y - 1
        base = self.rich_style
        if not 0 <= row < len(self._steps):
            return Strip.blank(width, base)
        kind = "step-list--cursor" if row == self.cursor_row else \
            "step-list--even-row" if row % 2 else ""
        key = (row, tuple(widths), kind, self.has_focus)
        strip = self._strips.get(key)
        if strip is None:
            style = base + self.get_component_rich_style(kind) if kind else base
            if len(self._strips) > self.CACHED:
                self._strips.clear()
            strip = self._strips[key] = self._line(
                step_row(self._steps[row], self.redact, width), widths, width, style)
        return strip

    def notify_style_update(self) -> None:
        """A theme or focus change restyles every line."""
        self._strips.clear()
        super().notify_style_update()
