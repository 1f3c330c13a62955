"""Runs the dashboard starts: `cto-harness run` child processes, never in-process.

A child has its own session, so a crash of either side never takes down the other, and its
output goes to an unnamed temporary file, never a pipe nobody drains. The endpoint typed
into the dashboard reaches it only through its environment.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from pydantic import SecretStr

from core.evidence.models import Manifest
from core.settings import DEFAULT_PROFILE, DEFAULT_TASK, ENDPOINT_VAR


@dataclass(frozen=True)
class ChildRunRequest:
    """What the dashboard asks a `cto-harness run` child process for: the fields a retry
    copies from the run it retries, as the child's command line. Not `core`'s `RunRequest`
    (an in-process run's every parameter): the dashboard never runs a Case itself."""

    task: str = DEFAULT_TASK
    engine: str = "case"
    profile: str = DEFAULT_PROFILE
    demo: bool = False
    retry_of: str | None = None

    @classmethod
    def retry(cls, manifest: Manifest) -> ChildRunRequest:
        # a task from the user's folder is retried from that folder (its id alone would be
        # looked up among the bundled tasks)
        return cls(task=manifest.task_folder or manifest.task, engine=manifest.engine,
                   profile=manifest.profile,
                   demo=manifest.demo, retry_of=manifest.run_id)

    def argv(self, runs_root: Path) -> list[str]:
        argv = [sys.executable, "-m", "core.cli", "run", "--profile", self.profile,
                "--task", self.task, "--engine", self.engine, "--runs-root", str(runs_root)]
        if self.demo:
            argv.append("--demo")
        if self.retry_of:
            argv += ["--retry-of", self.retry_of]
        return argv


@dataclass
class ChildRun:
    """A `cto-harness run` the dashboard started."""

    request: ChildRunRequest
    process: subprocess.Popen[bytes]
    runs_root: Path
    output: IO[bytes] = field(repr=False)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def run_dir(self) -> Path | None:
        """The run's folder, named `<stamp>-<task>-<harness pid>` (`.N` on a collision)."""
        suffix = f"-{self.pid}"
        try:
            names = [e.name for e in os.scandir(self.runs_root) if e.is_dir()]
        except OSError:
            return None
        mine = [n for n in names if n.endswith(suffix) or f"{suffix}." in n]
        return self.runs_root / max(mine) if mine else None

    def cancel(self) -> None:
        """SIGINT, as Ctrl-C would: the harness ends its Case and writes a `cancelled`
        report."""
        if self.running:
            os.kill(self.pid, signal.SIGINT)

    def last_output(self, limit: int = 400) -> str:
        """The tail of what the child printed, for a run that died before its folder."""
        self.output.seek(0, os.SEEK_END)
        size = self.output.tell()
        self.output.seek(max(0, size - limit))
        return self.output.read().decode("utf-8", errors="replace").strip()

    def close(self) -> None:
        self.output.close()


def start_run(request: ChildRunRequest, runs_root: Path, endpoint: SecretStr | None) -> ChildRun:
    env = dict(os.environ)
    if endpoint is not None:  # typed into the dashboard: it, not a file, is meant
        env[ENDPOINT_VAR] = endpoint.get_secret_value()
        env.pop(f"{ENDPOINT_VAR}_FILE", None)
    output = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the child
    process = subprocess.Popen(request.argv(runs_root), env=env, stdin=subprocess.DEVNULL,
                               stdout=output, stderr=subprocess.STDOUT,
                               start_new_session=True)
    return ChildRun(request=request, process=process, runs_root=runs_root, output=output)
