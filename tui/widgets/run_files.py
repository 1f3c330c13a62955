"""The Files tab's tree of a run's folder, every name the Case's to choose: shown inert,
links as links, never entered or opened."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual.binding import Binding, BindingType
from textual.widgets import DirectoryTree
from textual.widgets.directory_tree import DirEntry
from textual.widgets.tree import TreeNode
from textual.worker import Worker

from tui.terminal_text import inert


class RunFilesTree(DirectoryTree):
    """The run's files: every name is the Case's to choose, so shown through `safe()`. A
    link is shown as a link (`name → target`) and never entered or opened: the Case may
    point one at /, /etc/shadow or the `*_FILE` secret (issue 22). Only folders that
    really are folders (lstat) expand, and a listing that would leave the run (a folder
    swapped for a link since) is not made."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("j", "cursor_down", "Down", show=False),
        Binding("k", "cursor_up", "Up", show=False),
        Binding("g", "scroll_home", "First", show=False),
        Binding("G", "scroll_end", "Last", show=False),
    ]
    """j/k/g/G as on every other list (Tree names its actions as the scroll keys do)."""

    def process_label(self, label: str | Text) -> Text:
        return super().process_label(inert(label.plain if isinstance(label, Text) else label))

    @staticmethod
    def _safe_is_dir(path: Path) -> bool:
        try:
            return stat.S_ISDIR(path.lstat().st_mode)
        except OSError:
            return False

    def _populate_node(self, node: TreeNode[DirEntry], content: Iterable[Path]) -> None:
        node.remove_children()
        for path in content:
            node.add(link_label(path), data=DirEntry(path), allow_expand=self._safe_is_dir(path))
        node.expand()

    def _directory_content(self, location: Path, worker: Worker) -> Iterator[Path]:
        root = Path(self.path).resolve()
        if location != root and not location.is_relative_to(root):
            return iter(())  # resolved out of the run: a link planted since it was listed
        return super()._directory_content(location, worker)


def link_label(path: Path) -> str:
    """A tree entry's name; a link's with where it points (its text, never followed)."""
    if not path.is_symlink():
        return path.name
    try:
        return f"{path.name} → {os.readlink(path)}"
    except OSError:
        return f"{path.name} → ?"
