"""Leak scan: every form of every secret, in files or in the git index, reported by place.

A finding names the file, the line, the secret and the form, never the value, so the
report of a leak is not a leak. The run's end scans its whole directory with it, and
`cto-harness scan` runs it on any path or, as a pre-commit hook, on what is staged.
"""

from __future__ import annotations

import argparse
import codecs
import itertools
import os
import subprocess
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

from core.models import EXIT_USAGE, LeakFinding
from core.redact import Redactor
from core.term import visible

READ_CHUNK = 1 << 20


def _findings(name: str, chunks: Iterable[bytes], redactor: Redactor) -> Iterator[LeakFinding]:
    """Scan a file's bytes in pieces that overlap by the longest form, counting lines;
    invalid UTF-8 reads as U+FFFD, as the redactor's streams write it."""
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    overlap = redactor._max_span
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


def _file_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as fh:
        while chunk := fh.read(READ_CHUNK):
            yield chunk


def _walk_files(paths: Iterable[Path]) -> Iterator[Path]:
    for path in paths:
        if path.is_dir() and not path.is_symlink():
            for folder, dirs, files in os.walk(path):
                dirs.sort()
                for file in sorted(files):
                    candidate = Path(folder, file)
                    if candidate.is_file() and not candidate.is_symlink():
                        yield candidate
        elif path.is_file():
            yield path


def _display(path: Path, root: Path | None) -> str:
    if root is not None:
        try:
            return path.relative_to(root).as_posix()
        except ValueError:
            pass
    return path.as_posix()


def scan_paths(paths: Iterable[Path], redactor: Redactor,
               root: Path | None = None) -> list[LeakFinding]:
    """Findings in every regular file under `paths` (symlinks are not followed: a link can
    point anywhere, the file it names is scanned where it lives if it is in `paths`)."""
    findings: list[LeakFinding] = []
    for path in _walk_files(paths):
        try:
            findings += _findings(_display(path, root), _file_chunks(path), redactor)
        except OSError:
            continue  # vanished or unreadable while scanning: nothing of it was written out
    return findings


def _git(repo: Path, *args: str, data: bytes | None = None) -> bytes:
    done = subprocess.run(["git", "-C", str(repo), *args], input=data, capture_output=True,
                          check=False)
    if done.returncode != 0:
        raise GitError(done.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or [""])
    return done.stdout


class GitError(Exception):
    def __init__(self, lines: list[str]) -> None:
        super().__init__(lines[0] if lines else "git failed")


def scan_git_index(repo: Path, redactor: Redactor) -> list[LeakFinding]:
    """Findings in the blobs staged for the next commit (added, copied, modified, renamed):
    what a pre-commit hook must stop, whatever the work tree holds."""
    names = _git(repo, "diff", "--cached", "--name-only", "--no-renames", "-z",
                 "--diff-filter=ACM").split(b"\0")
    names = [n for n in names if n]
    if not names:
        return []
    entries = _git(repo, "ls-files", "--stage", "-z", "--", *[n.decode() for n in names])
    blobs: list[tuple[str, str]] = []
    for entry in entries.split(b"\0"):
        if entry:
            meta, _, name = entry.partition(b"\t")
            mode, sha = meta.split()[:2]
            if mode != b"160000":  # a submodule is a commit, not a blob
                blobs.append((sha.decode(), name.decode("utf-8", "replace")))
    batch = _git(repo, "cat-file", "--batch", data="".join(f"{s}\n" for s, _ in blobs).encode())
    findings: list[LeakFinding] = []
    pos = 0
    for _sha, name in blobs:
        header_end = batch.index(b"\n", pos)
        size = int(batch[pos:header_end].split()[2])
        content = batch[header_end + 1:header_end + 1 + size]
        pos = header_end + 1 + size + 1
        findings += _findings(name, [content], redactor)
    return findings


def _configured_redactor() -> Redactor | None:
    from core.settings import resolve

    named = resolve().secrets()
    return Redactor(named) if named else None


def _run(args: argparse.Namespace) -> int:
    from core.cli import UsageError, emit_json

    if not args.paths and not args.staged:
        raise UsageError("scan: name at least one PATH, or --staged for the git index")
    missing = [p for p in args.paths if not Path(p).exists()]
    if missing:
        raise UsageError(f"scan: no such file or directory: {missing[0]}")
    redactor = _configured_redactor()
    if redactor is None:
        print("cto-harness: scan: no secret is configured, so there is nothing to look for; "
              "set CTO_HARNESS_CASE_LOCAL_BASE_URL (or CTO_HARNESS_CASE_LOCAL_BASE_URL_FILE)",
              file=sys.stderr)
        return EXIT_USAGE
    findings = scan_paths([Path(p) for p in args.paths], redactor)
    if args.staged:
        try:
            findings += scan_git_index(Path.cwd(), redactor)
        except (GitError, OSError) as exc:
            raise UsageError(f"scan --staged: git could not read the index here ({exc})") from None
    if args.json:
        emit_json({"clean": not findings, "forms": len(redactor.forms),
                   "unmaskable_forms": redactor.unmaskable,
                   "findings": [f.model_dump(mode="json") for f in findings]})
    else:
        for f in findings:
            print(visible(f"{f.file}:{f.line}: {f.secret} ({f.form})"))
        print(f"cto-harness scan: {len(findings)} leak(s) found" if findings
              else f"cto-harness scan: clean ({len(redactor.forms)} forms looked for)",
              file=sys.stderr)
    return 1 if findings else 0


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "scan", help="look for every form of the configured secrets in files or the git index",
        description="Exit 1 when any form of the endpoint or API key is found (file:line, "
                    "secret, form; never the value), 0 when clean, 2 on bad input.")
    parser.add_argument("paths", nargs="*", metavar="PATH", help="files or directories")
    parser.add_argument("--staged", action="store_true",
                        help="scan the blobs staged in the git index (a pre-commit hook)")
    parser.add_argument("--json", action="store_true", help="findings as JSON")
    parser.set_defaults(func=_run)
