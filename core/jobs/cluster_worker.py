"""A cluster job's worker side: the actor that runs trials on a Ray worker node.

Each trial is an ordinary `cto-harness run` child of this actor, started exactly as a local
job starts one (its own relay, sandbox, baseline and redactor, SIGTERM when its parent dies),
with its relay forwarding to the gateway named by the job. Its run folder is made under a
scratch folder private to this node and sent back whole, as tar bytes, when the run ends;
the job's machine unpacks it through the hostile-file rules (`core.jobs.cluster`).

Nothing secret goes through Ray (issue 20): what comes in is a task folder (tar bytes), the
trial's numbers, the gateway's URL and fingerprint and the *path* of the gateway token file;
what goes back is the run folder (no secret by the run's own invariants), an exit code and
a line of stderr. The gateway token is read from that file by the run's relay on this node,
so it is never a task argument, a return value or an env var of Ray's. Ray's own variables
(`RAY_*`, its auth token among them) are not passed on to the run.

This module is imported by Ray on the worker nodes (pickled by reference): it imports
nothing of Ray at module level and only the standard library besides, so a node without
the harness fails with an import error the driver turns into one line.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
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
GATEWAY_VARS = ("CTO_HARNESS_GATEWAY_URL", "CTO_HARNESS_GATEWAY_FINGERPRINT", TOKEN_FILE_VAR)
RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,200}")


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


def _die_with_parent(parent: int) -> None:
    import ctypes

    with contextlib.suppress(OSError):
        ctypes.CDLL(None).prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:
        os.kill(os.getpid(), signal.SIGTERM)


class TrialWorker:
    """One slot of one node (it holds one `cto_worker`): runs trials one after another,
    warm (Ray's worker process and the harness's imports stay), so a trial costs one
    `cto-harness run` child and the tar of its folder. Threaded (max_concurrency 2) so
    `cancel` reaches a trial in flight."""

    def __init__(self) -> None:
        self.node = node_name()
        self.proc: subprocess.Popen[bytes] | None = None
        self.cancelled = False
        self.lock = threading.Lock()

    def where(self) -> str:
        return self.node

    def cancel(self) -> None:
        """SIGINT to the trial's run, as Ctrl-C on one run: it ends its Case and writes a
        `cancelled` report, which then comes back like any other."""
        with self.lock:
            self.cancelled = True
            if self.proc is not None and self.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.proc.pid, signal.SIGINT)

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
            with self.lock:
                if self.cancelled:
                    out["why"] = "cancelled before it started"
                    return out
                self.proc = subprocess.Popen(
                    argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE, cwd=work, env=env, start_new_session=True,
                    preexec_fn=functools.partial(_die_with_parent, os.getpid()))
            stdout, stderr = self.proc.communicate()
            out["code"] = self.proc.returncode
            lines = stderr.decode("utf-8", "replace").strip().splitlines()
            out["why"] = (lines[-1] if lines else f"cto-harness run exited "
                          f"{self.proc.returncode}")[:500]
            run_dir = _run_dir(stdout, runs)
            if run_dir is not None:
                out["run_name"] = run_dir.name
                try:
                    out["tar"] = pack_tree(run_dir, run_dir.name, MAX_RUN_BYTES)
                except (ValueError, OSError) as exc:
                    keep = True
                    out["why"] = (f"run folder not sent back ({exc}); it stays on node "
                                  f"{self.node} at {run_dir}")
            return out
        finally:
            with self.lock:
                self.proc = None
                self.cancelled = False
            if not keep:
                shutil.rmtree(work, ignore_errors=True)


def _run_dir(stdout: bytes, runs: Path) -> Path | None:
    """The run folder `run --json` printed, else the one folder it made under `runs`."""
    with contextlib.suppress(ValueError, AttributeError, TypeError):
        named = Path(json.loads(stdout)["run_dir"])
        if named.parent == runs and RUN_NAME.fullmatch(named.name):
            return named
    made = [p for p in runs.iterdir() if p.is_dir() and not p.is_symlink()
            and RUN_NAME.fullmatch(p.name)] if runs.is_dir() else []
    return made[0] if len(made) == 1 else None
