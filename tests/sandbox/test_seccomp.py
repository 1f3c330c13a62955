"""The sandbox's seccomp filter (core/sandbox/seccomp.py), tried for real: a program in a real
sandbox calls what the filter refuses and what it must leave alone; a run records it; the
opt-out is recorded and failed by `validate`; a kernel that refuses seccomp filters (made so
for the harness with an outer filter of its own) blocks the run before the Case starts."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from core.sandbox.bwrap import MINIMAL_ENV, Sandboxes, Spec, base_python
from core.sandbox.seccomp import FILTERED
from tests.support.harness import ROOT, Harness, missing_machinery
from tests.support.sandboxing import sandboxed  # noqa: F401 - the fixture

pytestmark = pytest.mark.usefixtures("sandboxed")

NUMBERS = {
    "x86_64": {"ptrace": 101, "process_vm_readv": 310, "process_vm_writev": 311,
               "io_uring_setup": 425, "bpf": 321, "perf_event_open": 298,
               "userfaultfd": 323, "keyctl": 250, "add_key": 248, "request_key": 249,
               "clone3": 435, "socket": 41},
    "aarch64": {"ptrace": 117, "process_vm_readv": 270, "process_vm_writev": 271,
                "io_uring_setup": 425, "bpf": 280, "perf_event_open": 241,
                "userfaultfd": 282, "keyctl": 219, "add_key": 217, "request_key": 218,
                "clone3": 435, "socket": 198},
}

INSIDE = textwrap.dedent("""
    import ctypes, errno, os, socket, sys, threading
    nr = {numbers}
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long

    def call(name, *args):
        ctypes.set_errno(0)
        got = libc.syscall(ctypes.c_long(nr[name]), *[ctypes.c_ulong(a) for a in args])
        return "ok" if got >= 0 else errno.errorcode[ctypes.get_errno()]

    print("ptrace", call("ptrace", 16, 0, 0, 0), flush=True)  # PTRACE_ATTACH to no one
    for name in ("process_vm_readv", "process_vm_writev", "io_uring_setup",
                 "bpf", "perf_event_open", "userfaultfd", "keyctl", "add_key",
                 "request_key", "clone3"):
        print(name, call(name, 0, 0, 0, 0), flush=True)
    print("socket-unix", call("socket", 1, 1, 0))
    print("socket-unix-high-bits", call("socket", (1 << 32) | 1, 1, 0))
    print("socket-inet", call("socket", 2, 1, 0))
    a, b = socket.socketpair()
    a.sendall(b"x")
    print("socketpair", "ok" if b.recv(1) == b"x" else "broken")
    print("unshare-user", "ok" if libc.unshare(0x10000000) == 0
          else errno.errorcode[ctypes.get_errno()])
    print("unshare-uts", "ok" if libc.unshare(0x04000000) == 0
          else errno.errorcode[ctypes.get_errno()])
    t = threading.Thread(target=print, args=("thread", "ok"))
    t.start(); t.join()
    pid = os.fork()
    if pid == 0:
        os._exit(7)
    print("fork", os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
    print("child-python", os.popen(sys.executable + " -I -S -c 'print(1)'").read().strip())
""")


def _inside(box: Sandboxes, script: str) -> dict[str, str]:
    argv, fds = box.command(Spec(binds=[], cwd="/"),
                            [base_python(), "-I", "-S", "-c", script])
    proc = subprocess.run(argv, pass_fds=fds, capture_output=True, text=True, timeout=60,
                          env=MINIMAL_ENV, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    return dict(line.split(" ", 1) for line in proc.stdout.splitlines())


@pytest.fixture
def box() -> Sandboxes:
    machine = platform.machine()
    if machine not in NUMBERS:
        pytest.skip(f"syscall numbers of {machine} not listed here")
    sandboxes = Sandboxes(private=[], runs_root=Path("/nonexistent-runs-root"))
    sandboxes.prepare()
    yield sandboxes
    sandboxes.close()


def test_the_filter_refuses_what_the_anchors_deny_and_leaves_the_rest(box: Sandboxes) -> None:
    got = _inside(box, INSIDE.replace("{numbers}", repr(NUMBERS[platform.machine()])))
    for name in ("ptrace", "process_vm_readv", "process_vm_writev", "io_uring_setup", "bpf",
                 "perf_event_open", "userfaultfd", "keyctl", "add_key", "request_key"):
        assert got[name] == "EPERM", (name, got)
    assert got["clone3"] == "ENOSYS", "clone3's flags are unreadable: the C library falls back"
    assert got["socket-unix"] == "EPERM"
    assert got["socket-unix-high-bits"] == "EPERM", "the kernel ignores an int's high bits"
    assert got["unshare-user"] == "EPERM", "no new user namespace"
    # what programs need stays: other sockets, socketpairs, threads, fork, exec
    assert got["socket-inet"] == "ok" and got["socketpair"] == "ok"
    assert got["unshare-uts"] == "EPERM", "no capability for any other namespace either"
    assert (got["thread"], got["fork"], got["child-python"]) == ("ok", "7", "1")


def test_without_the_filter_the_same_calls_go_through(box: Sandboxes) -> None:
    """The test above can fail: the same program, the filter off, gets a Unix socket and
    a user namespace."""
    box.close()
    bare = Sandboxes(private=[], runs_root=Path("/nonexistent-runs-root"), seccomp=False)
    bare.prepare()
    try:
        got = _inside(bare, INSIDE.replace("{numbers}", repr(NUMBERS[platform.machine()])))
    finally:
        bare.close()
    assert got["socket-unix"] == "ok" and got["unshare-user"] == "ok", got
    assert got["ptrace"] == "ESRCH", got


def test_a_run_records_the_filter(harness: Harness) -> None:
    """The Case, its checks and the baseline all run filtered, and the run still passes."""
    code, out = harness.run_json("run")
    assert code == 0, out["reasons"]
    box = harness.report(out["run_dir"])["case_sandbox"]
    assert box["seccomp"] == "on" and box["seccomp_filtered"] == list(FILTERED)
    assert "seccomp filter" in box["detail"]


def test_the_opt_out_is_recorded_and_never_evidence(harness: Harness) -> None:
    harness.env["CTO_HARNESS_CASE_SECCOMP"] = "off"
    code, out = harness.run_json("run")
    assert code == 0, out["reasons"]
    box = harness.report(out["run_dir"])["case_sandbox"]
    assert (box["seccomp"], box["seccomp_filtered"]) == ("off", [])
    assert "CTO_HARNESS_CASE_SECCOMP=off" in box["detail"]
    code, result = harness.run_json("validate", out["run_dir"])
    crit = {c["id"]: c for c in result["criteria"]}
    assert code == 1 and crit["case_sandboxed"]["verdict"] == "failed"
    assert "CTO_HARNESS_CASE_SECCOMP=off" in crit["case_sandboxed"]["detail"]


def test_a_bad_value_blocks_the_run_naming_the_variable(harness: Harness) -> None:
    harness.env["CTO_HARNESS_CASE_SECCOMP"] = "maybe"
    code, out = harness.run_json("run")
    assert code == 3 and out["status"] == "blocked"
    reasons = harness.report(out["run_dir"])["reasons"]
    assert any(r.startswith("sandbox: CTO_HARNESS_CASE_SECCOMP") for r in reasons), reasons


NO_SECCOMP = textwrap.dedent("""
    import errno, os, sys
    import pyseccomp as sc
    flt = sc.SyscallFilter(sc.ALLOW)
    # what a kernel built without seccomp filters answers
    flt.add_rule(sc.ERRNO(errno.EINVAL), "prctl", sc.Arg(0, sc.EQ, 22))
    flt.add_rule(sc.ERRNO(errno.ENOSYS), "seccomp")
    flt.load()
    os.execv(sys.executable, [sys.executable, "-m", "core.cli", "run", "--json"])
""")


def test_a_kernel_refusing_seccomp_blocks_the_run_before_the_case(harness: Harness) -> None:
    proc = subprocess.run([sys.executable, "-c", NO_SECCOMP], env=harness.env, cwd=ROOT,
                          capture_output=True, text=True, timeout=180)
    if proc.returncode not in (0, 1, 3):
        missing_machinery(f"cannot stand in for a kernel without seccomp: {proc.stderr}")
    out = json.loads(proc.stdout)
    assert proc.returncode == 3 and out["status"] == "blocked", out
    report = harness.report(out["run_dir"])
    reason = next(r for r in report["reasons"] if r.startswith("sandbox:"))
    assert "seccomp" in reason and "CTO_HARNESS_CASE_SECCOMP=off" in reason, reason
    assert not report["case_process_started"]
    assert os.path.isdir(out["run_dir"])
