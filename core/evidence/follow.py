"""Following one run while it grows: the reader behind a live view.

Each file is read from its last offset in bounded chunks (never re-read whole), JSONL lines
are parsed as they complete, and the caller decides how much to take per poll, so a reader
that falls behind slows only itself, never the run that writes the files.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from pydantic import ValidationError

from core.evidence.models import Manifest, Readiness, RelayRecord, Report, TraceEvent
from core.evidence.rundir import RunPaths, open_regular
from core.evidence.runs import (
    CHUNK,
    Follower,
    OutOfReach,
    Unreadable,
    load_manifest,
    load_report,
    parse_record,
)

M = TypeVar("M", Manifest, Report)


def load_readiness(run_dir: Path) -> Readiness | None:
    """backend/readiness.json, or None when absent or not (yet) a valid Readiness."""
    try:
        with open_regular(RunPaths(run_dir).readiness) as fh:  # a planted FIFO never blocks
            return Readiness.model_validate_json(fh.read())
    except (OSError, ValidationError, ValueError):
        return None


@dataclass
class RunBatch:
    """What a run's files gained since the previous poll."""

    log_lines: list[bytes] = field(default_factory=list)
    events: list[TraceEvent] = field(default_factory=list)
    relay: list[RelayRecord] = field(default_factory=list)
    manifest: Manifest | None = None
    readiness: Readiness | None = None
    report: Report | None = None
    problems: list[str] = field(default_factory=list)
    """Files that exist but cannot be read as what they should be (a corrupt manifest or
    report), in words; each once: they are written once, so they stay so."""
    out_of_reach: list[str] | None = None
    """What cannot be read for its permissions (the run folder, a file), in words: the
    whole current list whenever it changes (empty once access is back), else None."""
    pending_bytes: int = 0
    """Bytes of the log still unread after this poll: the reader's backlog."""

    def __bool__(self) -> bool:
        return bool(self.log_lines or self.events or self.relay or self.manifest
                    or self.readiness or self.report or self.problems
                    or self.out_of_reach is not None)


class RunTail:
    """Follows a run's trace, relay ledger and Case log; picks up its JSON files once."""

    def __init__(self, run_dir: Path, log_tail_bytes: int | None = None) -> None:
        """`log_tail_bytes`: start the log that far from its current end (at a line start),
        so opening a run with a huge log shows its recent lines at once."""
        self.paths = RunPaths(run_dir)
        self._log = Follower(self.paths.case_log)
        self._skip_partial = False
        if log_tail_bytes is not None:
            self.skip_ahead(log_tail_bytes)
        self._trace = Follower(self.paths.trace)
        self._relay = Follower(self.paths.relay)
        self._have: set[str] = set()
        self._out_of_reach: set[str] = set()
        """Access problems of the previous poll: a batch carries them only when they change."""

    def skip_ahead(self, keep_bytes: int) -> int:
        """Jump the log to `keep_bytes` before its end (dropping the line cut there); returns
        the bytes skipped. A reader far behind shows the recent lines at once instead of
        working through what its bounded ring would drop anyway."""
        pending = self._log.pending
        if pending <= keep_bytes:
            return 0
        self._log.offset += pending - keep_bytes
        self._log.discard_partial()
        try:
            with open_regular(self.paths.case_log) as fh:
                fh.seek(self._log.offset - 1)
                self._skip_partial = fh.read(1) != b"\n"
        except OSError:  # out of reach since `pending` looked: assume a cut line
            self._skip_partial = True
        return pending - keep_bytes

    @property
    def backlog(self) -> int:
        """Bytes of the log written but not yet read."""
        return self._log.pending

    @property
    def finished(self) -> bool:
        """The report is in and every file has been read to its end."""
        return "report" in self._have and not (
            self._log.pending or self._trace.pending or self._relay.pending)

    def poll(self, log_bytes: int = CHUNK) -> RunBatch:
        """What the files gained. A folder or file out of reach (its permissions) is a
        problem in the batch, never an exception: the offsets stay, and following resumes
        when it is readable again."""
        batch = RunBatch()
        out_of_reach: list[str] = []
        if (problem := self._unsearchable_folder()) is not None:
            out_of_reach.append(problem)  # every file in it is out of reach: say it once
        else:
            self._once(batch, out_of_reach)
            batch.events = [e for e in (parse_record(TraceEvent, raw) for raw in
                                        self._read(self._trace, CHUNK, out_of_reach))
                            if e is not None]
            batch.relay = [r for r in (parse_record(RelayRecord, raw) for raw in
                                       self._read(self._relay, CHUNK, out_of_reach))
                           if r is not None]
            batch.log_lines = self._read(self._log, log_bytes, out_of_reach)
            if self._skip_partial and batch.log_lines:
                self._skip_partial = False
                batch.log_lines = batch.log_lines[1:]  # began mid-line
        if set(out_of_reach) != self._out_of_reach:
            batch.out_of_reach = out_of_reach
            self._out_of_reach = set(out_of_reach)
        batch.pending_bytes = self._log.pending
        return batch

    def _unsearchable_folder(self) -> str | None:
        """Why the run's folder or its backend/ cannot be searched, or None. `folder/.`
        resolves only with search permission on the folder (pathlib would drop the `.`);
        absent is not a problem."""
        for folder, name in ((self.paths.root, "run folder"), (self.paths.backend, "backend/")):
            try:
                os.stat(os.path.join(folder, "."))
            except (FileNotFoundError, NotADirectoryError):
                continue
            except OSError as exc:
                return f"{name} cannot be read ({exc.strerror})"
        return None

    @staticmethod
    def _read(follower: Follower, max_bytes: int, out_of_reach: list[str]) -> list[bytes]:
        try:
            return follower.read(max_bytes)
        except OutOfReach as exc:
            out_of_reach.append(str(exc))
            return []

    def _once(self, batch: RunBatch, out_of_reach: list[str]) -> None:
        """The manifest, readiness and report appear once, atomically: read each when it
        does (the report last, so its batch also carries the final lines)."""
        root = self.paths.root
        if "manifest" not in self._have:
            batch.manifest = self._load("manifest", load_manifest, batch, out_of_reach)
        if "readiness" not in self._have:
            batch.readiness = load_readiness(root)
            if batch.readiness is not None:
                self._have.add("readiness")
        if "report" not in self._have:
            batch.report = self._load("report", load_report, batch, out_of_reach)

    def _load(self, name: str, load: Callable[[Path], M | None], batch: RunBatch,
              out_of_reach: list[str]) -> M | None:
        """None until it appears. A corrupt file stays corrupt (each is written once,
        atomically): reported once and given up. One out of reach is tried again on the
        next poll."""
        try:
            found = load(self.paths.root)
        except OutOfReach as exc:
            out_of_reach.append(str(exc))
            return None
        except Unreadable as exc:
            batch.problems.append(str(exc))
            self._have.add(name)
            return None
        if found is not None:
            self._have.add(name)
        return found
