"""A whole file, however large, viewed lazily: line offsets are indexed in a worker and
only the lines on screen are read, cleaned and redacted."""

from __future__ import annotations

import contextlib
import shlex
import shutil
from array import array
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import BinaryIO, ClassVar

from rich.highlighter import JSONHighlighter
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import on, work
from textual.binding import Binding, BindingType
from textual.cache import LRUCache
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.worker import get_current_worker

from core.evidence.untrusted import describe, open_regular
from tui.terminal_text import MAX_LINE, clean_lines, inert
from tui.widgets.case_log import marked_crop
from tui.widgets.keys import SCROLL_KEYS

INDEX_CHUNK = 1 << 20
JSON_COLOURS = JSONHighlighter()
"""Keys, strings, numbers and literals of the run's JSON files (manifest, report, trace,
ledgers) in colour; the text itself is what the file holds, made inert."""


def viewer_command(env: Mapping[str, str]) -> list[str] | None:
    """What `o` opens a file with: $VISUAL, $EDITOR, then $PAGER, then `less` if on PATH
    (a user with no editor set still gets to read the whole file); None when none is."""
    for name in ("VISUAL", "EDITOR", "PAGER"):
        with contextlib.suppress(ValueError):  # unbalanced quotes: not a command
            if words := shlex.split(env.get(name) or ""):
                return words
    less = shutil.which("less")
    return [less] if less else None


class FileView(ScrollView, can_focus=True):
    DEFAULT_CSS = """
    FileView {
        border: round $panel-lighten-2;
        height: 1fr;
        &:focus { border: round $accent; }
    }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("n", "next_match(1)", "Next match", show=False),
        Binding("N", "next_match(-1)", "Previous match", show=False),
        *SCROLL_KEYS,
    ]

    class Indexed(Message):
        def __init__(self, offsets: array, done: bool) -> None:
            super().__init__()
            self.offsets = offsets
            self.done = done

    class Matches(Message):
        def __init__(self, term: str, lines: list[int]) -> None:
            super().__init__()
            self.term = term
            self.lines = lines

    def __init__(self, redact: Callable[[str], str], *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.redact = redact
        self.path: Path | None = None
        self.root: Path | None = None
        self._offsets = array("q", [0])
        self._cache: LRUCache[int, str] = LRUCache(1024)
        self._term = ""
        self._matches: list[int] = []
        self._match = -1

    @property
    def line_count(self) -> int:
        return max(0, len(self._offsets) - 1)

    def load(self, path: Path, root: Path | None = None) -> None:
        """View `path`; with `root` (the run's folder) no folder between them may be a
        link either. Only a regular file is opened: a link shows where it points, a FIFO,
        socket or device what it is (what a Case left is hostile, issue 22)."""
        self.path, self.root = None, root
        self.border_title = inert(path.name)
        self._offsets = array("q", [0])
        self._cache.clear()
        self._matches, self._match, self._term = [], -1, ""
        self.virtual_size = Size(0, 0)
        self.scroll_to(0, 0, animate=False)
        what = describe(path)
        if what == "missing":
            self.border_subtitle = "not written in this run"
            return
        if what != "a regular file":
            self.border_subtitle = inert(f"{what}: not opened")
            return
        self.path = path
        self._index(path)

    def open_viewed(self) -> BinaryIO:
        """The viewed file opened again as a hostile file (no link followed on the way
        from the run's folder, no FIFO waited on); OSError when it is no longer one."""
        if self.path is None:
            raise OSError(0, "no file viewed")
        if self.root is not None and self.path.is_relative_to(self.root):
            return open_regular(self.path.relative_to(self.root), beneath=self.root)
        return open_regular(self.path)

    @work(thread=True, exclusive=True, group="file-index", exit_on_error=False)
    def _index(self, path: Path) -> None:
        """Find every line start; post the first screenful at once, then the rest."""
        worker = get_current_worker()
        offsets = array("q", [0])
        posted_first = False
        try:
            with self.open_viewed() as fh:
                base = 0
                while chunk := fh.read(INDEX_CHUNK):
                    if worker.is_cancelled:
                        return
                    pos = chunk.find(b"\n")
                    while pos != -1:
                        offsets.append(base + pos + 1)
                        pos = chunk.find(b"\n", pos + 1)
                    base += len(chunk)
                    if not posted_first:
                        posted_first = True
                        self.post_message(self.Indexed(array("q", offsets), done=False))
                if offsets[-1] != base:
                    offsets.append(base)  # a last line without its newline
        except OSError as exc:
            self.app.call_from_thread(self.notify, f"{path.name}: {exc.strerror}",
                                      severity="error")
            return
        self.post_message(self.Indexed(offsets, done=True))

    @on(Indexed)
    def _indexed(self, message: Indexed) -> None:
        self._offsets = message.offsets
        self._cache.clear()
        self.virtual_size = Size(MAX_LINE, self.line_count)
        self.border_subtitle = (f"{self.line_count:,} lines"
                                + ("" if message.done else " (indexing…)"))
        self.refresh()

    def line_text(self, number: int) -> str:
        text = self._cache.get(number)
        if text is None and self.path is not None:
            start, end = self._offsets[number], self._offsets[number + 1]
            window = MAX_LINE * 4
            cut = end - start > window
            try:
                with self.open_viewed() as fh:
                    fh.seek(start)
                    raw = fh.read(min(end - start, window))
                    if cut and b"\r" in raw:
                        # a `\r`-rewritten line shows its last state: read its end instead
                        fh.seek(end - window)
                        tail = fh.read(window)
                        last = tail.rfind(b"\r", 0, len(tail.rstrip(b"\r\n")))
                        if last != -1:  # else its last state alone is too long: the start
                            raw, cut = tail[last:], False
            except OSError as exc:  # replaced since it was indexed (by a link, a FIFO)
                return f"[unreadable now: {exc.strerror or exc}]"
            text = clean_lines([raw], self.redact)[0]
            if cut and "[cut:" not in text:
                text += " … [cut]"
            self._cache[number] = text
        return text or ""

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        number = scroll_y + y
        width = self.scrollable_content_region.width  # not under the vertical scrollbar
        style = self.rich_style
        if number >= self.line_count:
            return Strip.blank(width, style)
        text = Text(self.line_text(number), no_wrap=True, style=style)
        if self.path is not None and self.path.suffix in (".json", ".jsonl"):
            JSON_COLOURS.highlight(text)
        if self._term:
            text.highlight_words([self._term], style="black on yellow", case_sensitive=False)
        if self._matches and 0 <= self._match < len(self._matches) and (
            self._matches[self._match] == number
        ):
            text.stylize("reverse")
        segments = list(text.render(self.app.console))
        strip = Strip(segments or [Segment("", style)])
        return marked_crop(strip, scroll_x, width, Style()).apply_offsets(scroll_x, number)

    # -- search ---------------------------------------------------------------------
    def search(self, term: str) -> None:
        self._term = term
        self._matches, self._match = [], -1
        self.refresh()
        if term and self.path is not None:
            self._find(self.path, term)

    @work(thread=True, exclusive=True, group="file-search", exit_on_error=False)
    def _find(self, path: Path, term: str) -> None:
        worker = get_current_worker()
        needle = term.lower().encode("utf-8")
        found: list[int] = []
        try:
            fh = self.open_viewed()
        except OSError:
            return
        with fh:
            for number, raw in enumerate(fh):
                if worker.is_cancelled:
                    return
                if needle in raw.lower():
                    found.append(number)
        self.post_message(self.Matches(term, found))

    @on(Matches)
    def _matched(self, message: Matches) -> None:
        if message.term != self._term:
            return
        self._matches = message.lines
        if not self._matches:
            self.notify(f"no match for {message.term!r}", severity="warning", timeout=2)
            return
        self.action_next_match(1)

    def action_next_match(self, step: int) -> None:
        if not self._matches:
            return
        self._match = (self._match + step) % len(self._matches)
        line = self._matches[self._match]
        self.scroll_to(y=max(0, line - self.size.height // 2), animate=False)
        self.border_subtitle = (f"{self.line_count:,} lines · match {self._match + 1}/"
                                f"{len(self._matches)} at line {line + 1} (n/N)")
        self.refresh()
