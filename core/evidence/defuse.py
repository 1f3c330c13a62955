"""What comes back from a sandbox made harmless on the host (issue 22).

A Case runs as the harness's user (or as a uid the harness lends a folder to), so a file it
leaves is the harness user's file: left setuid, any local account could run it as that user;
left world-writable (or in a world-writable or setgid folder), any account could rewrite
the evidence. So when a workspace or a home comes back (after the Case, after the checks),
every entry loses its setuid, setgid and sticky bits and its write bit for others, and is
owned by the harness's user.

Extended attributes are **stripped**, and each one's name recorded in the report
(`xattrs_stripped`), rather than scanned like contents: a name and value outside the bytes
that every reader, the leak scan, the artifact hashes and `validate` look at is a hiding
place none of them would see, and no task needs one. Stripping leaves nothing to scan, hash
or copy, and the record says a Case tried. Values are never read (they may hold the
secret). POSIX ACLs (`system.posix_acl_*`) go with them: an ACL could grant another account
what the modes no longer do.

Links are never followed: a link's own ownership is set with lchown, and it has no mode.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

from core.evidence.rundir import artifact_key

HARMFUL_BITS = stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX | stat.S_IWOTH


def _strip(path: str, stripped: list[str]) -> None:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return
    for name in names:
        try:
            os.removexattr(path, name, follow_symlinks=False)
        except OSError:
            stripped.append(f"{name} (could not be removed)")
        else:
            stripped.append(name)


def _defuse_one(path: str, st: os.stat_result, uid: int, gid: int) -> None:
    if os.geteuid() == 0 and (st.st_uid, st.st_gid) != (uid, gid):
        with contextlib.suppress(OSError):
            os.lchown(path, uid, gid)
    if stat.S_ISLNK(st.st_mode):
        return
    mode = stat.S_IMODE(st.st_mode)
    want = mode & ~HARMFUL_BITS
    if stat.S_ISDIR(st.st_mode):
        want |= stat.S_IRWXU  # a folder made 0000 would hide what it holds from this walk
    # chown clears setuid/setgid on files already; the bits are judged on what lstat saw
    if want != mode:
        with contextlib.suppress(OSError):
            os.chmod(path, want)


def defuse_tree(root: Path, run_root: Path) -> dict[str, list[str]]:
    """Make every entry under (and including) `root` harmless as the module says; returns
    the extended attributes stripped, by the entry's path relative to `run_root` (as the
    report's artifacts name it). Folders are walked by their listing, links never entered."""
    uid, gid = os.getuid(), os.getgid()
    stripped: dict[str, list[str]] = {}
    stack = [str(root)]
    while stack:
        path = stack.pop()
        try:
            st = os.lstat(path)
        except OSError:
            continue
        names: list[str] = []
        _strip(path, names)
        if names:
            stripped[artifact_key(Path(path), run_root)] = names
        _defuse_one(path, st, uid, gid)
        if stat.S_ISDIR(st.st_mode):
            try:
                with os.scandir(path) as entries:
                    stack.extend(entry.path for entry in entries)
            except OSError:
                continue  # unreadable: the leak scan names it
    return dict(sorted(stripped.items()))
