"""The run directory: its layout, atomic JSON writes and the hash-chained trace.

Writers here are the only way the harness puts JSON on disk, so every file passes the
redactor and no reader ever sees a half-written file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import stat
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel

from core.evidence.extents import file_digest
from core.evidence.models import GENESIS_HASH
from core.evidence.untrusted import NotRegularFile, open_regular, read_bounded  # noqa: F401 - re-exported

Redact = Callable[[str], str]


def utcnow() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_run_id(task: str) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{task}-{os.getpid()}"


def line_hash(line: bytes) -> str:
    """The hash that the next trace event carries as `prev`: SHA-256 of the line's bytes,
    without its newline."""
    return hashlib.sha256(line.rstrip(b"\n")).hexdigest()


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: Path, data: bytes, mode: int | None = None) -> None:
    """Write via a temp file in the same folder and rename, so readers see all or nothing;
    `mode` for the file (else mkstemp's 0600). The temp name is never derived from the
    file's: a name the Case chose may hold the secret, or leave no room to add to it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".cto-harness-", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def dump_json(data: BaseModel | dict[str, Any] | list[Any]) -> str:
    if isinstance(data, BaseModel):
        return data.model_dump_json(indent=2) + "\n"
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


M = TypeVar("M", bound=BaseModel)


def read_json_model(path: Path, model: type[M], max_bytes: int) -> M:
    """The one safe reader of a JSON file the harness wrote (a run's manifest or report, a
    job's job.json): read_bounded's rules (a regular file, no link on the way, at most
    `max_bytes`), then validated as `model`. Each caller words the failures for its own
    readers, so this raises them as they are: OSError (FileNotFoundError,
    NotADirectoryError, NotRegularFile, TooLarge, …) and pydantic's ValidationError or
    ValueError."""
    return model.model_validate_json(read_bounded(path, max_bytes))


def enclosing_repository(path: Path) -> Path | None:
    """The git work tree `path` sits in (its folder or the nearest above holding a `.git`),
    or None. Only the existence of `.git` is looked at (lstat): nothing of the repository
    is opened, listed or read, as the seed's "no Target Repository path may be inspected"
    asks. No symlink is resolved (resolving would stat every component)."""
    absolute = Path(os.path.abspath(path))
    for folder in (absolute, *absolute.parents):
        if os.path.lexists(folder / ".git"):
            return folder
    return None


def fresh_dir(path: Path) -> None:
    """An empty folder at `path`, whatever was there. A folder of the run the harness fills
    after the Case ran (checks, baseline) may have been planted by the Case: a conftest
    that forges results, or a link that would make the harness write outside the run."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)


def run_files(root: Path) -> list[Path]:
    """Every regular file and symbolic link under `root`, links never followed: a Case can
    plant a link to anything (its target is read by no one), or a FIFO (skipped: opening
    one blocks)."""
    return [Path(p) for p, _ in _file_paths(str(root))]


def _file_paths(root: str, marked: set[str] | frozenset[str] = frozenset()
                ) -> list[tuple[str, bool]]:
    """run_files as strings, sorted, each with whether it lies under a `marked` folder: one
    scandir a folder, each entry's type from the listing, so linear (a list membership
    test per name made 100,000 files cost a minute), and no Path object per file (a third
    of the time at 100,000)."""
    found: list[tuple[str, bool]] = []
    stack = [(root, root in marked)]
    while stack:
        folder, under = stack.pop()
        try:
            with os.scandir(folder) as entries:
                for entry in entries:
                    if entry.is_symlink() or entry.is_file(follow_symlinks=False):
                        found.append((entry.path, under))
                    elif entry.is_dir(follow_symlinks=False):
                        stack.append((entry.path, under or entry.path in marked))
        except OSError:
            continue  # unreadable: the leak scan names it
    return sorted(found)


def reclaim(root: Path, deadline: float | None = None) -> None:
    """Owner read and write (and search, for folders) on everything under `root`, links
    left alone: a Case can chmod 000 a file holding the secret, or 0500 its folder, and the
    leak scan must still read it and the scrub write there. What cannot be changed is left
    for the scan to report; so is what is left when time.monotonic() passes `deadline`
    (the leak scan's budget counts this walk too)."""
    stack = [root]
    while stack and (deadline is None or time.monotonic() < deadline):
        folder = stack.pop()
        _grant(folder, stat.S_IRWXU)
        try:
            with os.scandir(folder) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(Path(entry.path))
                    elif entry.is_file(follow_symlinks=False):
                        _grant(Path(entry.path), stat.S_IRUSR | stat.S_IWUSR)
        except OSError:
            continue


def _grant(path: Path, bits: int) -> None:
    with contextlib.suppress(OSError):
        mode = path.lstat().st_mode
        if mode & bits != bits:
            path.chmod(stat.S_IMODE(mode) | bits)


def link_digest(path: Path) -> str:
    """A link's hash is its target text's: retargeting it after the fact is caught."""
    return hashlib.sha256(b"symlink:" + os.fsencode(os.readlink(path))).hexdigest()


def artifact_key(path: Path, root: Path) -> str:
    """A file's path relative to the run, as text that survives JSON: bytes of a name that
    are not UTF-8 (a Case may write any) are spelled `\\xNN`, and a backslash is doubled
    first, so no two names share a key."""
    raw = os.fsencode(path.relative_to(root)).replace(b"\\", b"\\\\")
    return raw.decode("utf-8", "backslashreplace")


UNHASHED = "unscanned"
"""The artifact value of a file the leak scan did not read (over its budget): not read for
a hash either, and `validate` does not read it."""


def artifact_digest(path: Path) -> str:
    """A link's target text's hash, or a regular file's content digest (core/evidence/extents.py:
    a sparse file's holes cost nothing)."""
    if path.is_symlink():
        return link_digest(path)
    with open_regular(path) as fh:
        return file_digest(fh.fileno(), os.fstat(fh.fileno()))


def artifact_hashes(paths: RunPaths, known: dict[str, str] | None = None,
                    unhashed: set[str] | frozenset[str] = frozenset(),
                    unhashed_folders: set[str] | frozenset[str] = frozenset()
                    ) -> dict[str, str]:
    """The digest of every file of the run but report.json, trace.jsonl and the attestation
    (which vouch for the rest), by path relative to the run: what the report records and
    validate re-checks.
    `known`: digests of regular files already taken, by path (the leak scan's, as it read
    them); `unhashed`: files, and `unhashed_folders`: folders whose every file, left unread
    by the scan, are recorded as UNHASHED without being read now either."""
    skip = {str(paths.report), str(paths.trace), str(paths.attestation)}
    known = known or {}
    out: dict[str, str] = {}
    for path, in_unread_folder in _file_paths(str(paths.root), unhashed_folders):
        if path in skip:
            continue
        key = artifact_key(Path(path), paths.root)
        if in_unread_folder or path in unhashed:
            out[key] = UNHASHED
        elif path in known:
            out[key] = known[path]
        else:
            try:
                out[key] = artifact_digest(Path(path))
            except OSError as exc:
                out[key] = f"unreadable: {exc.strerror or 'not a regular file'}"
    return out


@dataclass(frozen=True)
class RunPaths:
    """Where each artifact of a run lives (DESIGN.md's table)."""

    root: Path

    @property
    def run_id(self) -> str:
        return self.root.name

    @property
    def manifest(self) -> Path:
        return self.root / "manifest.json"

    @property
    def trace(self) -> Path:
        return self.root / "trace.jsonl"

    @property
    def report(self) -> Path:
        return self.root / "report.json"

    @property
    def attestation(self) -> Path:
        """The signed envelope over the rest, written last (core/evidence/attestation.py)."""
        return self.root / "attestation.intoto.jsonl"

    @property
    def backend(self) -> Path:
        return self.root / "backend"

    @property
    def case_log(self) -> Path:
        return self.backend / "case.log"

    @property
    def relay(self) -> Path:
        return self.backend / "relay.jsonl"

    @property
    def exchanges(self) -> Path:
        """Every model exchange, whole (core/evidence/exchanges.py)."""
        return self.backend / "exchanges"

    @property
    def readiness(self) -> Path:
        return self.backend / "readiness.json"

    @property
    def unavailable(self) -> Path:
        return self.backend / "provider-local-config-unavailable.txt"

    @property
    def workspace(self) -> Path:
        return self.root / "workspace"

    @property
    def start_workspace(self) -> Path:
        """The workspace as the Case received it, copied before the Case starts: what the
        Changes tab and `cto-harness diff` compare against. Kept in the run (hashed, under
        the attestation), not read from the task folder, which may have changed since."""
        return self.root / "task" / "workspace"

    @property
    def baseline(self) -> Path:
        return self.root / "baseline"

    @property
    def checks(self) -> Path:
        return self.root / "checks"


CHECK_RESULTS = Path("out") / "junit.xml"
"""Where, under a checks folder (`checks/`, `baseline/checks/`), pytest writes its JUnit XML:
the one name the checks' runner writes to and every reader reads from (they once disagreed,
and the Baseline tab showed no rows on any real run)."""


class RunWriter:
    """Writes a run's files, each through the redactor; the trace is an appended hash chain."""

    def __init__(self, paths: RunPaths, redact: Redact) -> None:
        self.paths = paths
        self.redact = redact
        self._lock = threading.Lock()
        self._seq = 0
        self._prev = GENESIS_HASH
        paths.backend.mkdir(parents=True, exist_ok=True)
        self._trace = paths.trace.open("ab", buffering=0)

    @property
    def head(self) -> dict[str, Any]:
        return {"seq": self._seq, "hash": self._prev}

    def write_json(self, path: Path, data: BaseModel | dict[str, Any] | list[Any]) -> str:
        """Atomically write `data` as redacted JSON; returns the text written."""
        text = self.redact(dump_json(data))
        atomic_write_text(path, text)
        return text

    def write_text(self, path: Path, text: str) -> None:
        atomic_write_text(path, self.redact(text))

    def event(self, event: str, **fields: Any) -> dict[str, Any]:
        """Append one trace event, flushed at once so a follower sees it as it happens."""
        with self._lock:
            self._seq += 1
            record = {"seq": self._seq, "ts": utcnow(), "event": event, "prev": self._prev}
            record.update(fields)
            line = self.redact(json.dumps(record, ensure_ascii=False, default=str))
            raw = line.encode("utf-8")
            self._trace.write(raw + b"\n")
            self._prev = line_hash(raw)
            return record

    def close(self) -> None:
        self._trace.close()
