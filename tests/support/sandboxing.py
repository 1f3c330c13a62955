"""Shared by the sandbox tests: whether the sandbox works here, hostile Case set-up, and the
checks every attack test ends with (no form of the secret on disk, no process left, the
report and `validate` agree)."""

from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.sandbox.bwrap import Sandboxes, SandboxUnavailable
from core.standins.endpoint import ScriptedEndpoint
from tests.support.harness import ROOT, Harness, missing_machinery, unprivileged

HOSTILE = ROOT / "tests" / "cases" / "hostile.py"


def sandbox_here() -> str | None:
    """Why the sandbox cannot be set up on this machine, or None when it can."""
    box = Sandboxes(private=[], runs_root=Path("/nonexistent-runs-root"))
    try:
        box.prepare()
    except SandboxUnavailable as exc:
        return str(exc)
    finally:
        box.close()
    return None


_WHY = sandbox_here()


@pytest.fixture
def sandboxed() -> None:
    """Every sandbox test needs bwrap and user namespaces: CI fails without them."""
    if _WHY is not None:
        missing_machinery(f"the sandbox cannot be set up here: {_WHY}")


def secret_endpoint(harness: Harness, upstream: ScriptedEndpoint) -> str:
    """The upstream's URL with an invented password: a secret no other test uses."""
    url = upstream.base_url.replace("http://", f"http://harness:{secrets.token_hex(8)}@")
    harness.env["CTO_HARNESS_CASE_LOCAL_BASE_URL"] = url
    return url


def run_as(harness: Harness, as_user: bool, *flags: str) -> str:
    """`cto-harness run --json` as root or as an ordinary user (conftest's unprivileged());
    the run folder."""
    argv = [sys.executable, "-m", "core.cli", "run", *flags, "--json"]
    proc = subprocess.run(unprivileged(argv) if as_user else argv, env=harness.env,
                          capture_output=True, text=True, timeout=180, cwd=ROOT)
    assert "Traceback" not in proc.stderr, proc.stderr
    return json.loads(proc.stdout)["run_dir"]


def hostile(harness: Harness, mode: str, args: str = "") -> None:
    harness.env["CTO_HARNESS_CASE_BIN"] = str(HOSTILE)
    harness.env["CTO_HARNESS_CASE_ARGS"] = (
        f"--mode {mode} {args} --workspace {{workspace}} --model {{model}}")


def secret_forms(url: str) -> list[bytes]:
    """The secret as the test spells it, by its own code: plain, without scheme, the
    password, reversed, spaced out, base64 (every form lower-cased)."""
    password = url.split("harness:", 1)[1].split("@", 1)[0]
    bare = url.split("://", 1)[1]
    forms = [url, bare, password, url[::-1], bare[::-1], password[::-1], " ".join(url),
             " ".join(password), base64.b64encode(url.encode()).decode()]
    return [f.lower().encode() for f in forms]


def secret_on_disk(root: Path, url: str) -> list[str]:
    """Every file, name or link target under `root` that holds a form of the secret."""
    forms = secret_forms(url)
    found = []
    for folder, dirs, files in os.walk(os.fsencode(root)):
        for name in (*dirs, *files):
            path = os.path.join(folder, name)
            places = [name.lower()]
            if os.path.islink(path):
                places.append(os.readlink(path).lower())
            elif os.path.isfile(path):
                places.append(Path(os.fsdecode(path)).read_bytes().lower())
            if any(form in data for form in forms for data in places):
                found.append(os.fsdecode(path))
    return found


def sandbox_processes(uid: int) -> list[int]:
    """Host processes running as a run's sandbox uid (the report's `host_uid`; a root
    harness's own, so other runs going at once are not counted)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                status = (entry / "status").read_text()
            except OSError:
                continue
            owner = next(line.split()[1] for line in status.splitlines()
                         if line.startswith("Uid:"))
            if int(owner) == uid and "State:\tZ" not in status:
                found.append(int(entry.name))
    return found


def no_sandbox_process_left(report: dict, grace: float = 2.0) -> bool:
    """True once no process runs as the run's sandbox uid; a process the kernel is still
    tearing down (a PID namespace's are killed as its first process exits) gets `grace`."""
    uid = report["case_sandbox"]["host_uid"]
    deadline = time.monotonic() + grace
    while (left := sandbox_processes(uid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    described = [f"{pid}: {_describe(pid)}" for pid in left]
    assert not described, f"processes of the sandbox outlived the run: {described}"
    return True


def _describe(pid: int) -> str:
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        state = next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                     if line.startswith("State:"))
        return f"{cmd[:200]} ({state})"
    except OSError:
        return "gone"


def log_of(run_dir: str | Path) -> str:
    return (Path(run_dir) / "backend" / "case.log").read_text(errors="replace")


def attack_lines(run_dir: str | Path) -> list[str]:
    return [line for line in log_of(run_dir).splitlines() if line.startswith("attack: ")]


def assert_got_nothing(harness: Harness, run_dir: str | Path, url: str) -> dict:
    """What every attack test ends with; returns the report."""
    report = harness.report(run_dir)
    assert secret_on_disk(harness.runs_root, url) == [], "a form of the secret is on disk"
    assert report["redaction"]["log_redactions"] == 0, "the Case printed a secret form"
    assert report["leak_detected"] is False
    if os.geteuid() == 0:
        assert no_sandbox_process_left(report)
    _code, result = harness.run_json("validate", str(run_dir))
    crit = {c["id"]: c for c in result["criteria"]}
    assert result["status"] == report["status"]
    for cid in ("evidence_intact", "case_sandboxed", "endpoint_not_written"):
        assert crit[cid]["verdict"] == "ok", (cid, crit[cid]["detail"])
    assert report["case_sandbox"]["mode"] == "bwrap" and report["case_sandbox"]["ready"]
    return report
