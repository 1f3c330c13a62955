"""The end-of-run leak scan of a whole run directory, within a budget of time and bytes.

Why a budget: the Case decides what the run directory holds. 100,000 files, a 4 GiB sparse
file, a file held by a lease: each once cost minutes after the Case, outside `--timeout`,
in a report that said the run took seconds. Now the scan has a share of `--timeout` (the
Case the rest) and a byte budget; what it cannot read within them is listed in the
report's `scan.unscanned` with the reason, and such a run cannot pass: a form of the
secret may be in what was not read. Sparse files are read by their data only
(core/evidence/extents.py) and listed in `scan.sparse`.

One pass over the tree (os.scandir, links never followed): every entry's name, every
link's target text, every regular file's bytes; the content digest of each file read is
kept for the report's artifact list, so no file is read twice.
"""

from __future__ import annotations

import os
import stat
import time
from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from core.evidence.extents import READ, BlockDigest, data_ranges, looks_sparse, read_ranges
from core.evidence.models import LeakFinding, ScanSummary, SparseFile, UnscannedEntry
from core.secrets.redact import Redactor
from core.secrets.scan import Leak, findings, text_findings
from core.settings import ConfigError

SCAN_SHARE = 0.1
"""The leak scan's share of the run's `--timeout`; the Case has the rest."""
SCAN_MIN_S = 1.0
SCAN_MAX_S = 300.0
MAX_BYTES_VAR = "CTO_HARNESS_SCAN_MAX_BYTES"
DEFAULT_MAX_BYTES = 2 << 30
LISTED = 200
"""Unscanned and sparse entries listed by name in the report; all are counted."""
LEASE_POLL_S = 0.01


def scan_seconds(timeout: float) -> float:
    """The scan's time budget for a run of `timeout` seconds: its share, at least
    SCAN_MIN_S and at most SCAN_MAX_S, and never more than half the run's."""
    return min(SCAN_MAX_S, max(SCAN_MIN_S, SCAN_SHARE * timeout), timeout / 2)


def max_bytes_from_env() -> int:
    """CTO_HARNESS_SCAN_MAX_BYTES (a whole number of bytes, 1 or more), else the default."""
    text = os.environ.get(MAX_BYTES_VAR, "").strip()
    if not text:
        return DEFAULT_MAX_BYTES
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ConfigError(f"{MAX_BYTES_VAR} must be a whole number of bytes, 1 or more "
                          f"(got {text[:40]!r}); unset it for the default ({DEFAULT_MAX_BYTES})")
    return value


@dataclass
class RunScan:
    leaks: list[Leak] = field(default_factory=list)
    summary: ScanSummary = field(default_factory=ScanSummary)
    digests: dict[str, str] = field(default_factory=dict)
    """The content digest of every regular file read whole, as read, by path."""
    unscanned: set[str] = field(default_factory=set)
    unscanned_folders: set[str] = field(default_factory=set)
    """Folders not listed: nothing under them was read (nor is to be hashed)."""


class _Scanner:
    def __init__(self, root: Path, redactor: Redactor, seconds: float, max_bytes: int,
                 started: float | None) -> None:
        self.root, self.redactor = root, redactor
        self.t0 = time.monotonic() if started is None else started
        self.deadline = self.t0 + seconds
        self.max_bytes = max_bytes
        self.out = RunScan(summary=ScanSummary(budget_s=round(seconds, 3),
                                               budget_bytes=max_bytes))

    def shown(self, path: str) -> str:
        rel = os.fsencode(os.path.relpath(path, self.root)).decode("utf-8", "replace")
        return self.redactor.redact(rel)

    def leak(self, path: str, found: list[LeakFinding]) -> None:
        if found:
            shown = self.shown(path)
            self.out.leaks += [Leak(Path(path), f.model_copy(update={"file": shown}))
                               for f in found]

    def skip(self, path: str, reason: str) -> None:
        s = self.out.summary
        s.complete = False
        s.unscanned_count += 1
        self.out.unscanned.add(path)
        if len(s.unscanned) < LISTED:
            s.unscanned.append(UnscannedEntry(file=self.shown(path), reason=reason))

    def late(self) -> bool:
        return time.monotonic() >= self.deadline

    @property
    def out_of_time(self) -> str:
        return f"the scan's time budget ({self.out.summary.budget_s:g} s) ran out first"

    def run(self) -> RunScan:
        stack = [str(self.root)]
        while stack:
            folder = stack.pop()
            if self.late():
                for rest in (folder, *reversed(stack)):
                    self.skip(rest, f"folder not listed: {self.out_of_time}")
                    self.out.unscanned_folders.add(rest)
                break
            try:
                with os.scandir(folder) as listing:
                    entries = sorted(listing, key=lambda e: e.name)
            except OSError as exc:
                self.skip(folder, f"folder cannot be listed ({exc.strerror})")
                self.out.unscanned_folders.add(folder)
                continue
            self._names(folder, entries)
            subfolders = []
            for index, entry in enumerate(entries):
                if self.late():  # the rest: files listed here, folders as the loop ends
                    for unread in entries[index:]:
                        if unread.is_dir(follow_symlinks=False):
                            subfolders.append(unread.path)
                        else:
                            self.skip(unread.path, self.out_of_time)
                    break
                self._entry(entry, subfolders)
            stack += reversed(subfolders)
        s = self.out.summary
        s.seconds = round(time.monotonic() - self.t0, 3)
        return self.out

    def _names(self, folder: str, entries: list[os.DirEntry]) -> None:
        """Every name of a folder in one search: names decoded as a finding reads them,
        joined by NUL (no form holds one); a name with a hit is then looked at alone."""
        self.out.summary.entries += len(entries)
        names = [os.fsencode(e.name).decode("utf-8", "replace").encode() for e in entries]
        starts, pos = [], 0
        for name in names:
            starts.append(pos)
            pos += len(name) + 1
        hits = {bisect_right(starts, start) - 1
                for start, _end, _form in self.redactor.matches(b"\0".join(names))}
        for index in sorted(hits):
            self.leak(entries[index].path,
                      text_findings("", entries[index].name, "name", self.redactor))

    def _entry(self, entry: os.DirEntry, subfolders: list[str]) -> None:
        path = entry.path
        try:
            if entry.is_symlink():
                self.leak(path, text_findings("", os.readlink(path), "link_target",
                                              self.redactor))
            elif entry.is_dir(follow_symlinks=False):
                subfolders.append(path)
            elif entry.is_file(follow_symlinks=False):
                self._file(path)
            # a FIFO, socket or device holds no bytes at rest: its name was looked at
        except FileNotFoundError:
            return  # gone while scanning: nothing of it is left on disk

    def _open(self, path: str) -> int | None:
        """The file opened without following a link or waiting on a FIFO; a lease being
        broken (another process holds one) is waited for within the time budget."""
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        while True:
            try:
                return os.open(path, flags)
            except BlockingIOError:
                if self.late():
                    self.skip(path, f"held by a file lease until {self.out_of_time}")
                    return None
                time.sleep(LEASE_POLL_S)
            except FileNotFoundError:
                raise
            except OSError as exc:
                self.skip(path, f"cannot be read ({exc.strerror})")
                return None

    def _file(self, path: str) -> None:
        fd = self._open(path)
        if fd is None:
            return
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                return  # swapped for something else since it was listed
            sparse = looks_sparse(st)
            ranges = data_ranges(fd, st.st_size, sparse)
            size = sum(hi - lo for lo, hi in ranges)
            s = self.out.summary
            if s.bytes_read + size > self.max_bytes:
                self.skip(path, f"over the byte budget: {size} bytes to read, "
                                f"{self.max_bytes - s.bytes_read} of {self.max_bytes} left")
                return
            digest = BlockDigest(st.st_size)
            complete = True

            def chunks() -> Iterator[bytes]:
                nonlocal complete
                end = 0
                for offset, chunk in read_ranges(fd, ranges):
                    if self.late():
                        complete = False
                        return
                    if offset != end:
                        yield b"\0"  # a hole between: no form runs across it
                    digest.feed(offset, chunk)
                    s.bytes_read += len(chunk)
                    end = offset + len(chunk)
                    yield chunk

            if len(ranges) == 1 and size <= READ:  # most files: one read, one search
                chunk = b"".join(chunks())
                text = chunk if chunk.isascii() else chunk.decode("utf-8", "replace").encode()
                found = (list(findings("", [chunk], self.redactor))
                         if self.redactor.matches(text) else [])
            else:
                found = list(findings("", chunks(), self.redactor))
        except OSError as exc:
            self.skip(path, f"cannot be read ({exc.strerror})")
            return
        finally:
            os.close(fd)
        self.leak(path, found)
        if not complete:
            self.skip(path, f"read in part: {self.out_of_time}")
            return
        s.files_read += 1
        self.out.digests[path] = digest.hexdigest()
        if sparse and size < st.st_size:
            s.sparse_count += 1
            if len(s.sparse) < LISTED:
                s.sparse.append(SparseFile(file=self.shown(path), size=st.st_size,
                                           data_bytes=size))


def scan_run(root: Path, redactor: Redactor, seconds: float, max_bytes: int,
             started: float | None = None) -> RunScan:
    """Leaks in the names, link targets and files under `root`, within `seconds` (from
    `started`, a time.monotonic(), else now) and `max_bytes` of reading; what was not read
    is listed (summary.unscanned)."""
    return _Scanner(root, redactor, seconds, max_bytes, started).run()
