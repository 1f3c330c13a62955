"""Setup is never the Case's fault: a sandbox that cannot be built around the Case, a Case
binary the sandbox cannot start, a `*_FILE` the harness cannot examine — each blocks the
run (exit 3, a `sandbox:`/`config:` reason, class `infrastructure`) and
`case_process_started` never appears; a Case that really ran and exited 125 or 127 on its
own is still judged as the Case (core/sandbox/status.py tells the two apart)."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from tests.support.harness import CASE, Harness, missing_machinery
from tests.support.sandboxing import (  # noqa: F401 - the fixture
    log_of,
    run_as,
    sandboxed,
)

pytestmark = pytest.mark.usefixtures("sandboxed")


def events(harness: Harness, run_dir: str) -> list[str]:
    return [e["event"] for e in harness.trace(run_dir)]


def assert_blocked_before_the_case(harness: Harness, code: int, out: dict, prefix: str,
                                   *words: str) -> str:
    report = harness.report(out["run_dir"])
    assert code == 3 and report["status"] == "blocked", (code, report["reasons"])
    reason = next((r for r in report["reasons"] if r.startswith(prefix)), None)
    assert reason is not None, report["reasons"]
    for word in words:
        assert word in reason, reason
    assert report["failure_class"] == "infrastructure"
    assert not report["case_process_started"]
    seen = events(harness, out["run_dir"])
    assert "case_process_started" not in seen and "case_process_exited" not in seen, seen
    assert "run_blocked" in seen
    assert (Path(out["run_dir"]) / "backend"
            / "provider-local-config-unavailable.txt").is_file()
    return reason


def script(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)
    return path


def test_a_case_binary_the_sandbox_cannot_start_blocks_the_run(harness: Harness,
                                                               tmp_path: Path) -> None:
    """Its `#!` interpreter is nowhere: the exec fails inside the sandbox (today: `failed`,
    'the Case exited with code 127', a verdict on a Case that never ran)."""
    agent = script(tmp_path / "agent" / "agent", "#!/nonexistent/interpreter\nprint(1)\n")
    harness.env["CTO_HARNESS_CASE_BIN"] = str(agent)
    code, out = harness.run_json("run")
    assert_blocked_before_the_case(harness, code, out, "sandbox:", "cannot start",
                                   str(agent), "#! interpreter is not")


def test_a_case_that_exits_127_itself_is_still_the_cases_failure(harness: Harness,
                                                                 tmp_path: Path) -> None:
    """The other side: the Case ran (the sandbox said `ready`, the exec happened) and its
    own exit code 127, or 125 (init's setup-failed code), is its own."""
    for code_of_case in (127, 125):
        agent = script(tmp_path / f"agent{code_of_case}" / "agent",
                       f"#!/bin/sh\necho started\nexit {code_of_case}\n")
        harness.env["CTO_HARNESS_CASE_BIN"] = str(agent)
        code, out = harness.run_json("run", "--no-baseline")
        report = harness.report(out["run_dir"])
        assert code == 1 and report["status"] == "failed", report["reasons"]
        assert report["case_process_started"] and report["case_exit_code"] == code_of_case
        assert report["failure_class"] == "agent"
        assert "case_process_started" in events(harness, out["run_dir"])
        assert "started" in log_of(out["run_dir"])


def test_a_secret_file_under_a_home_inside_the_cases_folder_is_masked_and_runs(
        harness: Harness, tmp_path: Path) -> None:
    """HOME sits inside a folder the sandbox shows (the Case's own), the `*_FILE` inside
    HOME: HOME's empty tmpfs hides both (today bwrap failed to lay the file's mask inside
    that tmpfs, and the run said 'the Case exited with code 1')."""
    agent_dir = tmp_path / "agent"
    home = agent_dir / "home"
    secret = home / "token"
    home.mkdir(parents=True)
    secret.write_text("not-for-the-case\n")
    harness.env["HOME"] = str(home)
    harness.env["MY_TOKEN_FILE"] = str(secret)
    agent = script(agent_dir / "agent", (
        "#!/bin/sh\n"
        f"echo \"home: $(ls -A {home} | wc -l) token: $(cat {secret} 2>&1 | wc -c)\"\n"
        f"exec {os.path.realpath(sys.executable)} -I {CASE} \"$@\"\n"))
    harness.env["CTO_HARNESS_CASE_BIN"] = str(agent)
    harness.env["CTO_HARNESS_CASE_SANDBOX_RO"] = str(CASE.parent)
    code, out = harness.run_json("run")
    assert code == 0, (out["reasons"], log_of(out["run_dir"]))
    log = log_of(out["run_dir"])
    assert "home: 0 token: " in log and "not-for-the-case" not in log, log
    masked = harness.report(out["run_dir"])["case_sandbox"]["masked"]
    assert str(home) in masked


def test_a_mask_bwrap_cannot_lay_blocks_the_run_naming_it(harness: Harness,
                                                          tmp_path: Path) -> None:
    """As root: a `*_FILE` inside the Case's folder, under a 0700 folder of another account
    (which the sandbox's user namespace cannot enter). bwrap fails before the sandbox's
    first process: blocked with bwrap's own words (today: `failed`, exit code 1)."""
    if os.geteuid() != 0:
        missing_machinery("not root: another account's private folder is not examinable, "
                          "so nothing needs masking there")
    agent_dir = tmp_path / "agent"
    private = agent_dir / "theirs"
    private.mkdir(parents=True)
    (private / "token").write_text("theirs\n")
    os.chown(private, 65534, 65534)
    private.chmod(0o700)
    harness.env["THEIR_TOKEN_FILE"] = str(private / "token")
    agent = script(agent_dir / "agent", "#!/bin/sh\necho started\nexit 0\n")
    harness.env["CTO_HARNESS_CASE_BIN"] = str(agent)
    try:
        code, out = harness.run_json("run")
        assert_blocked_before_the_case(harness, code, out, "sandbox:", "bubblewrap",
                                       str(private / "token"))
        assert "started" not in log_of(out["run_dir"])
    finally:
        shutil.rmtree(private, ignore_errors=True)


def readiness_check(harness: Harness, name: str) -> tuple[int, dict]:
    proc = harness.run("readiness", "--json", timeout=120)
    assert "Traceback" not in proc.stderr, proc.stderr
    out = json.loads(proc.stdout)
    return proc.returncode, next(c for c in out["checks"] if c["name"] == name)


def test_readiness_starts_a_throwaway_sandbox_laid_out_as_the_cases(harness: Harness) -> None:
    code, check = readiness_check(harness, "sandbox")
    assert code == 0 and check["state"] == "ok", check
    assert "laid out as the Case's" in check["detail"] and "caps=0" in check["detail"]


def test_readiness_names_a_mask_bwrap_cannot_lay(harness: Harness, tmp_path: Path) -> None:
    """The same layout as the run above blocked on: readiness says so before any run."""
    if os.geteuid() != 0:
        missing_machinery("not root: another account's private folder is not examinable")
    private = tmp_path / "agent" / "theirs"
    private.mkdir(parents=True)
    (private / "token").write_text("theirs\n")
    os.chown(private, 65534, 65534)
    private.chmod(0o700)
    harness.env["THEIR_TOKEN_FILE"] = str(private / "token")
    harness.env["CTO_HARNESS_CASE_BIN"] = str(
        script(tmp_path / "agent" / "agent", "#!/bin/sh\nexit 0\n"))
    try:
        code, check = readiness_check(harness, "sandbox")
        assert code == 3 and check["state"] == "blocked", check
        assert check["detail"].startswith("sandbox: ") and str(private / "token") in \
            check["detail"], check
    finally:
        shutil.rmtree(private, ignore_errors=True)


def test_a_root_case_in_a_private_folder_is_refused_naming_the_folder_and_the_fix(
        harness: Harness, tmp_path: Path) -> None:
    """As root the sandbox runs as an unused uid, which a 0700 folder keeps out: readiness
    and the run name the folder and `chmod o+x` (today the run said 'the Case exited with
    code 127', status failed); with the fix applied it runs."""
    if os.geteuid() != 0:
        missing_machinery("not root: the sandbox runs as the harness's own uid, which its "
                          "own 0700 folders let in")
    private = tmp_path / "private"
    agent = script(private / "agent", "#!/bin/sh\necho started\nexit 0\n")
    private.chmod(0o700)
    harness.env["CTO_HARNESS_CASE_BIN"] = str(agent)
    code, check = readiness_check(harness, "sandbox")
    assert code == 3 and check["state"] == "blocked", check
    assert str(private) in check["detail"] and f"chmod o+x {private}" in check["detail"]
    code, out = harness.run_json("run")
    assert_blocked_before_the_case(harness, code, out, "sandbox:", str(private),
                                   f"chmod o+x {private}")
    private.chmod(0o711)
    code, check = readiness_check(harness, "sandbox")
    assert check["state"] == "ok", check
    code, out = harness.run_json("run", "--no-baseline")
    assert harness.report(out["run_dir"])["case_process_started"]
    assert "started" in log_of(out["run_dir"])


def test_readiness_names_a_masked_file_the_case_can_see_named(harness: Harness,
                                                               tmp_path: Path) -> None:
    """A `*_FILE` inside a folder the sandbox shows is masked (its content hidden) but its
    path is a mount point in the Case's /proc/self/mountinfo: readiness names the layout."""
    agent_dir = tmp_path / "agent"
    secret = agent_dir / "token"
    agent = script(agent_dir / "agent", "#!/bin/sh\nexit 0\n")
    secret.write_text("not-for-the-case\n")
    harness.env["MY_TOKEN_FILE"] = str(secret)
    harness.env["CTO_HARNESS_CASE_BIN"] = str(agent)
    code, check = readiness_check(harness, "sandbox")
    assert code == 0 and check["state"] == "ok", check
    named = check["detail"].split("named to the Case by /proc/self/mountinfo: ", 1)
    assert len(named) == 2 and str(secret) in named[1], check


def test_a_file_variable_the_harness_cannot_examine_neither_crashes_nor_blocks(
        harness: Harness, tmp_path: Path) -> None:
    """`su` keeps root's environment: a `*_FILE` under another account's 0700 folder, which
    an ordinary user cannot even stat. The sandbox (that user, or less) cannot reach it
    either, so it needs no mask: the run goes on (today: `error`, a PermissionError)."""
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "token").write_text("theirs\n")
    os.chown(theirs, 65534, 65534)
    theirs.chmod(0o700)
    harness.env["THEIR_TOKEN_FILE"] = str(theirs / "token")
    harness.env["CTO_HARNESS_CASE_SANDBOX_RO"] = str(tmp_path)  # shown: a mask would be due
    try:
        run_dir = run_as(harness, True, "--no-baseline")
    finally:
        shutil.rmtree(theirs, ignore_errors=True)
    report = harness.report(run_dir)
    assert report["status"] != "error" and report["case_process_started"], report["reasons"]
    assert not any("PermissionError" in r for r in report["reasons"]), report["reasons"]
