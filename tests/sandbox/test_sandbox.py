"""The sandbox's mechanics, through whole runs: what it records, how a run ends (exit codes,
timeout, a killed harness), how it is configured and refused, the opt-out, and real
programs inside (a Python Case in a venv, a Node Case)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.sandbox.bwrap import CASE_UID_BASE, NPROC
from tests.support.case_runs import harness_killed_ends_the_case_group
from tests.support.harness import CASE, ROOT, Harness, missing_machinery
from tests.support.sandboxing import (
    HOSTILE,
    hostile,
    log_of,
    no_sandbox_process_left,
    sandboxed,  # noqa: F401 - the fixture
)

pytestmark = pytest.mark.usefixtures("sandboxed")


def started(harness: Harness, run_dir: str) -> dict:
    return next(e for e in harness.trace(run_dir) if e["event"] == "case_process_started")


def test_good_run_passes_in_the_sandbox_and_the_report_records_it(harness: Harness) -> None:
    code, out = harness.run_json("run")
    assert code == 0, out["reasons"]
    report = harness.report(out["run_dir"])
    box = report["case_sandbox"]
    assert (box["mode"], box["ready"], box["network"]) == ("bwrap", True, "relay-only")
    assert box["bwrap_version"] == "0.11.0"
    assert set(box["namespaces"]) == {"user", "pid", "mount", "ipc", "uts", "cgroup", "net"}
    manifest = json.loads((Path(out["run_dir"]) / "manifest.json").read_text())
    assert box["host_uid"] == (CASE_UID_BASE + manifest["harness_pid"] if os.geteuid() == 0
                               else os.getuid())
    assert box["limits"]["nproc"] == NPROC  # and the cgroup's: tests/sandbox/test_limits.py
    run_dir = Path(out["run_dir"])
    assert f"/workspace <- {run_dir / 'workspace'}" in box["rw_paths"]
    assert f"/home/case <- {run_dir / 'home'}" in box["rw_paths"]
    assert f"/task/TASK.md <- {run_dir / 'task' / 'TASK.md'}" in box["ro_paths"]
    assert any(CASE.is_relative_to(p) for p in box["ro_paths"] if "<-" not in p), \
        "the Case's own folder is shown (read-only)"
    assert report["case_network"] == "isolated"
    assert started(harness, out["run_dir"])["sandbox"] == "bwrap"
    assert (run_dir / "home").is_dir()
    code, result = harness.run_json("validate", out["run_dir"])
    crit = {c["id"]: c for c in result["criteria"]}
    assert code == 0 and crit["case_sandboxed"]["verdict"] == "ok"
    assert all(os.stat(p).st_uid == os.getuid() for p in run_dir.rglob("*")), \
        "everything the sandbox wrote is the harness's again"


@pytest.mark.parametrize("sandbox", ["on", "off"])
def test_a_case_ended_by_a_signal_exits_128_plus_the_signal(harness: Harness,
                                                            sandbox: str) -> None:
    harness.env["CTO_HARNESS_CASE_SANDBOX"] = sandbox
    hostile(harness, "signal")
    _code, out = harness.run_json("run", "--no-baseline")
    report = harness.report(out["run_dir"])
    assert report["case_exit_code"] == 128 + 15
    assert "the Case exited with code 143" in report["reasons"]


def test_timeout_ends_every_process_of_the_sandbox(harness: Harness) -> None:
    harness.env["CTO_HARNESS_CASE_ARGS"] = ("--mode hang --grandchild --workspace {workspace}"
                                            " --model {model}")
    t0 = time.monotonic()
    code, out = harness.run_json("run", "--no-baseline", "--timeout", "2")
    assert code == 1 and out["status"] == "timed_out"
    assert time.monotonic() - t0 < 30
    report = harness.report(out["run_dir"])
    assert report["case_exit_code"] == 128 + 15
    if os.geteuid() == 0:
        assert no_sandbox_process_left(report)


def test_a_case_that_freezes_its_sandbox_ends_at_its_timeout(harness: Harness) -> None:
    """It can stop the forwarder (its parent, the same uid): its own run then waits for the
    timeout, says so, and leaves nothing behind."""
    hostile(harness, "freeze")
    t0 = time.monotonic()
    code, out = harness.run_json("run", "--no-baseline", "--timeout", "6")
    assert code == 1 and out["status"] == "timed_out"
    assert time.monotonic() - t0 < 60
    assert "attack: freeze: stopped pid 2" in log_of(out["run_dir"])
    if os.geteuid() == 0:
        assert no_sandbox_process_left(harness.report(out["run_dir"]))


def test_killing_the_harness_ends_the_sandbox(harness: Harness) -> None:
    harness_killed_ends_the_case_group(harness, "on")


@pytest.mark.parametrize(("var", "value", "words"), [
    ("CTO_HARNESS_CASE_SANDBOX_RO", "relative/dir", "is not an absolute path"),
    ("CTO_HARNESS_CASE_SANDBOX_RO", "/no/such/folder", "does not exist"),
    ("CTO_HARNESS_CASE_SANDBOX_RO", "/", "is /"),
    ("CTO_HARNESS_CASE_SANDBOX_RO", "/run", "never shows"),
    ("CTO_HARNESS_CASE_SANDBOX_RW", str(ROOT / "core"), "harness's own install"),
    ("CTO_HARNESS_CASE_SANDBOX", "maybe", "must be 'on' (the default) or 'off'"),
    ("CTO_HARNESS_CASE_NETWORK", "isolated", "is retired"),
])
def test_bad_sandbox_settings_block_the_run_naming_the_variable(
        harness: Harness, var: str, value: str, words: str) -> None:
    harness.env[var] = value
    code, out = harness.run_json("run")
    assert code == 3 and out["status"] == "blocked"
    report = harness.report(out["run_dir"])
    reason = next(r for r in report["reasons"] if r.startswith("sandbox:"))
    assert var in reason and words in reason, reason
    assert not report["case_process_started"]
    assert report["case_sandbox"]["ready"] is False


def test_the_runs_root_is_never_extra(harness: Harness) -> None:
    harness.runs_root.mkdir(parents=True)
    harness.env["CTO_HARNESS_CASE_SANDBOX_RW"] = str(harness.runs_root)
    code, out = harness.run_json("run")
    assert code == 3
    assert any("CTO_HARNESS_CASE_SANDBOX_RW" in r and "never shows" in r
               for r in harness.report(out["run_dir"])["reasons"])


def test_extra_folders_are_shown_read_only_or_writable_and_given_back(
        harness: Harness, tmp_path: Path) -> None:
    ro, rw = tmp_path / "tools", tmp_path / "cache"
    ro.mkdir()
    rw.mkdir()
    (rw / "kept.txt").write_text("the user's\n")
    if os.geteuid() == 0:
        os.chown(rw / "kept.txt", 4242, 4242)
    harness.env["CTO_HARNESS_CASE_SANDBOX_RO"] = str(ro)
    harness.env["CTO_HARNESS_CASE_SANDBOX_RW"] = str(rw)
    hostile(harness, "write", f"--path {ro} --path {rw} --path /usr")
    _code, out = harness.run_json("run", "--no-baseline")
    lines = [x for x in log_of(out["run_dir"]).splitlines() if x.startswith("attack: write")]
    assert lines == [f"attack: write {ro}: OSError (Read-only file system)",
                     f"attack: write {rw}: written",
                     "attack: write /usr: OSError (Read-only file system)"], lines
    assert (rw / "written.txt").read_text() == "from the Case\n"
    box = harness.report(out["run_dir"])["case_sandbox"]
    assert (box["extra_ro"], box["extra_rw"]) == ([str(ro)], [str(rw)])
    assert str(rw) in box["rw_paths"] and str(ro) in box["ro_paths"]
    if os.geteuid() == 0:  # lent to the sandbox's uid for the run, given back after
        assert os.stat(rw).st_uid == 0 and os.stat(rw / "written.txt").st_uid == 0
        assert os.stat(rw / "kept.txt").st_uid == 4242


def test_sandbox_off_is_recorded_flagged_by_validate_and_lets_the_case_out(
        harness: Harness, tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.write_text(harness.env["CTO_HARNESS_CASE_LOCAL_BASE_URL"].split("//")[1]
                      .split("/")[0])
    harness.env["CTO_HARNESS_CASE_SANDBOX"] = "off"
    harness.env["CTO_HARNESS_CASE_ARGS"] = (
        f"--mode direct --target-file {target} --workspace {{workspace}} --model {{model}}")
    code, out = harness.run_json("run")
    assert "direct: connected" in log_of(out["run_dir"])
    report = harness.report(out["run_dir"])
    assert code == 0, report["reasons"]  # the run itself still passes
    assert report["case_sandbox"]["mode"] == "off" and report["case_network"] == "host"
    assert "CTO_HARNESS_CASE_SANDBOX=off" in report["case_sandbox"]["detail"]
    assert started(harness, out["run_dir"])["sandbox"] == "off"
    code, result = harness.run_json("validate", out["run_dir"])
    crit = {c["id"]: c for c in result["criteria"]}
    assert code == 1 and crit["case_sandboxed"]["verdict"] == "failed"
    assert "never evidence" in crit["case_sandboxed"]["detail"]
    assert result["stage2_pass_evidence"] is False


def test_a_kernel_refusing_user_namespaces_blocks_the_run(harness: Harness) -> None:
    """No silent fallback: the run is blocked, saying what the machine lacks."""
    script = ('echo 0 > /proc/sys/user/max_user_namespaces && exec "$0" -m core.cli run '
              '--json')
    proc = subprocess.run(["unshare", "--user", "--map-root-user", "sh", "-c", script,
                           sys.executable], env=harness.env, capture_output=True, text=True,
                          timeout=120, cwd=ROOT)
    if proc.returncode not in (0, 1, 3):
        missing_machinery(f"cannot make a user namespace to test in: {proc.stderr.strip()}")
    out = json.loads(proc.stdout)
    assert proc.returncode == 3 and out["status"] == "blocked"
    report = harness.report(out["run_dir"])
    reason = next(r for r in report["reasons"] if r.startswith("sandbox:"))
    assert "user namespaces" in reason, reason
    assert not report["case_process_started"]


def test_a_python_case_in_a_venv_runs_inside(harness: Harness, tmp_path: Path) -> None:
    venv = tmp_path / "agent-venv"
    subprocess.run(["/usr/bin/python3", "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=120)
    site = next(venv.glob("lib/python*/site-packages"))
    (site / "agentlib.py").write_text("GREETING = 'from the venv'\n")
    agent = tmp_path / "agent" / "agent.py"
    agent.parent.mkdir()
    agent.write_text(f"#!{venv}/bin/python\nimport runpy, sys, agentlib\n"
                     "print('agent:', agentlib.GREETING, sys.prefix, flush=True)\n"
                     f"runpy.run_path({str(CASE)!r}, run_name='__main__')\n")
    agent.chmod(0o755)
    harness.env["CTO_HARNESS_CASE_BIN"] = str(agent)
    harness.env["CTO_HARNESS_CASE_SANDBOX_RO"] = str(CASE.parent)
    code, out = harness.run_json("run")
    assert code == 0, (out["reasons"], log_of(out["run_dir"]))
    assert f"agent: from the venv {venv}" in log_of(out["run_dir"])
    assert str(venv) in harness.report(out["run_dir"])["case_sandbox"]["ro_paths"]


def test_a_node_case_runs_inside_and_keeps_state_in_its_home(harness: Harness) -> None:
    if subprocess.run(["node", "--version"], capture_output=True).returncode != 0:
        missing_machinery("node is not installed")
    harness.env["CTO_HARNESS_CASE_BIN"] = str(ROOT / "tests" / "cases" / "node_case.js")
    harness.env["CTO_HARNESS_CASE_ARGS"] = "--workspace {workspace} --model {model}"
    code, out = harness.run_json("run")
    run_dir = Path(out["run_dir"])
    assert code == 0, (out["reasons"], log_of(run_dir))
    state = json.loads((run_dir / "home" / ".config" / "node-agent" / "state.json")
                       .read_text())
    assert state == {"home": "/home/case", "calls": 1}


def test_hostile_case_script_is_what_runs(harness: Harness) -> None:
    """The attack tests' Case is the script they name (not the test Case by accident)."""
    hostile(harness, "signal")
    _code, out = harness.run_json("run", "--no-baseline")
    assert started(harness, out["run_dir"])["argv"][0] == str(HOSTILE)
