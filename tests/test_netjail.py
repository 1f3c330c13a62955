"""The Case's network jail: real namespaces, real sockets, real runs.

The jail alone first (bytes pass as they arrive, the Case's exit status comes back), then
whole runs: a good run passes through it, a Case that goes around the relay reaches nothing
(and does reach its target when isolation is turned off), and a timeout leaves no process.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from core import netjail
from core.endpoint import ScriptedEndpoint
from tests.conftest import Harness
from tests.test_run import harness_killed_ends_the_case_group

AVAILABLE, WHY = netjail.netjail_available()
if not AVAILABLE:
    print(f"test_netjail: network isolation unavailable here, tests skipped: {WHY}")
pytestmark = pytest.mark.skipif(not AVAILABLE, reason=f"network isolation unavailable: {WHY}")

JAIL_PORT = 8123
"""Any port will do: inside its own namespace the jail's loopback is empty."""


def jailed(uds: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*netjail.launcher(uds, JAIL_PORT), *argv], capture_output=True,
                          text=True, timeout=30)


def test_forwarder_passes_each_chunk_as_it_arrives(tmp_path: Path) -> None:
    """The relay side waits for the Case to answer the first chunk before sending the
    second: a forwarder that held bytes back would deadlock here."""
    uds = tmp_path / "r.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(uds))
    server.listen(1)
    seen: list[bytes] = []

    def relay_side() -> None:
        conn, _ = server.accept()
        with conn:
            conn.sendall(b"first\n")
            seen.append(conn.recv(100))
            conn.sendall(b"second\n")

    thread = threading.Thread(target=relay_side, daemon=True)
    thread.start()
    client = (
        "import socket, sys\n"
        f"c = socket.create_connection(('127.0.0.1', {JAIL_PORT}), timeout=10)\n"
        "f = c.makefile('rb')\n"
        "print(f.readline().decode().strip())\n"
        "c.sendall(b'ack\\n')\n"
        "print(f.readline().decode().strip())\n"
        "sys.exit(7)\n"
    )
    proc = jailed(uds, sys.executable, "-c", client)
    thread.join(5)
    server.close()
    assert proc.stdout.split() == ["first", "second"], proc.stderr
    assert seen == [b"ack\n"]
    assert proc.returncode == 7


def test_case_killed_by_a_signal_exits_128_plus_the_signal(tmp_path: Path) -> None:
    proc = jailed(tmp_path / "none.sock", sys.executable, "-c",
                  "import os, signal; os.kill(os.getpid(), signal.SIGKILL)")
    assert proc.returncode == 128 + 9


def test_case_that_cannot_start_is_named(tmp_path: Path) -> None:
    proc = jailed(tmp_path / "none.sock", str(tmp_path / "no-such-case"))
    assert proc.returncode == 127
    assert "netjail: cannot start the Case" in proc.stderr and "Traceback" not in proc.stderr


# -- whole runs -------------------------------------------------------------------------
def started_event(harness: Harness, run_dir: str) -> dict:
    return next(e for e in harness.trace(run_dir) if e["event"] == "case_process_started")


def test_good_run_passes_through_the_jail(harness: Harness) -> None:
    code, out = harness.run_json("run")
    assert code == 0, out["reasons"]
    report = harness.report(out["run_dir"])
    assert report["case_network"] == "isolated"
    assert "only the relay is reachable" in report["case_network_detail"]
    assert started_event(harness, out["run_dir"])["network"] == "isolated"
    relay_lines = (Path(out["run_dir"]) / "backend" / "relay.jsonl").read_text().splitlines()
    assert len(relay_lines) == 1 and '"stream":true' in relay_lines[0]
    assert report["relay"]["forwarded"] == 1 and report["guard_state"] == "clear"


def direct_mode(harness: Harness, upstream: ScriptedEndpoint, tmp_path: Path) -> None:
    """The Case learns the upstream's address only because this test hands it over."""
    target = tmp_path / "target"
    target.write_text(f"127.0.0.1:{upstream.port}")
    harness.env["CTO_HARNESS_CASE_ARGS"] = (
        f"--mode direct --target-file {target} --workspace {{workspace}} --model {{model}}")


def test_case_cannot_reach_the_upstream_directly(
    harness: Harness, upstream: ScriptedEndpoint, tmp_path: Path
) -> None:
    direct_mode(harness, upstream, tmp_path)
    _code, out = harness.run_json("run", "--no-baseline")
    log = (Path(out["run_dir"]) / "backend" / "case.log").read_text()
    assert "direct: refused/unreachable" in log and "direct: connected" not in log
    assert "case: got" in log  # the relay, and only the relay, still answers
    assert harness.report(out["run_dir"])["case_network"] == "isolated"


def test_host_network_opt_out_is_recorded_and_lets_the_case_through(
    harness: Harness, upstream: ScriptedEndpoint, tmp_path: Path
) -> None:
    direct_mode(harness, upstream, tmp_path)
    harness.env["CTO_HARNESS_CASE_NETWORK"] = "host"
    _code, out = harness.run_json("run", "--no-baseline")
    log = (Path(out["run_dir"]) / "backend" / "case.log").read_text()
    assert "direct: connected" in log
    report = harness.report(out["run_dir"])
    assert report["case_network"] == "host"
    assert "CTO_HARNESS_CASE_NETWORK=host" in report["case_network_detail"]
    assert started_event(harness, out["run_dir"])["network"] == "host"


def test_bad_network_choice_blocks_with_the_variable_named(harness: Harness) -> None:
    harness.env["CTO_HARNESS_CASE_NETWORK"] = "none"
    code, out = harness.run_json("run")
    assert code == 3 and out["status"] == "blocked"
    assert any("CTO_HARNESS_CASE_NETWORK" in r for r in harness.report(out["run_dir"])["reasons"])


def _group_members(pgid: int) -> list[int]:
    members = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if os.getpgid(int(proc.name)) == pgid:
                    members.append(int(proc.name))
            except ProcessLookupError:
                continue
    return members


def test_timeout_ends_the_case_and_its_forwarder(harness: Harness) -> None:
    harness.env["CTO_HARNESS_CASE_ARGS"] = "--mode hang --workspace {workspace} --model {model}"
    code, out = harness.run_json("run", "--no-baseline", "--timeout", "2")
    assert code == 1 and out["status"] == "timed_out"
    run_dir = out["run_dir"]
    jail_pid = started_event(harness, run_dir)["pid"]
    log = (Path(run_dir) / "backend" / "case.log").read_text()
    case_pid = int(log.split("case: pid ", 1)[1].split()[0])
    assert case_pid != jail_pid
    time.sleep(0.2)
    assert not Path(f"/proc/{case_pid}").exists()
    assert not Path(f"/proc/{jail_pid}").exists()
    assert _group_members(jail_pid) == []
    assert harness.report(run_dir)["case_exit_code"] == 128 + 15  # the Case's own TERM


def test_killing_the_harness_ends_the_jail_and_the_case(harness: Harness) -> None:
    harness_killed_ends_the_case_group(harness, "isolated")
