"""Following one run while it grows: the reader behind a live view.

Each file is read from its last offset in bounded chunks (never re-read whole), JSONL lines
are parsed as they complete, and the caller decides how much to take per poll, so a reader
that falls behind slows only itself, never the run that writes the files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from core.models import Manifest, Readiness, RelayRecord, Report, TraceEvent
from core.rundir import RunPaths
from core.runs import CHUNK, Follower, Unreadable, load_manifest, load_report, parse_record


def load_readiness(run_dir: Path) -> Readiness | None:
    """backend/readiness.json, or None when absent or not (yet) a valid Readiness."""
    path = RunPaths(run_dir).readiness
    try:
        return Readiness.model_validate_json(path.read_bytes())
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
    """Files that exist but cannot be read (a corrupt manifest or report), in words."""
    pending_bytes: int = 0
    """Bytes of the log still unread after this poll: the reader's backlog."""

    def __bool__(self) -> bool:
        return bool(self.log_lines or self.events or self.relay or self.manifest
                    or self.readiness or self.report or self.problems)


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

    def skip_ahead(self, keep_bytes: int) -> int:
        """Jump the log to `keep_bytes` before its end (dropping the line cut there); returns
        the bytes skipped. A reader far behind shows the recent lines at once instead of
        working through what its bounded ring would drop anyway."""
        pending = self._log.pending
        if pending <= keep_bytes:
            return 0
        self._log.offset += pending - keep_bytes
        self._log.discard_partial()
        with self.paths.case_log.open("rb") as fh:
            fh.seek(self._log.offset - 1)
            self._skip_partial = fh.read(1) != b"\n"
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
        batch = RunBatch()
        self._once(batch)
        batch.events = [e for e in (parse_record(TraceEvent, raw)
                                    for raw in self._trace.read(CHUNK)) if e is not None]
        batch.relay = [r for r in (parse_record(RelayRecord, raw)
                                   for raw in self._relay.read(CHUNK)) if r is not None]
        batch.log_lines = self._log.read(log_bytes)
        if self._skip_partial and batch.log_lines:
            self._skip_partial = False
            batch.log_lines = batch.log_lines[1:]  # began mid-line
        batch.pending_bytes = self._log.pending
        return batch

    def _once(self, batch: RunBatch) -> None:
        """The manifest, readiness and report appear once, atomically: read each when it
        does (the report last, so its batch also carries the final lines)."""
        root = self.paths.root
        if "manifest" not in self._have and self.paths.manifest.exists():
            self._have.add("manifest")
            try:
                batch.manifest = load_manifest(root)
            except Unreadable as exc:
                batch.problems.append(str(exc))
        if "readiness" not in self._have and self.paths.readiness.exists():
            batch.readiness = load_readiness(root)
            if batch.readiness is not None:
                self._have.add("readiness")
        if "report" not in self._have and self.paths.report.exists():
            self._have.add("report")
            try:
                batch.report = load_report(root)
            except Unreadable as exc:
                batch.problems.append(str(exc))

