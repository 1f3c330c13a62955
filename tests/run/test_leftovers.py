"""Issue 22: nothing a Case leaves behind acts on the host. Each test is a hostile Case
(tests/cases/leftovers.py) run through `cto-harness run` in its sandbox: what it leaves for the
checks' reader (a link to a FIFO, a FIFO, a huge file, /dev/zero, lies) must end the run
`failed` with the reason, promptly and with its report; what it leaves in its workspace and
home (setuid copies, world-writable and sticky folders, extended attributes) must come back
harmless."""

from __future__ import annotations

import asyncio
import os
import signal
import stat
import time
from pathlib import Path

import pytest

from core.run.watchdog import watch
from tests.support.harness import ROOT, Harness
from tests.support.sandboxing import sandboxed  # noqa: F401 - the fixture

LEFTOVERS = ROOT / "tests" / "cases" / "leftovers.py"


def leftovers(harness: Harness, mode: str, attack: str = "") -> None:
    harness.env["CTO_HARNESS_CASE_BIN"] = str(LEFTOVERS)
    harness.env["CTO_HARNESS_CASE_ARGS"] = (
        f"--mode {mode} --attack {attack or 'none'} --workspace {{workspace}} "
        "--model {model}")


RESULTS = {
    "fifo-swap": "a symbolic link, never followed",
    "fifo": "a FIFO, not a regular file",
    "huge": "larger than",
    "devzero": "a symbolic link, never followed",
    "many": "tests='many' is not a count",
    "notxml": "is not XML",
}


@pytest.mark.usefixtures("sandboxed")
@pytest.mark.parametrize("attack", list(RESULTS))
def test_planted_results_fail_the_run_with_the_reason_and_it_ends_with_its_report(
        harness: Harness, attack: str) -> None:
    leftovers(harness, "results", attack)
    started = time.monotonic()
    # Before issue 22 the FIFO variants hung the harness for ever (this timeout fired);
    # `many` ended the run `error`, which a job does not score and --retry-errors reruns.
    code, out = harness.run_json("run", "--no-baseline", timeout=150)
    took = time.monotonic() - started
    report = harness.report(out["run_dir"])
    assert report["status"] == "failed" and code == 1, report["reasons"]
    checks = report["checks"]
    assert not checks["ran"] and checks["total"] == 0, checks
    assert checks["detail"].startswith("results refused: out/junit.xml"), checks
    assert RESULTS[attack] in checks["detail"], checks
    assert any(r.startswith("checks: results refused") for r in report["reasons"])
    if attack == "fifo-swap":  # the attack as issue 22 found it: a link to the host's FIFO
        planted = Path(out["run_dir"]) / "checks" / "out" / "junit.xml"
        assert os.readlink(planted) == str(Path(out["run_dir"]) / "workspace" / "pipe")
    assert took < 100, f"the run took {took:.0f} s"
    trace = [e["event"] for e in harness.trace(out["run_dir"])]
    assert trace[-2:] == ["report_written", "run_finished"]


@pytest.mark.usefixtures("sandboxed")
def test_sigint_cancels_a_run_whose_checks_left_a_fifo(harness: Harness) -> None:
    """Ctrl-C while the checks' results are being read still cancels, with a report."""
    leftovers(harness, "results", "fifo-swap")
    proc = harness.start("run", "--no-baseline", "--json")
    try:
        deadline = time.monotonic() + 90
        # checks.log is written once the checks' processes are gone, just before their
        # results are read: the link is planted by then.
        while time.monotonic() < deadline and proc.poll() is None and not any(
                harness.runs_root.glob("*/checks/checks.log")):
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # The link planted, the harness reads it: Ctrl-C then cancels, or the run had already
    # ended `failed` (the read refused at once). Before issue 22 it blocked for ever.
    run_dir = next(harness.runs_root.glob("2*"))
    status = harness.report(run_dir)["status"]
    assert (proc.returncode, status) in ((130, "cancelled"), (1, "failed")), err


def test_the_watchdog_ends_work_that_ignores_its_timeouts() -> None:
    """The backstop: a stage stuck past the run's budget is cut, the run goes on to its
    report; after a cancel the stages get a short grace, not the whole budget."""

    async def stuck() -> str:
        await asyncio.sleep(3600)
        return "never"

    async def main() -> tuple[bool, bool, float]:
        cancel = asyncio.Event()
        overran = (await watch(stuck(), 0.2, cancel)).overran
        loop = asyncio.get_running_loop()
        loop.call_soon(cancel.set)
        t0 = loop.time()
        watched = await watch(stuck(), 3600, cancel, cancel_grace=0.2)
        return overran, watched.abandoned_on_cancel, loop.time() - t0

    overran, abandoned, took = asyncio.run(main())
    assert overran and abandoned and took < 5


@pytest.mark.usefixtures("sandboxed")
def test_modes_and_xattrs_left_by_the_case_come_back_harmless(harness: Harness) -> None:
    leftovers(harness, "modes")
    _code, out = harness.run_json("run", "--no-baseline")
    run_dir = Path(out["run_dir"])
    report = harness.report(run_dir)
    assert report["status"] == "passed" or "baseline" in " ".join(report["reasons"])
    assert stat.S_IMODE(run_dir.stat().st_mode) == 0o700
    bad = []
    for folder, dirs, files in os.walk(run_dir):
        for name in (*dirs, *files):
            path = Path(folder, name)
            st = path.lstat()
            if stat.S_ISLNK(st.st_mode):
                continue
            mode = stat.S_IMODE(st.st_mode)
            if mode & (stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX | stat.S_IWOTH):
                bad.append(f"{path.relative_to(run_dir)} {oct(mode)}")
            if st.st_uid != os.geteuid():
                bad.append(f"{path.relative_to(run_dir)} owned by {st.st_uid}")
            if os.listxattr(path, follow_symlinks=False):
                bad.append(f"{path.relative_to(run_dir)} xattrs "
                           f"{os.listxattr(path, follow_symlinks=False)}")
    assert not bad, bad
    for where in ("workspace", "home"):
        assert (run_dir / where / "py").exists(), "the Case's leftovers are kept, defused"
    stripped = report["xattrs_stripped"]
    assert {"workspace/shared.txt", "home/shared.txt"} <= set(stripped), stripped
    assert stripped["workspace/shared.txt"] == ["user.planted"]
