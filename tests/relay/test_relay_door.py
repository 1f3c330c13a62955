"""The relay has one door, tried by a second local account (`useradd` here, the requests
run as that user) while a real run's Case waits:

- sandbox on: the host has no TCP listener of the harness's at all (the port in the
  world-readable trace is the sandbox's own), so the account reaches nothing and the ledger
  holds only the Case's requests;
- sandbox off (the Case on the host, which needs TCP): the account reaches the port but not
  the model; each of its requests is recorded `foreign` and the run fails with a `policy:`
  reason, whatever the Case did.
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from core.standins.endpoint import ScriptedEndpoint
from tests.support.harness import Harness, missing_machinery

FOREIGN_REQUESTS = 64
KNOCK = '''
import http.client, json, sys
port, count = int(sys.argv[1]), int(sys.argv[2])
body = json.dumps({"model": "qwen3.6-35b-a3b", "messages": [{"role": "user", "content": "x"}]})
said = []
for i in range(count):
    headers = {"Content-Type": "application/json"}
    if i % 2:
        headers["Authorization"] = "Bearer guessed-token"
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("POST", "/v1/chat/completions", body=body, headers=headers)
        answer = conn.getresponse()
        said.append([answer.status, answer.read().decode(errors="replace")[:300]])
        conn.close()
    except OSError as exc:
        said.append([None, type(exc).__name__])
print(json.dumps(said))
'''


def as_root() -> list[str]:
    """The prefix that runs a command as root: none as root, `sudo -n` where it needs no
    password (a CI runner); missing machinery otherwise."""
    if os.geteuid() == 0:
        return []
    if shutil.which("sudo") and subprocess.run(["sudo", "-n", "true"], capture_output=True,
                                               timeout=30).returncode == 0:
        return ["sudo", "-n"]
    missing_machinery("adding a second local account needs root or password-less sudo")
    return []


@pytest.fixture(scope="module")
def foreign_account() -> Iterator[tuple[int, int]]:
    """A second local account, made for this test and removed after it."""
    root = as_root()
    if shutil.which("useradd") is None or shutil.which("setpriv") is None:
        missing_machinery("adding a second local account needs useradd and setpriv")
    name = f"ctoforeign{secrets.token_hex(3)}"
    subprocess.run([*root, "useradd", "--no-create-home", "--shell", "/usr/sbin/nologin",
                    name], check=True, capture_output=True, timeout=30)
    try:
        entry = pwd.getpwnam(name)
        yield entry.pw_uid, entry.pw_gid
    finally:
        subprocess.run([*root, "userdel", name], capture_output=True, timeout=30)


def knock(account: tuple[int, int], port: int) -> list[list]:
    """FOREIGN_REQUESTS chat requests to 127.0.0.1:port as the other account, half with no
    token and half with a guessed one; what each got."""
    uid, gid = account
    python = shutil.which("python3", path="/usr/bin:/bin")
    assert python, "a system python3 the other account can run"
    proc = subprocess.run(
        [*as_root(), "setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--",
         python, "-I", "-c", KNOCK, str(port), str(FOREIGN_REQUESTS)],
        capture_output=True, text=True, timeout=120, cwd="/")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def wait_for(condition, what: str, proc: subprocess.Popen, limit_s: float = 120) -> None:
    """Until `condition()` holds; fails (naming `what`) if the run ends first."""
    deadline = time.monotonic() + limit_s
    while not condition():
        if proc.poll() is not None:
            raise AssertionError(f"the run ended before {what}: {proc.stderr.read()}")
        assert time.monotonic() < deadline, f"no {what} within {limit_s} s"
        time.sleep(0.02)


def listening_ports(pid: int) -> set[int]:
    """The TCP ports process `pid` listens on (any address), from its fds and /proc/net."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # LISTEN
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def run_and_knock(harness: Harness, account: tuple[int, int]
                  ) -> tuple[dict, list[dict], list[list], set[int]]:
    harness.env["CTO_HARNESS_CASE_ARGS"] = (
        "--mode wait --task-file {task_file} --workspace {workspace} --model {model}")
    proc = harness.start("run", "--no-baseline", "--json")
    try:
        runs = harness.runs_root

        def trace() -> list[dict]:
            found = [p for p in runs.glob("*/trace.jsonl")] if runs.exists() else []
            if not found:
                return []
            return [json.loads(line) for line in found[0].read_text().splitlines()
                    if line.endswith("}")]

        def case_log() -> str:
            logs = list(runs.glob("*/backend/case.log")) if runs.exists() else []
            return logs[0].read_text(errors="replace") if logs else ""

        wait_for(lambda: "case: waiting" in case_log(), "the Case waiting", proc)
        [started] = [e for e in trace() if e["event"] == "relay_started"]
        port = urlsplit(started["url"]).port
        assert port
        listening = listening_ports(proc.pid)
        said = knock(account, port)
        run_dir = next(runs.glob("*/trace.jsonl")).parent
        (run_dir / "workspace" / "go").write_text("go")
        out, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "Traceback" not in err, err
    result = json.loads(out)
    run_dir = Path(result["run_dir"])
    records = [json.loads(line)
               for line in (run_dir / "backend" / "relay.jsonl").read_text().splitlines()]
    return harness.report(run_dir), records, said, listening


def test_sandbox_on_the_host_has_no_door_for_another_account(
        harness: Harness, upstream: ScriptedEndpoint, foreign_account: tuple[int, int],
        tmp_path: Path) -> None:
    report, records, said, listening = run_and_knock(harness, foreign_account)
    assert report["case_sandbox"]["mode"] == "bwrap", report["case_sandbox"]
    assert listening == set(), f"the harness listens on TCP {listening}"
    assert not any(r.get("foreign") for r in records)
    assert len(records) == 1 and records[0]["status"] == 200, records  # the Case's own
    # Nothing the account reached was the relay (the port is the sandbox's, not the host's).
    assert not any(status is not None and "cto-harness relay" in text
                   for status, text in said), said[:3]
    assert not any("foreign" in r for r in report["reasons"]), report["reasons"]


def test_sandbox_off_foreign_requests_are_recorded_and_fail_the_run(
        harness: Harness, upstream: ScriptedEndpoint, foreign_account: tuple[int, int]
        ) -> None:
    harness.env["CTO_HARNESS_CASE_SANDBOX"] = "off"
    report, records, said, _ = run_and_knock(harness, foreign_account)
    assert [status for status, _ in said] == [401] * FOREIGN_REQUESTS, said[:3]
    foreign = [r for r in records if r.get("foreign")]
    assert len(foreign) == FOREIGN_REQUESTS
    assert all(r["status"] == 401 and r["refused"] for r in foreign)
    assert [r["status"] for r in records if not r.get("foreign")] == [200]  # the Case's
    assert report["status"] == "failed"
    [policy] = [r for r in report["reasons"] if r.startswith("policy:")]
    assert f"{FOREIGN_REQUESTS} foreign request" in policy, policy
    # None of the account's requests reached the upstream (its prompt is "x").
    assert not [r for r in upstream.received if '"content": "x"' in json.dumps(r.body)]
