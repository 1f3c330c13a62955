"""What a Case changed: a run's workspace against the workspace it started from.

The start is the run's own copy, `task/workspace/` (RunPaths.start_workspace), taken from the
very copy the Case received before it started: hashed with the rest and under the run's
attestation, so the diff needs nothing outside the run and no task folder that may have
changed since. The fake baseline's workspace is compared against the same start.

Everything here is a hostile party's: a name may carry escape sequences (the caller shows it
through the terminal-safety filter), a link is named with its target and never followed, a
FIFO, socket or device is named and never opened, each read is bounded (core/evidence/
untrusted.py), and a tree of a million files or a file of a terabyte costs a bounded walk,
not the user's afternoon.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import stat
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from core.evidence.rundir import RunPaths
from core.evidence.untrusted import kind_of, open_regular, read_bounded

SHOW_LIMIT = 256 * 1024
"""A file above this many bytes (either side) is named as huge, its diff not shown: difflib
is quadratic on the worst inputs, and no one reads a 10 MB diff in a terminal."""
COMPARE_LIMIT = 64 * 1024 * 1024
"""Past this, two files of the same size are not read to be compared (a Case can leave a
sparse file of terabytes): the entry says so."""
MAX_ENTRIES = 20_000
"""Entries walked per tree: past it, the walk stops and the diff says it is partial."""
MAX_DIFF_LINES = 5_000
"""Lines of one file's unified diff kept; the rest is cut with a line saying how many."""

Change = Literal["added", "removed", "changed"]
Kind = Literal["text", "binary", "huge", "link", "special", "folder", "unreadable"]


class FileChange(BaseModel):
    """One path that differs between the two trees."""

    path: str = Field(description="Relative to the workspace, '/'-separated; as the Case "
                                  "named it (may hold any character: show it filtered)")
    change: Change
    kind: Kind = Field(description="text: `diff` holds a unified diff; binary/huge: named, "
                                   "not shown; link: `note` names its target, never "
                                   "followed; special: a FIFO, socket or device, never opened")
    note: str = ""
    added_lines: int = 0
    removed_lines: int = 0
    diff: str = ""


class WorkspaceDiff(BaseModel):
    """A workspace against its start: `files` sorted by path, with counts."""

    before: str = Field(description="The starting tree, relative to the run")
    after: str = Field(description="The tree compared with it, relative to the run")
    files: list[FileChange] = []
    added: int = 0
    removed: int = 0
    changed: int = 0
    unchanged: int = 0
    problem: str | None = Field(default=None, description="Why the diff is missing or partial")


class _Entry:
    """What is at one path, by lstat: enough to tell whether it changed."""

    __slots__ = ("kind", "mode", "size", "target")

    def __init__(self, st: os.stat_result, target: str = "") -> None:
        self.mode = st.st_mode
        self.size = st.st_size
        self.target = target
        self.kind = ("folder" if stat.S_ISDIR(st.st_mode) else "link" if stat.S_ISLNK(st.st_mode)
                     else "file" if stat.S_ISREG(st.st_mode) else "special")

    def describe(self) -> str:
        if self.kind == "link":
            return f"a symbolic link to {self.target}"
        if self.kind == "file":
            return f"{self.size:,} bytes"
        return kind_of(self.mode)


def _walk(root: Path) -> tuple[dict[str, _Entry], bool]:
    """Every entry under `root` by relative path, never following a link; and whether the
    walk stopped at MAX_ENTRIES."""
    out: dict[str, _Entry] = {}
    pending = [""]
    while pending:
        rel = pending.pop()
        try:
            with os.scandir(root / rel if rel else root) as it:
                entries = list(it)
        except OSError:
            continue  # a folder that cannot be listed: its entries stay unknown
        for entry in entries:
            if len(out) >= MAX_ENTRIES:
                return out, True
            path = f"{rel}/{entry.name}" if rel else entry.name
            try:
                st = entry.stat(follow_symlinks=False)
                target = os.readlink(entry.path) if stat.S_ISLNK(st.st_mode) else ""
            except OSError:
                continue
            out[path] = _Entry(st, target)
            if stat.S_ISDIR(st.st_mode):
                pending.append(path)
    return out, False


def _digest(root: Path, rel: str) -> str:
    sha = hashlib.sha256()
    with open_regular(rel, beneath=root) as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


def _text(data: bytes) -> str | None:
    """The file as text, or None when it is binary (a NUL, or not UTF-8)."""
    if b"\0" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _lines(text: str) -> list[str]:
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith(("\n", "\r")):
        lines[-1] += "\n\\ No newline at end of file\n"
    return lines


def unified(path: str, old: str, new: str) -> tuple[str, int, int]:
    """`old` → `new` as a unified diff (git's a/ b/ names), cut at MAX_DIFF_LINES; with the
    counts of lines added and removed."""
    out: list[str] = []
    plus = minus = 0
    for line in difflib.unified_diff(_lines(old), _lines(new), f"a/{path}", f"b/{path}"):
        if line.startswith("+") and not line.startswith("+++"):
            plus += 1
        elif line.startswith("-") and not line.startswith("---"):
            minus += 1
        if len(out) < MAX_DIFF_LINES:
            out.append(line if line.endswith("\n") else line + "\n")
    if len(out) >= MAX_DIFF_LINES:
        out.append(f"… cut at {MAX_DIFF_LINES:,} lines\n")
    return "".join(out), plus, minus


def _read(root: Path, rel: str) -> bytes | str:
    """The file's bytes, or why they cannot be read."""
    try:
        return read_bounded(rel, SHOW_LIMIT, beneath=root)
    except OSError as exc:
        return f"unreadable ({exc.strerror or exc})"


def _content_change(before: Path, after: Path, rel: str, old: _Entry | None,
                    new: _Entry | None) -> FileChange | None:
    """Two regular files (or one, added or removed): None when the same."""
    change: Change = "added" if old is None else "removed" if new is None else "changed"
    big = max(e.size for e in (old, new) if e is not None) > SHOW_LIMIT
    if old is not None and new is not None:
        if old.size == new.size and old.size > COMPARE_LIMIT:
            return FileChange(path=rel, change=change, kind="huge",
                              note=f"{new.size:,} bytes: too large to compare")
        if old.size == new.size:
            try:
                same = _digest(before, rel) == _digest(after, rel)
            except OSError as exc:
                return FileChange(path=rel, change=change, kind="unreadable",
                                  note=f"unreadable ({exc.strerror or exc})")
            mode_note = (f"mode {stat.S_IMODE(old.mode):o} → {stat.S_IMODE(new.mode):o}"
                         if stat.S_IMODE(old.mode) != stat.S_IMODE(new.mode) else "")
            if same:
                return (FileChange(path=rel, change=change, kind="text", note=mode_note)
                        if mode_note else None)
    if big:
        sizes = " → ".join(e.describe() for e in (old, new) if e is not None)
        return FileChange(path=rel, change=change, kind="huge",
                          note=f"{sizes}: over {SHOW_LIMIT // 1024} KiB, not shown")
    old_data = _read(before, rel) if old is not None else b""
    new_data = _read(after, rel) if new is not None else b""
    for data in (old_data, new_data):
        if isinstance(data, str):
            return FileChange(path=rel, change=change, kind="unreadable", note=data)
    assert isinstance(old_data, bytes) and isinstance(new_data, bytes)
    old_text, new_text = _text(old_data), _text(new_data)
    if old_text is None or new_text is None:
        sizes = " → ".join(e.describe() for e in (old, new) if e is not None)
        return FileChange(path=rel, change=change, kind="binary", note=f"binary, {sizes}")
    body, plus, minus = unified(rel, old_text, new_text)
    note = ""
    if old is not None and new is not None and stat.S_IMODE(old.mode) != stat.S_IMODE(new.mode):
        note = f"mode {stat.S_IMODE(old.mode):o} → {stat.S_IMODE(new.mode):o}"
    return FileChange(path=rel, change=change, kind="text", note=note, added_lines=plus,
                      removed_lines=minus, diff=body)


def _entry_change(before: Path, after: Path, rel: str, old: _Entry | None,
                  new: _Entry | None) -> FileChange | None:
    if (old is None or old.kind == "file") and (new is None or new.kind == "file"):
        return _content_change(before, after, rel, old, new)
    change: Change = "added" if old is None else "removed" if new is None else "changed"
    if old is not None and new is not None:
        if old.kind == new.kind and (old.kind == "folder" or (
                old.kind == "link" and old.target == new.target) or (
                old.kind == "special" and stat.S_IFMT(old.mode) == stat.S_IFMT(new.mode))):
            return None
        note = f"{old.describe()} → {new.describe()}"
    else:
        note = (new or old).describe()  # type: ignore[union-attr]
    shown = new if new is not None else old
    assert shown is not None
    kind: Kind = ("link" if shown.kind == "link" else "folder" if shown.kind == "folder"
                  else "special" if shown.kind == "special" else "binary")
    return FileChange(path=rel, change=change, kind=kind, note=note)


def display_name(rel: str) -> str:
    """A name as read from disk (undecodable bytes kept as surrogates, so that reading it
    again opens the same file) made printable and JSON-safe: each such byte as `\\xNN`. The
    entry's note says so, since a name may also spell `\\xNN` itself."""
    return os.fsencode(rel).decode("utf-8", "backslashreplace")


def diff_trees(before: Path, after: Path, *, label_before: str, label_after: str
               ) -> WorkspaceDiff:
    """`after` against `before`: every path added, removed or changed, in path order."""
    result = WorkspaceDiff(before=label_before, after=label_after)
    for root, label in ((before, label_before), (after, label_after)):
        if not root.is_dir() or root.is_symlink():
            result.problem = f"{label}: no such folder in the run"
            return result
    old, cut_old = _walk(before)
    new, cut_new = _walk(after)
    if cut_old or cut_new:
        result.problem = (f"more than {MAX_ENTRIES:,} entries: the diff covers the first "
                          f"{MAX_ENTRIES:,} of each tree")
    for rel in sorted(old.keys() | new.keys()):
        a, b = old.get(rel), new.get(rel)
        if a is not None and b is not None and a.kind == "folder" and b.kind == "folder":
            continue
        if (a is not None and a.kind == "folder" and b is None) or (
                b is not None and b.kind == "folder" and a is None):
            continue  # the files inside say it; a new empty folder is not a change worth a row
        change = _entry_change(before, after, rel, a, b)
        if change is None:
            result.unchanged += 1
            continue
        change.note = display_name(change.note)  # a link's target: any bytes too
        shown = display_name(rel)
        if shown != rel:  # read by its real name above; shown by one that can be printed
            change.path = shown
            change.diff = change.diff.replace(f"a/{rel}", f"a/{shown}").replace(
                f"b/{rel}", f"b/{shown}")
            change.note = "; ".join(filter(None, ["the name is not UTF-8 (\\xNN: its bytes)",
                                                  change.note]))
        result.files.append(change)
        setattr(result, change.change, getattr(result, change.change) + 1)
    return result


def _link_on_the_way(run_dir: Path, tree: Path) -> str | None:
    """The first folder from `run_dir` down to `tree` that is a link, by its path relative to
    the run; None when there is none (a missing one is not a link: the caller says so)."""
    here = run_dir
    for part in tree.relative_to(run_dir).parts:
        here = here / part
        if here.is_symlink():
            return here.relative_to(run_dir).as_posix()
    return None


def run_diff(run_dir: Path, *, baseline: bool = False) -> WorkspaceDiff:
    """A run's workspace (or its fake baseline's) against the workspace it started from."""
    paths = RunPaths(run_dir)
    after = paths.baseline / "workspace" if baseline else paths.workspace
    start = paths.start_workspace
    label_before = start.relative_to(run_dir).as_posix()
    label_after = after.relative_to(run_dir).as_posix()
    for tree, label in ((start, label_before), (after, label_after)):
        link = _link_on_the_way(run_dir, tree)
        if link is not None:
            return WorkspaceDiff(before=label_before, after=label_after,
                                 problem=f"{label}: {link} is a symbolic link, never followed "
                                         "(something other than the harness made it)")
    if not os.path.lexists(start):
        return WorkspaceDiff(before=label_before, after=label_after,
                             problem=f"{label_before}: this run kept no starting workspace "
                                     "(made before the harness kept one, or blocked before "
                                     "the Case started)")
    return diff_trees(start, after, label_before=label_before, label_after=label_after)
