"""Leak scan: every form of every secret, in files or in the git index, reported by place.

A finding names the file (masked), the line, the secret and the form, never the value, so
the report of a leak is not a leak. Bytes are not the only place: a name (a folder called
after the quoted URL, a file after host:port) and a link's target text are written to disk
too. The run's end scans its whole directory with it and scrubs what it finds, and
`cto-harness scan` runs it on any path or, as a pre-commit hook, on what is staged.
"""

from __future__ import annotations

import codecs
import contextlib
import errno
import itertools
import os
import secrets
import stat
import subprocess
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from core.errors import HarnessError
from core.evidence.extents import data_ranges, looks_sparse, read_ranges
from core.evidence.models import LeakFinding, LeakPlace
from core.evidence.rundir import atomic_write_bytes
from core.evidence.untrusted import NotRegularFile, kind_of, open_regular
from core.secrets.redact import Redactor

SCRUB_MAX = 64 << 20
"""The largest file masked in place (held in memory a few times over while masked)."""
NAME_MAX = 255
"""Bytes one path component may hold (Linux, every common file system)."""


def findings(name: str, chunks: Iterable[bytes], redactor: Redactor) -> Iterator[LeakFinding]:
    """Scan a file's bytes in pieces that overlap by the longest form, counting lines;
    invalid UTF-8 reads as U+FFFD, as the redactor's streams write it."""
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    overlap = redactor.max_span
    carry, line, offset, covered = b"", 1, 0, 0
    for raw in itertools.chain(chunks, [None]):  # lazily: a file may be larger than memory
        text = decoder.decode(raw, final=False) if raw is not None else decoder.decode(b"", True)
        data = carry + text.encode("utf-8")
        for start, end, form in redactor.matches(data):
            if offset + start < covered:
                continue  # inside a leak already reported (e.g. the host inside the URL)
            covered = offset + end
            yield LeakFinding(file=name, line=line + data.count(b"\n", 0, start),
                              secret=form.secret, form=form.kind)
        keep = min(len(data), overlap)
        line += data.count(b"\n", 0, len(data) - keep)
        offset += len(data) - keep
        carry = data[len(data) - keep:]


def text_findings(name: str, text: str, where: LeakPlace,
                   redactor: Redactor) -> list[LeakFinding]:
    """Findings in a name or a link's target (an OS string: undecodable bytes are
    surrogate escapes), marked as such; a name has no line."""
    raw = os.fsencode(text)
    return [f.model_copy(update={"line": 0, "where": where})
            for f in findings(name, [raw], redactor)]


def _file_chunks(path: Path, given: bool) -> Iterator[bytes]:
    """The file's bytes in pieces; a sparse file's data only, a NUL where a hole was (no
    form holds one, so none is found across it). Not followed unless `given` (a path the
    user named), never waited on: a hostile file may be swapped after it was listed."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | (0 if given else os.O_NOFOLLOW))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):  # swapped for a FIFO or device since it was listed
            raise NotRegularFile(errno.EINVAL, f"{kind_of(st.st_mode)}, not a regular file")
        end = 0
        for offset, chunk in read_ranges(fd, data_ranges(fd, st.st_size, looks_sparse(st))):
            if offset != end:
                yield b"\0"
            end = offset + len(chunk)
            yield chunk
    finally:
        os.close(fd)


def _entries(paths: Iterable[Path],
             unread: list[str]) -> Iterator[tuple[Path, bool]]:
    """Each argument's entries, sorted, with whether a link among them may be followed to
    read the file it names: a folder's every entry below it (its links are entries, never
    followed), or the argument itself (named by whoever asked, so followed). A folder that
    cannot be listed goes to `unread`."""
    def listing_failed(exc: OSError) -> None:
        unread.append(f"{exc.filename}: cannot be listed ({exc.strerror})")

    for path in paths:
        if path.is_dir() and not path.is_symlink():
            for folder, dirs, files in os.walk(path, onerror=listing_failed):
                dirs.sort()
                for name in sorted((*dirs, *files)):
                    yield Path(folder, name), False
        else:
            yield path, True


def _display(path: Path, root: Path | None, redactor: Redactor) -> str:
    """The path as a finding shows it: relative to `root`, valid UTF-8, and redacted."""
    shown = path.as_posix()
    if root is not None:
        with contextlib.suppress(ValueError):
            shown = path.relative_to(root).as_posix()
    return redactor.redact(os.fsencode(shown).decode("utf-8", "replace"))


@dataclass(frozen=True)
class Leak:
    """A finding and the entry on disk it is about (its real path: the finding's is masked)."""

    path: Path
    finding: LeakFinding


def find_leaks(paths: Iterable[Path], redactor: Redactor, root: Path | None = None,
               unread: list[str] | None = None) -> list[Leak]:
    """Every form in the names of the entries under `paths` (or of a path given itself),
    in the target text of every link, and in every regular file's bytes. Links are never
    followed below a folder: a link can point anywhere, and the file it names is scanned
    where it lives if it is in `paths`. What cannot be read is named in `unread`."""
    leaks: list[Leak] = []
    unread = [] if unread is None else unread
    for path, given in _entries(paths, unread):
        shown = _display(path, root, redactor)
        try:
            found = text_findings(shown, path.name, "name", redactor)
            if path.is_symlink():
                found += text_findings(shown, os.readlink(path), "link_target", redactor)
            if path.is_file() and (given or not path.is_symlink()):
                found += findings(shown, _file_chunks(path, given), redactor)
        except FileNotFoundError:
            continue  # vanished while scanning: nothing of it is left
        except OSError as exc:
            unread.append(f"{shown}: cannot be read ({exc.strerror})")
            continue
        leaks += [Leak(path, finding) for finding in found]
    return leaks


def scan_paths(paths: Iterable[Path], redactor: Redactor, root: Path | None = None,
               unread: list[str] | None = None) -> list[LeakFinding]:
    """The findings of `find_leaks`: what `cto-harness scan` reports."""
    return [leak.finding for leak in find_leaks(paths, redactor, root, unread)]


def _fit(name: str, room: int = 0) -> str:
    """`name` cut to what one path component may hold, leaving `room` bytes."""
    raw = os.fsencode(name)
    return name if len(raw) + room <= NAME_MAX else os.fsdecode(raw[:NAME_MAX - room])


def _free_name(folder: Path, wanted: str) -> str:
    """`wanted` (cut to fit), or with `.2`, `.3`, ... when an entry has that name already."""
    name, n = _fit(wanted), 1
    while os.path.lexists(folder / name):
        n += 1
        name = _fit(wanted, len(f".{n}")) + f".{n}"
    return name


def _scrub_file(path: Path, redactor: Redactor) -> None:
    """Rewrite the file masked, in one rename; it keeps its mode (an +x script). Masking
    works on the whole text in memory, so a file over SCRUB_MAX bytes (a Case can write
    the relay token, which it knows, 3 GiB into a sparse file) has its content replaced by
    a note instead: the secret leaves the disk either way, and the memory stays bounded."""
    st = path.stat()
    if st.st_size > SCRUB_MAX:
        note = (f"[cto-harness: this file ({st.st_size} bytes) held a form of a secret and is "
                f"larger than {SCRUB_MAX} bytes, the most masked in place; its content was "
                "removed]\n")
        atomic_write_bytes(path, note.encode(), mode=stat.S_IMODE(st.st_mode))
        return
    with open_regular(path.resolve() if path.is_symlink() else path) as fh:  # named: given
        raw = fh.read(SCRUB_MAX + 1).decode("utf-8", errors="surrogateescape")
    atomic_write_bytes(path, redactor.redact(raw).encode("utf-8", "surrogateescape"),
                       mode=stat.S_IMODE(st.st_mode))


def _scrub_link(link: Path, redactor: Redactor) -> None:
    """Replace the link by one to the masked target text, in one rename, built under a
    name not derived from the link's (which may hold the secret, and be too long)."""
    spare = link.with_name(f".cto-harness-{secrets.token_hex(8)}")
    os.symlink(redactor.redact(os.readlink(link)), spare)
    os.replace(spare, link)


def scrub(leaks: list[Leak], redactor: Redactor, root: Path) -> list[LeakFinding]:
    """Mask every leak in place: file bytes rewritten, links re-pointed at the masked text,
    then entries renamed to their masked names, deepest first so a folder's children are
    renamed while it still has the name they were found under. Returns the findings, each
    naming its entry where it now is."""
    where = {(leak.path, leak.finding.where) for leak in leaks}
    for path, kind in sorted(where):
        if kind == "content":
            _scrub_file(path, redactor)
        elif kind == "link_target":
            _scrub_link(path, redactor)
    renamed: dict[Path, str] = {}
    named = sorted({p for p, kind in where if kind == "name"}, key=lambda p: -len(p.parts))
    for path in named:
        new = _free_name(path.parent, redactor.redact(path.name))
        path.rename(path.parent / new)
        renamed[path] = new

    def now(path: Path) -> Path:
        current, original = root, root
        for part in path.relative_to(root).parts:
            original = original / part
            current = current / renamed.get(original, part)
        return current

    return [leak.finding.model_copy(update={"file": _display(now(leak.path), root, redactor)})
            for leak in leaks]


def _git(repo: Path, *args: str, data: bytes | None = None) -> bytes:
    done = subprocess.run(["git", "-C", str(repo), *args], input=data, capture_output=True,
                          check=False)
    if done.returncode != 0:
        raise GitError(done.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or [""])
    return done.stdout


class GitError(HarnessError):
    def __init__(self, lines: list[str]) -> None:
        super().__init__(lines[0] if lines else "git failed")


def scan_git_index(repo: Path, redactor: Redactor) -> list[LeakFinding]:
    """Findings in the paths and blobs staged for the next commit (added, copied, modified,
    renamed; a link's blob is its target text): what a pre-commit hook must stop, whatever
    the work tree holds."""
    names = _git(repo, "diff", "--cached", "--name-only", "--no-renames", "-z",
                 "--diff-filter=ACM").split(b"\0")
    names = [n for n in names if n]
    if not names:
        return []
    entries = _git(repo, "ls-files", "--stage", "-z", "--", *map(os.fsdecode, names))
    blobs: list[tuple[str, str]] = []
    for entry in entries.split(b"\0"):
        if entry:
            meta, _, raw_name = entry.partition(b"\t")
            mode, sha = meta.split()[:2]
            if mode != b"160000":  # a submodule is a commit, not a blob
                blobs.append((sha.decode(), raw_name.decode("utf-8", "replace")))
    batch = _git(repo, "cat-file", "--batch", data="".join(f"{s}\n" for s, _ in blobs).encode())
    found: list[LeakFinding] = []
    pos = 0
    for _sha, name in blobs:
        header_end = batch.index(b"\n", pos)
        size = int(batch[pos:header_end].split()[2])
        content = batch[header_end + 1:header_end + 1 + size]
        pos = header_end + 1 + size + 1
        shown = redactor.redact(name)
        found += text_findings(shown, name, "name", redactor)
        found += findings(shown, [content], redactor)
    return found
