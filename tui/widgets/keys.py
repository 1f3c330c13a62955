"""Keys people already know (lazygit, k9s, less): j/k, g/G, on every list and log, beside the
arrows, PgUp/PgDn and Home/End the widgets already take."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.binding import Binding, BindingType
from textual.widgets import DataTable

LIST_KEYS: list[BindingType] = [
    Binding("j", "cursor_down", "Down", show=False),
    Binding("k", "cursor_up", "Up", show=False),
    Binding("g", "scroll_top", "First", show=False),
    Binding("G", "scroll_bottom", "Last", show=False),
]
SCROLL_KEYS: list[BindingType] = [
    Binding("j", "scroll_down", "Down", show=False),
    Binding("k", "scroll_up", "Up", show=False),
    Binding("g", "scroll_home", "Top", show=False),
    Binding("G", "scroll_end", "Bottom", show=False),
]


class KeyedTable(DataTable[str | Text]):
    """A DataTable with the list keys."""

    BINDINGS: ClassVar[list[BindingType]] = LIST_KEYS
