"""The Case as a process group (core/run/process.py and its warden): grandchildren ended with
the group or unable to hang the harness, the group ended when the harness is killed, and
the warden finishing what TERM did not."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from core.run.process import WARDEN
from tests.support.case_runs import (
    harness_killed_ends_the_case_group,
    mode,
    pids_with,
)
from tests.support.harness import Harness


def test_grandchild_that_hangs_is_ended_with_the_group(harness: Harness) -> None:
    mode(harness, "orphan")
    _code, out = harness.run_json("run", "--no-baseline", "--timeout", "2")
    assert out["status"] == "timed_out"
    case_pid = next(e for e in harness.trace(out["run_dir"])
                    if e["event"] == "case_process_started")["pid"]
    time.sleep(0.2)
    assert not Path(f"/proc/{case_pid}").exists()
    leftovers = [p for p in pids_with("time.sleep(3600)") if os.getpgid(p) == case_pid]
    assert leftovers == []


def test_grandchild_escaping_the_group_cannot_hang_the_harness(harness: Harness) -> None:
    mode(harness, "escape")
    t0 = time.monotonic()
    _code, out = harness.run_json("run", "--no-baseline", "--timeout", "60")
    assert time.monotonic() - t0 < 30
    assert harness.report(out["run_dir"])["case_exit_code"] == 0
    for pid in pids_with("time.sleep(3600)"):
        os.kill(pid, signal.SIGKILL)


def test_killing_the_harness_ends_the_case_group_without_the_sandbox(
    harness: Harness,
) -> None:
    harness_killed_ends_the_case_group(harness, "off")


def _ignoring_term() -> subprocess.Popen[str]:
    """A group leader that shrugs off SIGTERM, started and ready."""
    proc = subprocess.Popen(
        [sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, "
         "signal.SIG_IGN); print('ready', flush=True); time.sleep(3600)"],
        stdout=subprocess.PIPE, text=True, start_new_session=True)
    assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    return proc


def test_warden_kills_what_term_did_not_end_and_spares_released_groups() -> None:
    watched, released = _ignoring_term(), _ignoring_term()
    try:
        warden = subprocess.Popen([sys.executable, "-I", "-S", str(WARDEN)],
                                  stdin=subprocess.PIPE)
        assert warden.stdin is not None
        warden.stdin.write(b"+%d\n+%d\n-%d\n" % (watched.pid, released.pid, released.pid))
        t0 = time.monotonic()
        warden.stdin.close()  # as when the harness dies: its end of the pipe closes
        assert watched.wait(timeout=5) == -signal.SIGKILL
        assert time.monotonic() - t0 < 1.5
        assert warden.wait(timeout=5) == 0
        assert released.poll() is None
    finally:
        for proc in (watched, released):
            proc.kill()
            proc.communicate()
