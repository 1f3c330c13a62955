"""One test per attack of issue 10, each a hostile Case (tests/cases/hostile.py) run through
`cto-harness run`: it tries for real, and each test asserts it got nothing — no form of the
secret on disk (reversed and spaced included: the Case never had it), no socket or upstream
reached past the relay, no ledger touched, no process left — and that the report and
`validate` agree. Without the sandbox each of these attacks succeeds (issue 10, "Why")."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.sandbox.bwrap import NPROC
from core.standins.endpoint import ScriptedEndpoint
from tests.support.case_runs import descendants
from tests.support.harness import ROOT, Harness
from tests.support.sandboxing import (
    HOSTILE,
    assert_got_nothing,
    attack_lines,
    hostile,
    log_of,
    no_sandbox_process_left,
    run_as,
    sandboxed,  # noqa: F401 - the fixture
    secret_endpoint,
    secret_on_disk,
)

pytestmark = pytest.mark.usefixtures("sandboxed")


@pytest.fixture
def decoy(harness: Harness, upstream: ScriptedEndpoint) -> Iterator[tuple[int, str]]:
    """A host process holding the secret in its environment and memory, as the harness
    does: (its pid, the secret)."""
    url = secret_endpoint(harness, upstream)
    proc = subprocess.Popen([sys.executable, "-c", "import os, time; s = os.environ['S'] * 2;"
                             " time.sleep(600)"], env={"S": url})
    yield proc.pid, url
    proc.kill()
    proc.wait()


@pytest.mark.parametrize("as_user", [False, True], ids=["as-root", "as-a-user"])
def test_case_cannot_read_environ_or_memory_of_any_host_process_nor_ptrace_it(
        harness: Harness, decoy: tuple[int, str], as_user: bool) -> None:
    pid, url = decoy
    hostile(harness, "procfs", f"--decoy-pid {pid}")
    run_dir = run_as(harness, as_user, "--no-baseline")
    lines = attack_lines(run_dir)
    visible = next(x for x in lines if x.startswith("attack: visible pids")).split()[3:]
    assert len(visible) <= 4, f"only the sandbox's own processes: {visible}"
    for what in ("environ", "cmdline", "mem"):
        assert f"attack: pid {pid} {what}: FileNotFoundError (No such file or directory)" \
            in lines
    # ptrace is refused by the seccomp filter whatever the target (issue 22): nothing is
    # traced, not even the sandbox's own processes (bwrap's init, the forwarder).
    assert f"attack: pid {pid} ptrace: Operation not permitted" in lines
    traced = {x.split()[2] for x in lines if x.endswith("ptrace: attached")}
    assert traced == set(), lines
    report = assert_got_nothing(harness, run_dir, url)
    assert report["relay"]["forwarded"] == 1 and report["checks"]["ran"]


def _file_secret(harness: Harness, upstream: ScriptedEndpoint, tmp_path: Path) -> tuple[
        str, Path, Path]:
    """The README's own set-up: the endpoint in a file under $HOME, named by the _FILE
    variable; (secret, home, file)."""
    url = secret_endpoint(harness, upstream)
    del harness.env["CTO_HARNESS_CASE_LOCAL_BASE_URL"]
    home = tmp_path / "home"
    secret_file = home / ".config" / "spark-endpoint"
    secret_file.parent.mkdir(parents=True)
    secret_file.write_text(url + "\n")
    harness.env["HOME"] = str(home)
    harness.env["CTO_HARNESS_CASE_LOCAL_BASE_URL_FILE"] = str(secret_file)
    return url, home, secret_file


@pytest.mark.parametrize("as_user", [False, True], ids=["as-root", "as-a-user"])
def test_case_cannot_read_the_file_secret_under_home(
        harness: Harness, upstream: ScriptedEndpoint, tmp_path: Path, as_user: bool) -> None:
    url, home, secret_file = _file_secret(harness, upstream, tmp_path)
    places = [secret_file, home, Path("/root"), harness.runs_root]
    hostile(harness, "files", " ".join(f"--path {p}" for p in places))
    run_dir = run_as(harness, as_user, "--no-baseline")
    lines = attack_lines(run_dir)
    assert f"attack: read {secret_file}: FileNotFoundError (No such file or directory)" \
        in lines
    report = assert_got_nothing(harness, run_dir, url)
    assert report["endpoint_configured"] and report["relay"]["forwarded"] == 1
    shown = report["case_sandbox"]["ro_paths"]
    for place in places[1:]:  # a folder shows at most the way to a folder bound inside it
        listed = next(x for x in lines if x.startswith(f"attack: list {place}:")
                      or x.startswith(f"attack: read {place}:"))
        names = listed.split(": ", 2)[2].split() if "attack: list" in listed else []
        assert "FileNotFoundError" in listed or all(
            any(p.startswith(f"{place}/{n}/") for p in shown) for n in names), listed


def test_a_file_secret_inside_a_folder_shown_to_the_case_is_masked(
        harness: Harness, upstream: ScriptedEndpoint, tmp_path: Path) -> None:
    url, _home, secret_file = _file_secret(harness, upstream, tmp_path)
    harness.env["CTO_HARNESS_CASE_SANDBOX_RO"] = str(secret_file.parent)  # a user's mistake
    hostile(harness, "files", f"--path {secret_file}")
    _code, out = harness.run_json("run", "--no-baseline")
    assert f"attack: read {secret_file}: got 0 bytes" in attack_lines(out["run_dir"])
    report = assert_got_nothing(harness, out["run_dir"], url)
    assert str(secret_file) in report["case_sandbox"]["masked"]
    assert report["case_sandbox"]["extra_ro"] == [str(secret_file.parent)]


def test_no_helper_process_holds_the_secret(harness: Harness, upstream: ScriptedEndpoint
                                            ) -> None:
    """The warden, bwrap and everything the harness starts get a minimal environment: the
    secret lives in the harness process only."""
    url = secret_endpoint(harness, upstream)
    harness.env["CTO_HARNESS_CASE_ARGS"] = "--mode hang --workspace {workspace} --model {model}"
    proc = harness.start("run", "--no-baseline", "--json")
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(
                "case: pid" in log_of(d) for d in harness.runs_root.glob("*")
                if (d / "backend" / "case.log").exists()):
            time.sleep(0.1)
        helpers = descendants(proc.pid)
        environs = {}
        for pid in helpers:
            try:
                environs[pid] = (Path(f"/proc/{pid}/cmdline").read_bytes(),
                                 Path(f"/proc/{pid}/environ").read_bytes())
            except OSError:
                continue
        wardens = [p for p, (cmd, _) in environs.items() if b"warden.py" in cmd]
        assert len(wardens) == 1 and environs[wardens[0]][1] == b"PATH=/usr/bin:/bin\0"
        assert len(environs) >= 3, "the warden, bwrap and what runs inside"
        for pid, (cmd, env) in environs.items():
            assert url.encode() not in cmd + env, f"pid {pid} holds the secret"
            assert b"CTO_HARNESS_CASE_LOCAL" not in env
    finally:
        proc.send_signal(2)
        proc.communicate(timeout=60)


def _unix_server(path: Path, hits: list[bytes]) -> socket.socket:
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(4)

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                hits.append(conn.recv(100))
                conn.sendall(b"HTTP/1.0 200 OK\r\n\r\nhost shell here")

    threading.Thread(target=serve, daemon=True).start()
    return server


def test_case_reaches_no_host_socket_no_upstream_and_cannot_setns(
        harness: Harness, upstream: ScriptedEndpoint, tmp_path: Path,
        decoy: tuple[int, str]) -> None:
    pid, url = decoy
    hits: list[bytes] = []
    paths = [tmp_path / "host.sock"]
    if os.access("/run", os.W_OK):
        paths.append(Path(f"/run/cto-harness-test-{os.getpid()}.sock"))
    servers = [_unix_server(p, hits) for p in paths]
    target = tmp_path / "target"
    target.write_text(f"127.0.0.1:{upstream.port}")
    hostile(harness, "sockets", f"--target-file {target} --decoy-pid {pid} "
            + " ".join(f"--unix {p}" for p in paths))
    try:
        harness.env["CTO_HARNESS_CASE_SANDBOX_RO"] = str(target)
        _code, out = harness.run_json("run", "--no-baseline")
    finally:
        for server, path in zip(servers, paths, strict=True):
            server.close()
            path.unlink()
    lines = attack_lines(out["run_dir"])
    for path in paths:
        # the filter refuses the socket before the path is looked up (hidden all the same)
        assert f"attack: unix {path}: PermissionError (Operation not permitted)" in lines
    assert hits == []
    assert "attack: upstream tcp: ConnectionRefusedError (Connection refused)" in lines
    setns_1 = next(x for x in lines if x.startswith("attack: setns pid 1:"))
    assert setns_1.endswith(("Operation not permitted", "PermissionError (Permission denied)")), \
        setns_1
    assert f"attack: setns pid {pid}: open FileNotFoundError (No such file or directory)" \
        in lines
    report = assert_got_nothing(harness, out["run_dir"], url)
    assert report["relay"]["forwarded"] == 1, "the relay, and only the relay, answers"
    assert report["case_sandbox"]["network"] == "relay-only"


def _digests(run_dir: Path) -> dict[str, str]:
    return {name: hashlib.sha256((run_dir / name).read_bytes()).hexdigest()
            for name in ("trace.jsonl", "backend/relay.jsonl", "report.json")}


def test_case_cannot_touch_the_ledgers_or_the_harness_install(
        harness: Harness, upstream: ScriptedEndpoint) -> None:
    url = secret_endpoint(harness, upstream)
    hostile(harness, "ledgers", f"--runs-root {harness.runs_root} --install {ROOT}")
    _code, out = harness.run_json("run", "--no-baseline")
    lines = attack_lines(out["run_dir"])
    appends = [x for x in lines if x.startswith("attack: append ")]
    assert len(appends) >= 4 and not any(x.endswith(": written") for x in appends), appends
    assert not (ROOT / "core" / "planted.py").exists()
    run_dir = Path(out["run_dir"])
    assert not any("forged" in line for line in (run_dir / "trace.jsonl").read_text()
                   .splitlines())
    report = assert_got_nothing(harness, run_dir, url)
    assert len((run_dir / "backend" / "relay.jsonl").read_text().splitlines()) \
        == report["relay"]["requests"] == 1


def test_a_setsid_daemon_is_gone_when_the_run_ends_and_rewrites_nothing(
        harness: Harness, upstream: ScriptedEndpoint) -> None:
    url = secret_endpoint(harness, upstream)
    hostile(harness, "daemon", f"--runs-root {harness.runs_root}")
    _code, out = harness.run_json("run", "--no-baseline")
    run_dir = Path(out["run_dir"])
    assert "attack: daemon: left behind" in attack_lines(run_dir)
    before = _digests(run_dir)
    assert no_sandbox_process_left(harness.report(run_dir)) if os.geteuid() == 0 else True
    time.sleep(3)  # the daemon would have struck after 2 s
    assert _digests(run_dir) == before
    assert_got_nothing(harness, run_dir, url)


def test_a_fork_bomb_is_bounded_and_the_run_ends_honestly(
        harness: Harness, upstream: ScriptedEndpoint) -> None:
    url = secret_endpoint(harness, upstream)
    hostile(harness, "bomb")
    t0 = time.monotonic()
    _code, out = harness.run_json("run", "--no-baseline", timeout=180)
    refused = next(x for x in attack_lines(out["run_dir"]) if x.startswith("attack: bomb:"))
    count = int(refused.split()[2])
    assert "fork refused (Resource temporarily unavailable)" in refused
    assert 0 < count < NPROC, refused
    report = assert_got_nothing(harness, out["run_dir"], url)
    assert report["case_exit_code"] == 0 and report["checks"]["ran"]
    assert time.monotonic() - t0 < 120
    assert subprocess.run(["true"], timeout=10).returncode == 0  # the machine carries on


def test_code_planted_for_the_checks_sees_no_secret_and_no_upstream(
        harness: Harness, upstream: ScriptedEndpoint, tmp_path: Path) -> None:
    url = secret_endpoint(harness, upstream)
    target = tmp_path / "target"
    target.write_text(f"127.0.0.1:{upstream.port}")
    harness.env["CTO_HARNESS_CASE_SANDBOX_RO"] = str(target)
    hostile(harness, "plant", f"--target-file {target}")
    served = len(upstream.requests) if hasattr(upstream, "requests") else None
    _code, out = harness.run_json("run")
    run_dir = Path(out["run_dir"])
    said = (run_dir / "checks" / "out" / "attack.txt").read_text().split()
    assert said[0] == "pids" and int(said[1]) <= 4, said
    assert said[2:4] == ["upstream", "unreachable"], said
    if served is not None:
        assert len(upstream.requests) == served + 1  # the Case's one call, via the relay
    report = assert_got_nothing(harness, run_dir, url)
    assert report["checks"]["ran"] and report["checks"]["passed"] == report["checks"]["total"]
    assert secret_on_disk(run_dir / "checks", url) == []
    assert "case: wrote slugify.py" in log_of(run_dir)


@pytest.mark.parametrize("as_user", [False, True], ids=["as-root", "as-a-user"])
def test_case_cannot_connect_to_a_host_socket_in_a_folder_the_sandbox_shows(
        harness: Harness, upstream: ScriptedEndpoint, tmp_path: Path, as_user: bool) -> None:
    """Issue 22 (9): a read-only bind does not stop connect(); the seccomp filter does.
    Sockets planted in the Case's own folder and in a folder lent with _RO, both reachable
    by path from inside the sandbox, answer nothing."""
    url = secret_endpoint(harness, upstream)
    tmp_path.chmod(0o755)  # pytest makes it 0700; as root the Case runs as another uid
    own, lent = tmp_path / "agent", tmp_path / "lent"
    own.mkdir(mode=0o755)
    lent.mkdir(mode=0o755)
    case = own / "hostile.py"
    case.write_bytes(HOSTILE.read_bytes())
    case.chmod(0o755)
    target = lent / "target"
    target.write_text(f"127.0.0.1:{upstream.port}")
    hits: list[bytes] = []
    paths = [own / "agent.sock", lent / "lent.sock"]
    servers = [_unix_server(p, hits) for p in paths]
    for path in paths:
        path.chmod(0o777)  # any uid may connect: only the filter stands in the way
    hostile(harness, "sockets", f"--target-file {target} --decoy-pid 0 "
            + " ".join(f"--unix {p}" for p in paths))
    harness.env["CTO_HARNESS_CASE_BIN"] = str(case)
    harness.env["CTO_HARNESS_CASE_SANDBOX_RO"] = str(lent)
    try:
        run_dir = run_as(harness, as_user, "--no-baseline")
    finally:
        for server in servers:
            server.close()
    lines = attack_lines(run_dir)
    for path in paths:
        assert f"attack: unix {path}: PermissionError (Operation not permitted)" in lines, \
            lines
    assert hits == [], "a host socket answered the Case"
    report = assert_got_nothing(harness, run_dir, url)
    assert report["relay"]["forwarded"] == 1, "the relay still answers through the forwarder"
    box = report["case_sandbox"]
    assert box["seccomp"] == "on" and "socket(AF_UNIX)" in box["seccomp_filtered"], box
