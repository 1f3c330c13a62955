"""Reading runs back: the API the dashboard and `cto-harness runs` use.

Readers never trust a file: a missing, partial or corrupt one becomes a state that says so
(`interrupted`, `unreadable`), never an exception for the caller to catch.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import BaseModel, ValidationError

from core.errors import HarnessError
from core.evidence.liveness import harness_alive
from core.evidence.models import Manifest, RelayRecord, Report, TraceEvent
from core.evidence.rundir import NotRegularFile, RunPaths, open_regular, read_json_model
from core.evidence.untrusted import TooLarge

RowStatus = Literal[
    "passed", "failed", "blocked", "error", "cancelled", "timed_out",
    "running", "interrupted", "unreadable",
]

CHUNK = 1 << 16
MAX_PARTIAL = 1 << 20
"""An unfinished line longer than this is handed over as it stands: memory stays bounded
even when a Case never prints a newline."""
JOBS_FOLDER = "jobs"
"""`<runs_root>/jobs/` holds job folders, not a run (a run's name starts with its stamp)."""
MAX_JSON_BYTES = 64 << 20
"""A manifest or report beyond this is not the harness's: refused rather than loaded."""
M = TypeVar("M", bound=BaseModel)


class RunSummary(BaseModel):
    run_id: str
    path: str
    status: RowStatus
    started_at: str | None = None
    task: str | None = None
    engine: str | None = None
    case: str | None = None
    """The Case binary's name (manifest `case_bin_name`): which agent ran."""
    provider: str | None = None
    model: str | None = None
    admission: str | None = None
    guard: str | None = None
    checks: str | None = None
    duration_s: float | None = None
    demo: bool = False
    retry_of: str | None = None
    problem: str | None = None
    """Why a run is unreadable or interrupted, in words."""


class Unreadable(HarnessError):
    """A run file that exists but cannot be read as its model; the message names the file."""


class OutOfReach(Unreadable):
    """A run file this reader may not open (its or its folder's permissions): unlike a
    corrupt one, it may be readable on the next look."""


class RunsRootError(OSError, HarnessError):
    """The runs root is there but cannot be listed (a file, or not ours to read); the
    message names it and what to do. An OSError with the cause's errno, so callers that
    already catch OSError still do."""

    def __init__(self, root: Path, cause: OSError) -> None:
        super().__init__(cause.errno, cause.strerror, str(root))
        choose = "choose another with --runs-root or CTO_HARNESS_RUNS_ROOT"
        if isinstance(cause, NotADirectoryError):
            what = "is a file" if root.is_file() else "has a file in its path"
            self.message = f"runs root {root} {what}, not a directory: {choose}"
        elif isinstance(cause, PermissionError):
            self.message = (f"runs root {root} cannot be read ({cause.strerror}): fix its "
                            f"permissions or {choose}")
        else:
            self.message = f"runs root {root} cannot be read ({cause.strerror}): {choose}"

    def __str__(self) -> str:
        return self.message


def _read_model(path: Path, model: type[M]) -> M | None:
    """None when absent. Only a regular file is opened: a FIFO would block the reader
    forever, a link could point anywhere, and the harness writes neither."""
    try:
        return read_json_model(path, model, MAX_JSON_BYTES)
    except TooLarge:
        raise Unreadable(f"{path.name}: larger than {MAX_JSON_BYTES >> 20} MiB, "
                         "which no run writes") from None
    except (FileNotFoundError, NotADirectoryError):
        return None
    except NotRegularFile as exc:
        raise Unreadable(f"{path.name}: {exc.strerror}") from None
    except OSError as exc:  # its permissions, or its folder's
        raise OutOfReach(f"{path.name}: {exc.strerror}") from None
    except (ValidationError, ValueError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise Unreadable(f"{path.name}: not a valid {model.__name__} ({first})") from None


def load_manifest(run_dir: Path) -> Manifest | None:
    return _read_model(RunPaths(run_dir).manifest, Manifest)


def load_report(run_dir: Path) -> Report | None:
    return _read_model(RunPaths(run_dir).report, Report)


def _jsonl(path: Path, model: type[M]) -> Iterator[tuple[int, M | None]]:
    """(line number, record or None when that line is corrupt); a trailing partial line is
    skipped, since its writer may still be finishing it. Only a regular file is opened (a
    FIFO would block forever); one that cannot be yields nothing, and the run's validation
    says why."""
    try:
        fh = open_regular(path)
    except OSError:
        return
    with fh:
        for number, raw in enumerate(fh, start=1):
            if not raw.endswith(b"\n"):
                return
            yield number, parse_record(model, raw)


def parse_record(model: type[M], raw: bytes) -> M | None:
    """One JSONL line as `model`, or None when it is not one."""
    try:
        return model.model_validate_json(raw)
    except (ValidationError, ValueError):
        return None


def read_trace(run_dir: Path) -> list[TraceEvent]:
    return [ev for _, ev in _jsonl(RunPaths(run_dir).trace, TraceEvent) if ev is not None]


def read_relay(run_dir: Path) -> list[RelayRecord]:
    return [r for _, r in _jsonl(RunPaths(run_dir).relay, RelayRecord) if r is not None]


def list_run_dirs(root: Path) -> list[Path]:
    """Run folders under the root, newest first (their names start with a UTC stamp); none
    when the root does not exist yet (the first run creates it). RunsRootError when it
    exists but cannot be listed: "no runs" would hide every run it holds."""
    try:
        with os.scandir(root) as found:
            # A link is never a run of this root, nor followed: in a runs root others
            # may write into, it may lead anywhere (another account planted it).
            entries = [e for e in found if e.is_dir(follow_symlinks=False)
                       and not e.name.startswith(".") and e.name != JOBS_FOLDER]
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise RunsRootError(root, exc) from None
    return [Path(e.path) for e in sorted(entries, key=lambda e: e.name, reverse=True)]


def summarize(run_dir: Path) -> RunSummary:
    """The run's row; an unreadable one still says what its readable files say (a corrupt
    report beside a good manifest keeps its task and Case)."""
    row = RunSummary(run_id=run_dir.name, path=str(run_dir), status="unreadable")
    try:
        manifest = load_manifest(run_dir)
    except Unreadable as exc:
        row.problem = str(exc)
        return row
    if manifest is None:
        row.problem = "manifest.json missing: not a run, or its start was cut short"
        return row
    row.started_at = manifest.started_at
    row.task, row.engine, row.case = manifest.task, manifest.engine, manifest.case_bin_name
    row.provider, row.model = manifest.provider, manifest.model
    row.demo, row.retry_of = manifest.demo, manifest.retry_of
    try:
        report = load_report(run_dir)
    except Unreadable as exc:
        row.problem = str(exc)
        return row
    if report is None:
        if harness_alive(manifest):
            row.status = "running"
        else:
            row.status = "interrupted"
            row.problem = "no report.json and its harness process is gone"
        return row
    row.status = report.status
    row.admission = report.case_model_admission_status
    row.guard = report.guard_state
    if report.checks.ran:
        row.checks = f"{report.checks.passed}/{report.checks.total}"
    row.duration_s = report.durations.total_s
    return row


def list_runs(root: Path, limit: int | None = None) -> list[RunSummary]:
    dirs = list_run_dirs(root)
    return [summarize(d) for d in (dirs if limit is None else dirs[:limit])]


def find_run(root: Path, run_id: str) -> Path | None:
    """The run folder `run_id` under the root, or None when there is none. A folder there
    that cannot be searched is returned all the same, so its readers say why instead of
    "no such run"; RunsRootError when it is the root that cannot be searched."""
    candidate = root / run_id
    try:
        if candidate.is_symlink():  # not a run of this root (list_run_dirs skips it too)
            return None
        return candidate if (candidate / "manifest.json").exists() else None
    except OSError:
        pass  # the run's folder or the root is out of reach: which one?
    try:
        return candidate if candidate.is_dir() else None
    except OSError as exc:
        raise RunsRootError(root, exc) from None


class Follower:
    """Follows a growing file from its last offset, yielding only complete lines.

    `read()` takes at most `max_bytes` per call, so a reader that falls behind catches up
    over several calls instead of stalling on one huge read (back-pressure toward itself).
    """

    def __init__(self, path: Path, offset: int = 0) -> None:
        self.path = path
        self.offset = offset
        self._partial = b""

    def read(self, max_bytes: int = CHUNK * 16) -> list[bytes]:
        """OutOfReach when the file is there but not ours to read (its permissions): the
        offset stays, so the next call resumes where this one stopped once it is readable again."""
        try:
            size = self.path.stat().st_size
        except (FileNotFoundError, NotADirectoryError):
            return []
        except OSError as exc:
            raise OutOfReach(f"{self.path.name}: {exc.strerror}") from None
        if size < self.offset:  # truncated or replaced: start again
            self.offset, self._partial = 0, b""
        if size == self.offset:
            return []
        try:
            with open_regular(self.path) as fh:
                fh.seek(self.offset)
                data = fh.read(min(max_bytes, size - self.offset))
        except OSError as exc:
            raise OutOfReach(f"{self.path.name}: {exc.strerror}") from None
        self.offset += len(data)
        data = self._partial + data
        lines = data.split(b"\n")
        self._partial = lines.pop()
        if len(self._partial) > MAX_PARTIAL:  # `\r` progress for minutes, no newline
            lines.append(self._partial)
            self._partial = b""
        return lines

    def discard_partial(self) -> None:
        """Forget the unfinished line held back (after the offset was moved on purpose)."""
        self._partial = b""

    @property
    def pending(self) -> int:
        """Bytes written but not yet read; none while the file is absent or out of reach."""
        try:
            return max(0, self.path.stat().st_size - self.offset)
        except OSError:
            return 0

