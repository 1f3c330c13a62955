"""A cluster job's worker side: the actor that runs trials on a Ray worker node.

Each trial is an ordinary `cto-harness run` child of this actor, started exactly as a local
job starts one (its own relay, sandbox, baseline and redactor, SIGTERM when its parent dies),
with its relay forwarding to the gateway named by the job. Its run folder is made under a
scratch folder private to this node; while it runs, the driver pulls what it has grown by
(`pull`: bounded byte ranges of its regular files, so a trial in flight shows on the job's
machine as a local one does), and when it ends it is sent back whole, as tar bytes, which
the job's machine unpacks through the hostile-file rules (`core.jobs.cluster_transfer`) in
place of what was streamed.

Nothing secret goes through Ray (issue 20): what comes in is a task folder (tar bytes), the
trial's numbers, the gateway's URL and fingerprint and the *path* of the gateway token file;
what goes back is the run folder (no secret by the run's own invariants; a zlib-compressed
tar), an exit code and a line of stderr. The gateway token is read from that file by the
run's relay on this node, so it is never a task argument, a return value or an env var of
Ray's. Ray's own variables (`RAY_*`, its auth token among them) are not passed on to the run.

This module is imported by Ray on the worker nodes (pickled by reference): it imports
nothing of Ray at module level and only the standard library besides, so a node without
the harness fails with an import error the driver turns into one line.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import io
import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tarfile
import tempfile
import threading
import zlib
from pathlib import Path
from typing import Any

RESOURCE = "cto_worker"
"""The custom resource a worker node offers (`ray start --resources '{"cto_worker": N}'`):
N trials at once on that node; a node without it (the head) never runs a trial."""
MAX_RUN_BYTES = 512 << 20
"""A run folder larger than this is not sent back (it stays on the node, named in the
trial's problem): the driver's memory and the object store are bounded."""
MAX_TASK_BYTES = 64 << 20
MAX_MEMBERS = 200_000
SCRATCH_VAR = "CTO_HARNESS_CLUSTER_SCRATCH"
"""A worker node's folder for trials' run folders while they run (default: the system's
temporary folder); each trial's lives there until it has been sent back."""
TOKEN_FILE_VAR = "CTO_HARNESS_GATEWAY_TOKEN_FILE"
LAUNCHER_VAR = "CTO_HARNESS_JOB_LAUNCHER"
"""`cold` on a worker node: its trials start as fresh interpreters, not from a warm launcher
(core.jobs.runner reads the same variable for a local job)."""
GATEWAY_VARS = ("CTO_HARNESS_GATEWAY_URL", "CTO_HARNESS_GATEWAY_FINGERPRINT", TOKEN_FILE_VAR)
RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,200}")
PULL_BYTES = 4 << 20
"""What one `pull` sends at most: a trial writing faster catches up over several pulls
instead of one Ray object the size of its log."""
_LAST = ("workspace", "baseline")
"""Pulled after the run's own records: the Case's files matter less while it runs."""


def node_name() -> str:
    """`<node ip>/<first 12 hex of the Ray node id>`: the host for people, the id to tell
    two nodes of one host apart."""
    import ray

    ctx = ray.get_runtime_context()
    try:
        ip = ray.util.get_node_ip_address()
    except Exception:  # the name is a label; the id alone still tells nodes apart
        ip = socket.gethostname()
    return f"{ip}/{ctx.get_node_id()[:12]}"


def pack_tree(folder: Path, arcname: str, limit: int) -> bytes:
    """`folder` as an uncompressed tar under `arcname`, links stored as links (never
    followed), FIFOs, sockets and devices left out, refused over `limit` bytes of content."""
    total = 0
    for root, dirs, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(OSError):
                st = os.lstat(os.path.join(root, name))
                total += st.st_size if st.st_mode & 0o170000 == 0o100000 else 0
        if total > limit:
            raise ValueError(f"over {limit >> 20} MiB")
        dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(root, d))]

    def keep(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        return info if info.isreg() or info.isdir() or info.issym() else None

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.add(folder, arcname=arcname, recursive=True, filter=keep)
    return buf.getvalue()


def _unpack_task(blob: bytes, into: Path) -> Path:
    """The task folder the job sent (the driver's copy; workers need none of their own)."""
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:") as tar:
        tar.extractall(into, filter="data")
    (folder,) = [p for p in into.iterdir() if p.is_dir()]
    return folder


class TrialWorker:
    """One slot of one node (it holds one `cto_worker`): runs trials one after another,
    warm (Ray's worker process and the harness's imports stay), so a trial costs one
    `cto-harness run` child and the tar of its folder. Threaded (max_concurrency 3) so
    `cancel` and `pull` reach a trial in flight."""

    def __init__(self) -> None:
        self.node = node_name()
        self.proc: subprocess.Popen[bytes] | None = None
        self.cancelled = False
        self.lock = threading.Lock()
        self.trial: str | None = None
        """The key of the trial running now (the driver names it): a late pull for the
        trial before gets nothing of this one's."""
        self.runs: Path | None = None
        self.sent: dict[str, tuple[int, int]] = {}
        self.child: Any | None = None
        """The trial forked from the warm launcher (a `WarmChild`), while it runs."""
        self.loop: asyncio.AbstractEventLoop | None = None
        self.warm: Any | None = None
        self.warm_key: tuple[tuple[str, str], ...] | None = None
        self.cold = False

    def where(self) -> str:
        return self.node

    def cancel(self) -> None:
        """SIGINT to the trial's run, as Ctrl-C on one run: it ends its Case and writes a
        `cancelled` report, which then comes back like any other."""
        with self.lock:
            self.cancelled = True
            if self.child is not None:
                self.child.send_signal(signal.SIGINT)
            if self.proc is not None and self.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.proc.pid, signal.SIGINT)

    # -- the node's warm launcher ------------------------------------------------------
    def _call(self, coro: Any, timeout: float | None = None) -> Any:
        """A coroutine on this actor's own event loop (a thread of its own: Ray runs the
        actor's methods on threads of its pool), waited for here."""
        if self.loop is None:
            self.loop = asyncio.new_event_loop()
            threading.Thread(target=self.loop.run_forever, daemon=True,
                             name="trial-launcher-loop").start()
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def _launcher(self, env: dict[str, str], scratch: Path) -> Any | None:
        """The warm launcher (core/jobs/warm.py) this slot's trials are forked from, as a
        local job's are: a trial then pays no interpreter start and no imports. Started at
        the first trial with the trials' environment (a later trial with another one gets
        a new launcher); None, and trials started cold, when `CTO_HARNESS_JOB_LAUNCHER` is
        `cold` on this node or the launcher cannot start."""
        if env.get(LAUNCHER_VAR, "").strip().lower() == "cold" or self.cold:
            return None
        from core.jobs.warm import LauncherGone, WarmLauncher, die_with_parent

        key = tuple(sorted(env.items()))
        if self.warm is not None and (self.warm_key != key or self.warm.gone):
            with contextlib.suppress(Exception):
                self._call(self.warm.close(), 30)
            self.warm = None
        if self.warm is None:
            try:
                self.warm = self._call(WarmLauncher.start(
                    preexec=functools.partial(die_with_parent, os.getpid()), env=env,
                    cwd=str(scratch)), 120)
            except (LauncherGone, TimeoutError):
                self.cold = True  # this node's trials start cold from now on
                return None
            self.warm_key = key
        return self.warm

    def _spawn(self, launcher: Any, argv: list[str]) -> Any | None:
        """A trial forked from the launcher; None (start it cold) when it is gone."""
        from core.jobs.warm import LauncherGone

        try:
            return self._call(launcher.spawn(argv), 60)
        except (LauncherGone, TimeoutError):
            return None

    def pull(self, trial: str) -> dict[str, Any] | None:
        """What the trial's run folder has grown by since the last pull: {"name": its
        folder's name, "files": [(path, offset, bytes, truncate), ...]}, at most PULL_BYTES;
        None before its folder has a manifest (the driver shows no half-made run)."""
        with self.lock:
            runs = self.runs if trial == self.trial else None
        if runs is None:
            return None
        made = [p for p in runs.iterdir() if RUN_NAME.fullmatch(p.name) and p.is_dir()
                and not p.is_symlink()] if runs.is_dir() else []
        if len(made) != 1 or not (made[0] / "manifest.json").is_file():
            return None
        return {"name": made[0].name, "files": grown(made[0], self.sent, PULL_BYTES)}

    def run(self, spec: dict[str, Any], task_tar: bytes) -> dict[str, Any]:
        """One trial; returns the node, the run's exit code, its last stderr line and its
        folder as tar bytes (None when it made none or it was too large)."""
        scratch = Path(os.environ.get(SCRATCH_VAR) or tempfile.gettempdir())
        scratch.mkdir(parents=True, exist_ok=True, mode=0o700)
        work = Path(tempfile.mkdtemp(prefix="cto-harness-trial-", dir=scratch))
        out: dict[str, Any] = {"node": self.node, "code": None, "why": "", "run_name": None,
                               "tar": None}
        keep = False
        try:
            folder = _unpack_task(task_tar, work / "task")
            runs = work / "runs"
            runs.mkdir(mode=0o700)
            with self.lock:
                self.trial, self.runs, self.sent = spec.get("trial"), runs, {}
            argv = [sys.executable, "-m", "core.cli", "run", "--json", "--profile",
                    spec["profile"], "--task", str(folder), "--runs-root", str(runs),
                    "--timeout", repr(spec["timeout_s"]), "--job-id", spec["job_id"],
                    "--attempt", str(spec["attempt"]), "--node", self.node]
            if spec.get("demo"):
                argv.append("--demo")
            if spec.get("retry_of"):
                argv += ["--retry-of", spec["retry_of"]]
            env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
            for name, value in spec.get("gateway", {}).items():
                # this node's own setting wins (its token file may live elsewhere here)
                if name in GATEWAY_VARS and value and not os.environ.get(name):
                    env[name] = value
            launcher = self._launcher(env, scratch)
            with self.lock:
                if self.cancelled:
                    out["why"] = "cancelled before it started"
                    return out
                child = self._spawn(launcher, argv[3:]) if launcher is not None else None
                if child is None:
                    from core.jobs.warm import die_with_parent

                    self.proc = subprocess.Popen(
                        argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE, cwd=work, env=env, start_new_session=True,
                        preexec_fn=functools.partial(die_with_parent, os.getpid()))
                self.child = child
            if child is not None:
                stdout, stderr = self._call(child.communicate())
                code = child.returncode
            else:
                assert self.proc is not None
                stdout, stderr = self.proc.communicate()
                code = self.proc.returncode
            out["code"] = code
            lines = stderr.decode("utf-8", "replace").strip().splitlines()
            out["why"] = (lines[-1] if lines else f"cto-harness run exited {code}")[:500]
            run_dir = _run_dir(stdout, runs)
            if run_dir is not None:
                out["run_name"] = run_dir.name
                try:
                    # zlib's fastest level: a demo run's 130 KiB become ~20, under Ray's
                    # 100 KiB for a result returned inline with the call's answer (larger
                    # ones go through both nodes' object stores: ~80 ms more a trial here)
                    out["tar"] = zlib.compress(pack_tree(run_dir, run_dir.name,
                                                         MAX_RUN_BYTES), 1)
                except (ValueError, OSError) as exc:
                    keep = True
                    out["why"] = (f"run folder not sent back ({exc}); it stays on node "
                                  f"{self.node} at {run_dir}")
            return out
        finally:
            with self.lock:
                self.proc, self.child = None, None
                self.cancelled = False
                self.trial, self.runs = None, None
            if not keep:
                shutil.rmtree(work, ignore_errors=True)


def _walk_order(name: str) -> tuple[int, str]:
    return (name in _LAST, name)


def grown(run_dir: Path, sent: dict[str, tuple[int, int]], budget: int
          ) -> list[tuple[str, int, bytes, bool]]:
    """The byte ranges of `run_dir`'s regular files not sent yet, as (path relative to it,
    offset, bytes, truncate), at most `budget` bytes; `sent` (path -> (inode, bytes sent))
    is updated. A file replaced (another inode, as an atomic write makes) or shrunk is sent
    again from 0 with `truncate`; links, FIFOs, sockets and devices are never opened."""
    out: list[tuple[str, int, bytes, bool]] = []
    for root, dirs, files in os.walk(run_dir):
        dirs.sort(key=_walk_order)
        rel_root = os.path.relpath(root, run_dir)
        for name in sorted(files, key=lambda n: (n != "manifest.json", n)):
            rel = name if rel_root == "." else f"{rel_root}/{name}"
            try:
                fd = os.open(os.path.join(root, name),
                             os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
            except OSError:  # a link (ELOOP), gone, or unreadable: the final tar says
                continue
            try:
                st = os.fstat(fd)
                if not stat.S_ISREG(st.st_mode):
                    continue
                inode, offset = sent.get(rel, (-1, 0))
                fresh = inode != st.st_ino or st.st_size < offset
                offset = 0 if fresh else offset
                if not fresh and st.st_size == offset:
                    continue
                data = os.pread(fd, min(st.st_size - offset, budget), offset)
            except OSError:
                continue
            finally:
                os.close(fd)
            out.append((rel, offset, data, fresh))
            sent[rel] = (st.st_ino, offset + len(data))
            budget -= len(data)
            if budget <= 0:
                return out
    return out


def _run_dir(stdout: bytes, runs: Path) -> Path | None:
    """The run folder `run --json` printed, else the one folder it made under `runs`."""
    with contextlib.suppress(ValueError, AttributeError, TypeError):
        named = Path(json.loads(stdout)["run_dir"])
        if named.parent == runs and RUN_NAME.fullmatch(named.name):
            return named
    made = [p for p in runs.iterdir() if p.is_dir() and not p.is_symlink()
            and RUN_NAME.fullmatch(p.name)] if runs.is_dir() else []
    return made[0] if len(made) == 1 else None
