"""The harness as a real process, and what the tests that drive it share: the checkout's root,
the test Case, the model id the fixtures admit, and the two guards for machinery (bwrap, user
namespaces, tmux) a protection test needs. The fixtures that build these live in
tests/conftest.py; test modules import the names from here, never from conftest."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CASE = ROOT / "tests" / "cases" / "case.py"
# A source-of-truth file as the planning tools meet it (the gates, jobs and Work items tests).
SEED = ROOT / "tests" / "data" / "seed-sot-000_83b213521af4b263.txt"
QWEN = "qwen3.6-35b-a3b"
HOSTED_VARS = ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "OPENAI_API_KEY", "OPENAI_BASE_URL")


def answer(messages: list[dict]) -> str:
    return "```python slugify.py\ndef slugify(text):\n    return text\n```\n"


@dataclass
class Harness:
    """Runs `cto-harness` as a real process with a controlled environment."""

    env: dict[str, str]
    runs_root: Path

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "core.cli", *args], env=self.env,
                              capture_output=True, text=True, timeout=timeout, cwd=ROOT)

    def run_json(self, *args: str, timeout: float = 120) -> tuple[int, dict]:
        proc = self.run(*args, "--json", timeout=timeout)
        assert "Traceback" not in proc.stderr, proc.stderr
        try:
            return proc.returncode, json.loads(proc.stdout)
        except ValueError:
            raise AssertionError(f"not JSON: {proc.stdout!r} / {proc.stderr!r}") from None

    def start(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, "-m", "core.cli", *args], env=self.env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                cwd=ROOT)

    def report(self, run_dir: str | Path) -> dict:
        return json.loads((Path(run_dir) / "report.json").read_text())

    def trace(self, run_dir: str | Path) -> list[dict]:
        lines = (Path(run_dir) / "trace.jsonl").read_text().splitlines()
        return [json.loads(line) for line in lines]


def all_bytes(root: Path) -> Iterator[tuple[Path, bytes]]:
    for path in sorted(root.rglob("*")):
        if path.is_file():
            yield path, path.read_bytes()


def missing_machinery(reason: str) -> None:
    """A protection test whose machinery (bwrap, user namespaces, tmux) is missing here: in
    CI (`CI=true`) that fails the test, so a protection never goes untested and green;
    elsewhere it skips, with the reason printed."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true and {reason}", pytrace=False)
    print(f"skipped: {reason}")
    pytest.skip(reason)


def unprivileged(argv: list[str]) -> list[str]:
    """argv run as a user that file permissions apply to: root reads any folder, so as root
    it runs in a user namespace where it is an ordinary user."""
    if os.geteuid() != 0:
        return argv
    wrap = ["unshare", "--user", "--map-user=1000", "--map-group=1000"]
    if shutil.which("unshare") is None or subprocess.run(
            [*wrap, "true"], capture_output=True, timeout=10).returncode != 0:
        missing_machinery("running as root with no user namespace: no folder is unreadable "
                          "here")
    # A user has no cgroup of its own to bound a Case with here (no delegated v2 subtree):
    # its runs take the documented opt-out, or they would be blocked `limits: ...`.
    return [*wrap, "env", "CTO_HARNESS_CASE_LIMITS=off", *argv]
