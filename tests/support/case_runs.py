"""Driving the test Case through `cto-harness run` and watching its processes from /proc:
shared by the run tests and the sandbox tests, which kill the harness the same way with the
sandbox off and on."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from tests.support.harness import Harness

GOOD_ARGS = "--mode {mode} --task-file {{task_file}} --workspace {{workspace}} --model {{model}}"


def mode(harness: Harness, name: str, extra: str = "") -> None:
    harness.env["CTO_HARNESS_CASE_ARGS"] = GOOD_ARGS.format(mode=name) + extra


def events(harness: Harness, run_dir: str) -> list[str]:
    """The trace's events of a run, in order."""
    return [e["event"] for e in harness.trace(run_dir)]


def wait_for_case(harness: Harness) -> Path:
    """The run directory of the run in flight, once its Case process has started. (The
    folder is there before its trace: a loaded machine showed that window to a reader.)"""
    deadline = time.monotonic() + 120  # a bound on a failure, not a wait: returns at once
    while time.monotonic() < deadline:
        for d in harness.runs_root.glob("*"):
            trace = d / "trace.jsonl"
            if trace.exists() and "case_process_started" in trace.read_text():
                return d
        time.sleep(0.1)
    raise AssertionError("the Case never started")


def _alive(pid: int) -> bool:
    """Still running: a zombie waiting for its new parent to reap it counts as gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return fields.rsplit(")", 1)[1].split()[0] != "Z"


def pids_with(marker: str) -> list[int]:
    """Every process whose command line holds `marker` (host pids, read from /proc)."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmd = (proc / "cmdline").read_bytes()
            except OSError:
                continue
            if marker.encode() in cmd:
                found.append(int(proc.name))
    return found


def processes() -> dict[int, tuple[int, list[bytes]]]:
    """Every process now: its parent's pid and its argv (host pids, read from /proc)."""
    found: dict[int, tuple[int, list[bytes]]] = {}
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                argv = (proc / "cmdline").read_bytes().split(b"\0")
                ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            found[int(proc.name)] = (ppid, argv)
    return found


def descendants(pid: int) -> list[int]:
    """Every live process below `pid` (host pids, read from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, stack = [], [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def harness_killed_ends_the_case_group(harness: Harness, sandbox: str) -> None:
    """SIGKILL the harness mid-run, so none of its handlers runs: the Case's group (its
    leader, the Case, a grandchild in the group; in the sandbox, every process of it) must
    still be gone within a few seconds."""
    harness.env["CTO_HARNESS_CASE_SANDBOX"] = sandbox
    mode(harness, "hang", " --grandchild")
    proc = harness.start("run", "--no-baseline", "--json")
    pids: list[int] = []
    try:
        run_dir = wait_for_case(harness)
        started = next(e for e in harness.trace(str(run_dir))
                       if e["event"] == "case_process_started")
        assert started["sandbox"] == ("off" if sandbox == "off" else "bwrap")
        log = run_dir / "backend" / "case.log"
        deadline = time.monotonic() + 30
        while "case: pid " not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.02)
        text = log.read_text()
        if sandbox == "off":
            pids = sorted({started["pid"], int(text.split("case: pid ")[1].split()[0]),
                           int(text.split("case: grandchild pid ")[1].split()[0])})
        else:  # the Case prints pids of its own namespace: find them from the host
            pids = [started["pid"], *descendants(started["pid"])]
            assert len(pids) >= 5, "bwrap, its init, ours, the Case and its grandchild"
        made = f"cto-harness-{proc.pid}-"
        cgroups = list(Path("/sys/fs/cgroup").glob(f"*/**/{made}*"))
        assert (cgroups != []) == (sandbox != "off"), cgroups  # the run's, while it runs
        proc.kill()
        proc.wait(10)
        deadline = time.monotonic() + 3
        while any(_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert [p for p in pids if _alive(p)] == [], "the Case outlived its harness"
        if sandbox != "off":  # its cgroups too: the warden empties and removes them
            deadline = time.monotonic() + 5
            while (left := [p for p in Path("/sys/fs/cgroup").glob(f"*/**/{made}*")]) \
                    and time.monotonic() < deadline:
                time.sleep(0.05)
            assert left == [], "the run's cgroups outlived its harness"
    finally:
        proc.kill()
        proc.communicate(timeout=30)
        for pid in filter(_alive, pids):  # only after a failure: leave nothing behind
            os.kill(pid, signal.SIGKILL)
