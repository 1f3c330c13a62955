"""What crosses the cluster besides a trial's settings: a task folder out to the workers as
tar (they hold no copy of the tasks), and a trial's run folder back, unpacked into the job's
runs root as the hostile input it is.
"""

from __future__ import annotations

import io
import os
import shutil
import tarfile
import tempfile
import zlib
from pathlib import Path

from core.errors import BadInput, HarnessError
from core.evidence.defuse import defuse_tree
from core.jobs.cluster_worker import MAX_MEMBERS, MAX_RUN_BYTES, MAX_TASK_BYTES, RUN_NAME, pack_tree

MAX_TAR_BYTES = MAX_RUN_BYTES + MAX_MEMBERS * 1536
"""A run's tar at most: its content's bound and each member's headers (a PAX one included)."""


class Unpacked(HarnessError):
    """A run folder that came back and could not be taken in; the message says why."""


def inflate(blob: bytes) -> bytes:
    """A worker's zlib-compressed tar, inflated to at most MAX_TAR_BYTES: a few bytes that
    would inflate to more (a bomb) are refused before they are held."""
    inflater = zlib.decompressobj()
    try:
        data = inflater.decompress(blob, MAX_TAR_BYTES + 1)
    except zlib.error as exc:
        raise Unpacked(f"not a compressed run folder ({exc})") from None
    if len(data) > MAX_TAR_BYTES or inflater.unconsumed_tail:
        raise Unpacked(f"over {MAX_TAR_BYTES >> 20} MiB once inflated")
    if not inflater.eof:
        raise Unpacked("a compressed run folder cut short")
    return data


def unpack_run(blob: bytes, runs_root: Path, name: str,
               replace: Path | None = None) -> tuple[Path, list[str]]:
    """A trial's run folder (tar bytes from a worker: hostile) into `runs_root/name`: only
    files, folders and links that stay inside it, at most MAX_RUN_BYTES and MAX_MEMBERS,
    links created and never followed, then made harmless (`defuse_tree`). It takes the
    place of `replace`, the folder streamed while the trial ran (core.jobs.cluster_stream),
    once whole: the final folder is the authoritative one. Returns the folder and the
    members left out, each in words."""
    if not RUN_NAME.fullmatch(name):
        raise Unpacked(f"run folder name {name[:80]!r} is not a run id")
    final = runs_root / name
    if os.path.lexists(final) and final != replace:
        raise Unpacked(f"{final} already exists; the trial's run was not taken in")
    left_out: list[str] = []
    staging = Path(tempfile.mkdtemp(prefix=".incoming-", dir=runs_root))
    try:
        with tarfile.open(fileobj=io.BytesIO(blob), mode="r:") as tar:
            members: list[tarfile.TarInfo] = []
            total = 0
            for member in tar:
                if len(members) >= MAX_MEMBERS:
                    raise Unpacked(f"over {MAX_MEMBERS} entries")
                inside = member.name == name or member.name.startswith(name + "/")
                if not inside or not (member.isreg() or member.isdir() or member.issym()):
                    left_out.append(f"{member.name[:200]}: not a file, folder or link of "
                                    "the run")
                    continue
                total += member.size if member.isreg() else 0
                if total > MAX_RUN_BYTES:
                    raise Unpacked(f"over {MAX_RUN_BYTES >> 20} MiB")
                members.append(member)

            def data_only(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo | None:
                try:
                    return tarfile.data_filter(member, dest)
                except tarfile.FilterError as exc:
                    left_out.append(f"{member.name[:200]}: {exc}")
                    return None

            tar.extractall(staging, members=members, filter=data_only)
        landed = staging / name
        if not landed.is_dir() or landed.is_symlink():
            raise Unpacked("the tar held no run folder")
        defuse_tree(landed, landed)
        if final == replace and os.path.lexists(final):
            os.rename(final, staging / ".streamed")  # goes with the staging folder
        os.rename(landed, final)
    except (tarfile.TarError, OSError) as exc:
        raise Unpacked(f"unreadable tar ({exc})") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final, left_out


def pack_task(folder: Path) -> bytes:
    """A task folder as sent to the workers (they need no copy of the tasks)."""
    try:
        return pack_tree(folder, folder.name, MAX_TASK_BYTES)
    except ValueError as exc:
        raise BadInput(f"task folder {folder}: {exc}; a task sent to the cluster must be "
                       "smaller") from None
