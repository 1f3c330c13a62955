"""A remote trial's run folder growing on the job's machine while it runs (issue 20: "a trial
in flight appears as it does locally", in the dashboard and `cto-harness jobs`).

The driver pulls, about once a second, what the trial's folder on its node has grown by
(`TrialWorker.pull`: byte ranges of its regular files) and writes them here under the run's
own name, so every reader of runs (the run list, Live, the job's matrix, `validate` once it
ends) reads it unchanged. When the trial ends its whole folder comes back as tar and takes
this one's place (`unpack_run(..., replace=...)`): the final transfer is authoritative, the
stream only a view of it in the meantime.

What comes from a worker is hostile (its node may be anyone's; its workspace is the Case's):
a path is relative, of plain names, at most MAX_DEPTH deep; every folder is opened with
O_NOFOLLOW from the run folder's own descriptor and every file created with O_NOFOLLOW, so
nothing is written through a link; a range that does not continue what was written is
dropped; bytes and files are bounded as the final tar is (MAX_RUN_BYTES, MAX_MEMBERS);
folders are 0700 and files 0600, as a local run's are private.

One thing is rewritten: the manifest names the harness process writing the run, and the
readers ask whether it is alive here. A remote run's harness is on its node, so while it
streams the manifest names the driver (the process that writes this folder); once the driver
is gone, or the trial's node is lost, the run reads `interrupted`, as a local one whose
harness died does.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Any

from core.evidence.liveness import process_start_ticks
from core.jobs.cluster_worker import MAX_MEMBERS, MAX_RUN_BYTES, RUN_NAME

MAX_DEPTH = 32
MAX_MANIFEST = 1 << 20
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW


class LiveRun:
    """One remote trial's folder under `runs_root`, as far as it has come; `dir` is None
    until the first pull that held its manifest, `broken` says why streaming stopped."""

    def __init__(self, runs_root: Path) -> None:
        self.runs_root = runs_root
        self.dir: Path | None = None
        self.broken: str | None = None
        self._fd: int | None = None
        self._held: dict[str, int] = {}
        """Per file, how many of the remote file's bytes are here (the manifest's copy here
        differs: its harness is rewritten)."""
        self._total = 0
        self._manifest = b""

    def apply(self, delta: Any) -> bool:
        """Take in one pull; True when the folder has just appeared (its name is the
        trial's run id from now on). A delta that is not what a worker sends stops the
        stream (the final tar still comes) and says why in `broken`."""
        if self.broken is not None or not isinstance(delta, dict):
            return False
        name, files = delta.get("name"), delta.get("files")
        if not isinstance(name, str) or not isinstance(files, list):
            return self._stop("a pull that is not a name and files")
        if self.dir is not None and name != self.dir.name:
            return False  # not this run: the worker's, not ours, to explain at the end
        try:
            fresh = self.dir is None
            if fresh and not self._open(name):
                return False
            for entry in files:
                if not self._write(entry):
                    return False
            if fresh:  # published once its first files are in: no reader sees it empty
                final = self.runs_root / name
                if os.path.lexists(final):
                    return self._stop(f"{final} already exists")
                assert self.dir is not None
                os.rename(self.dir, final)
                self.dir = final
            return fresh
        except OSError as exc:
            return self._stop(f"cannot write it here ({exc.strerror or exc})")

    @property
    def published(self) -> bool:
        """Its folder is under the run's own name (readers see it)."""
        return self.dir is not None and not self.dir.name.startswith(".incoming-")

    def _stop(self, why: str) -> bool:
        self.broken = why
        return False

    def _open(self, name: str) -> bool:
        if not RUN_NAME.fullmatch(name):
            return self._stop(f"run folder name {name[:80]!r} is not a run id")
        staging = Path(tempfile.mkdtemp(prefix=".incoming-", dir=self.runs_root))
        self._fd = os.open(staging, _DIR_FLAGS)
        self.dir = staging
        return True

    def _write(self, entry: Any) -> bool:
        """One (path, offset, bytes, truncate); False when the stream must stop."""
        if not (isinstance(entry, (list, tuple)) and len(entry) == 4):
            return self._stop("a file entry of another shape")
        rel, offset, data, truncate = entry
        if not (isinstance(rel, str) and isinstance(offset, int) and isinstance(data, bytes)
                and isinstance(truncate, bool)):
            return self._stop("a file entry of another shape")
        parts = rel.split("/")
        if (len(parts) > MAX_DEPTH or len(rel) > 4096 or "\0" in rel
                or any(p in ("", ".", "..") or len(p) > 255 for p in parts)):
            return self._stop(f"a path that is not a plain relative one: {rel[:120]!r}")
        if offset != (0 if truncate else self._held.get(rel, -1)):
            return True  # does not continue what is here: left to the final tar
        if rel not in self._held and len(self._held) >= MAX_MEMBERS:
            return self._stop(f"over {MAX_MEMBERS} files")
        self._total += len(data)
        if self._total > MAX_RUN_BYTES:
            return self._stop(f"over {MAX_RUN_BYTES >> 20} MiB")
        parent = self._folder(parts[:-1])
        try:
            if rel == "manifest.json":
                self._put_manifest(parent, data, truncate)
            else:
                flags = (os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK
                         | (os.O_TRUNC if truncate else 0))
                fd = os.open(parts[-1], flags, 0o600, dir_fd=parent)
                try:
                    if not _regular(fd):
                        return self._stop(f"{rel[:120]!r} is not a file here")
                    os.pwrite(fd, data, offset)
                finally:
                    os.close(fd)
        finally:
            if parent != self._fd:
                os.close(parent)
        self._held[rel] = offset + len(data)
        return True

    def _folder(self, parts: list[str]) -> int:
        """The descriptor of the run folder's sub-folder `parts`, made 0700 where missing;
        never through a link (O_NOFOLLOW at every step)."""
        assert self._fd is not None
        fd = self._fd
        for part in parts:
            with contextlib.suppress(FileExistsError):
                os.mkdir(part, 0o700, dir_fd=fd)
            try:
                inner = os.open(part, _DIR_FLAGS, dir_fd=fd)
            finally:
                if fd != self._fd:
                    os.close(fd)
            fd = inner
        return fd

    def _put_manifest(self, parent: int, data: bytes, truncate: bool) -> None:
        self._manifest = (b"" if truncate else self._manifest) + data
        if len(self._manifest) > MAX_MANIFEST:
            self._manifest = b""
            return
        self._publish_manifest(parent, os.getpid(), process_start_ticks(os.getpid()))

    def _publish_manifest(self, parent: int, pid: int, ticks: int | None) -> None:
        """The manifest as the worker wrote it, naming `pid` as its harness; written whole
        and renamed into place (a reader never sees half of it). Not JSON yet: not written."""
        try:
            manifest = json.loads(self._manifest)
        except ValueError:
            return
        if not isinstance(manifest, dict):
            return
        manifest["harness_pid"], manifest["harness_start_ticks"] = pid, ticks
        temp = f".manifest.{secrets.token_hex(4)}"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600,
                     dir_fd=parent)
        with os.fdopen(fd, "wb") as out:
            out.write(json.dumps(manifest, indent=2).encode())
        os.replace(temp, "manifest.json", src_dir_fd=parent, dst_dir_fd=parent)

    def abandon(self) -> None:
        """The trial's node is gone and no final folder will come: its manifest names no
        live harness any more, so it reads `interrupted` at once (resumable)."""
        self.close()
        if self.dir is None or not self._manifest:
            return
        with contextlib.suppress(OSError):
            fd = os.open(self.dir, _DIR_FLAGS)
            try:
                self._publish_manifest(fd, 0, None)
            finally:
                os.close(fd)

    def discard(self) -> None:
        """The final folder came under another name, or was refused: this view goes."""
        self.close()
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _regular(fd: int) -> bool:
    return stat.S_ISREG(os.fstat(fd).st_mode)
