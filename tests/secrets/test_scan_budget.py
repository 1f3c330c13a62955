"""The end-of-run leak scan within its budget, over real files: sparse files read by their
data, files over the byte or time budget listed (never silently skipped), a file held by
a lease waited for only within the budget; and a hostile Case that leaves 100,000 files
and a 4 GiB sparse file, through the real harness."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import signal
import threading
import time
import tracemalloc
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from core.evidence.extents import BLOCK, file_digest
from core.evidence.rundir import UNHASHED, RunPaths, artifact_hashes
from core.evidence.validate import validate_run
from core.secrets.redact import Redactor
from core.secrets.runscan import scan_run, scan_seconds
from core.secrets.scan import scrub
from tests.support.harness import ROOT, Harness

HOARDER = ROOT / "tests" / "cases" / "hoarder.py"


def endpoint() -> str:
    return f"http://spark-{secrets.token_hex(4)}.internal:8000/v1?key={secrets.token_hex(6)}"


def digest(path: Path) -> str:
    fd = os.open(path, os.O_RDONLY)
    try:
        return file_digest(fd, os.fstat(fd))
    finally:
        os.close(fd)


def test_a_4_gib_sparse_file_is_read_by_its_data_and_a_leak_deep_in_it_found(
    tmp_path: Path,
) -> None:
    secret = endpoint()
    big = tmp_path / "workspace" / "big.bin"
    big.parent.mkdir()
    with big.open("wb") as fh:
        fh.truncate(4 << 30)
        fh.seek(1 << 30)
        fh.write(b"one\ntwo\n")
        fh.seek(3 << 30)
        fh.write(f"three\nURL={secret}\n".encode())
    assert big.stat().st_blocks * 512 < 1 << 20, "the file system made it dense"
    t0 = time.monotonic()
    scan = scan_run(tmp_path, Redactor({"endpoint": secret}), seconds=60, max_bytes=1 << 20)
    assert scan.summary.complete and scan.summary.unscanned == []
    assert [(leak.finding.file, leak.finding.line) for leak in scan.leaks] == [
        ("workspace/big.bin", 4)]  # lines counted in the data; holes hold no newline
    [sparse] = scan.summary.sparse
    assert (sparse.file, sparse.size) == ("workspace/big.bin", 4 << 30)
    assert sparse.data_bytes <= 2 * BLOCK
    assert scan.summary.bytes_read == sparse.data_bytes
    assert time.monotonic() - t0 < 30  # not 4 GiB read (that took 21 s, more under load)


def test_the_content_digest_is_the_same_dense_or_sparse(tmp_path: Path) -> None:
    """validate must agree wherever the run is read: a copy may have other holes."""
    content = bytearray(5 * BLOCK + 123)
    content[BLOCK + 7:BLOCK + 20] = os.urandom(13)
    content[-5:] = b"tail\n"
    dense, sparse = tmp_path / "dense", tmp_path / "sparse"
    dense.write_bytes(content)
    with sparse.open("wb") as fh:
        fh.truncate(len(content))
        fh.seek(BLOCK + 7)
        fh.write(content[BLOCK + 7:BLOCK + 20])
        fh.seek(len(content) - 5)
        fh.write(b"tail\n")
    assert digest(dense) == digest(sparse)
    content[3 * BLOCK] = 1
    dense.write_bytes(content)
    assert digest(dense) != digest(sparse)


def test_files_over_the_byte_budget_are_listed_with_the_reason(tmp_path: Path) -> None:
    (tmp_path / "a-small.txt").write_bytes(b"x" * 1000)
    (tmp_path / "b-large.bin").write_bytes(b"y" * 300_000)
    (tmp_path / "c-small.txt").write_bytes(b"z" * 1000)
    os.mkfifo(tmp_path / "d-fifo")  # holds no bytes at rest: neither read nor waited on
    scan = scan_run(tmp_path, Redactor({"endpoint": endpoint()}), seconds=60,
                    max_bytes=100_000)
    s = scan.summary
    assert not s.complete and s.unscanned_count == 1
    assert [(u.file, u.reason.split(":")[0]) for u in s.unscanned] == [
        ("b-large.bin", "over the byte budget")]
    assert s.files_read == 2 and s.bytes_read == 2000
    hashes = artifact_hashes(RunPaths(tmp_path), known=scan.digests, unhashed=scan.unscanned)
    assert hashes["b-large.bin"] == UNHASHED
    assert hashes["a-small.txt"] == digest(tmp_path / "a-small.txt")
    assert "d-fifo" not in hashes


def test_when_time_runs_out_what_is_left_is_listed(tmp_path: Path) -> None:
    for folder in ("one", "two"):
        (tmp_path / folder).mkdir()
        for i in range(3):
            (tmp_path / folder / f"{i}.txt").write_text("x")
    scan = scan_run(tmp_path, Redactor({"endpoint": endpoint()}), seconds=0, max_bytes=1 << 30)
    assert not scan.summary.complete
    assert [u.file for u in scan.summary.unscanned] == ["."]
    assert "time budget (0 s) ran out" in scan.summary.unscanned[0].reason
    hashes = artifact_hashes(RunPaths(tmp_path), known=scan.digests, unhashed=scan.unscanned,
                             unhashed_folders=scan.unscanned_folders)
    assert len(hashes) == 6 and set(hashes.values()) == {UNHASHED}  # not read afterwards


@contextlib.contextmanager
def leased(path: Path) -> Iterator[int]:
    previous = signal.signal(signal.SIGIO, signal.SIG_IGN)
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_WRLCK)
        yield fd
    finally:
        with contextlib.suppress(OSError):
            fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_UNLCK)
        os.close(fd)
        signal.signal(signal.SIGIO, previous)


def test_a_file_held_by_a_lease_is_waited_for_only_within_the_budget(tmp_path: Path) -> None:
    """Another process holding a lease makes an open() wait up to 45 s (lease-break-time):
    the scan opens without waiting and retries while its time lasts."""
    held = tmp_path / "held.txt"
    held.write_text("hello\n")
    redactor = Redactor({"endpoint": endpoint()})
    with leased(held):
        t0 = time.monotonic()
        scan = scan_run(tmp_path, redactor, seconds=0.5, max_bytes=1 << 20)
        assert time.monotonic() - t0 < 5
    assert [(u.file, u.reason.split(" until")[0]) for u in scan.summary.unscanned] == [
        ("held.txt", "held by a file lease")]
    with leased(held) as fd:
        release = threading.Timer(0.2, fcntl.fcntl, (fd, fcntl.F_SETLEASE, fcntl.F_UNLCK))
        release.start()
        scan = scan_run(tmp_path, redactor, seconds=30, max_bytes=1 << 20)
        release.join()
    assert scan.summary.complete and scan.summary.files_read == 1


def test_the_scan_has_a_share_of_the_run_timeout() -> None:
    assert scan_seconds(1800) == 180
    assert scan_seconds(100_000) == 300
    assert scan_seconds(20) == 2
    assert scan_seconds(2) == 1 and scan_seconds(1) == 0.5


def stamp(event: dict) -> float:
    return datetime.fromisoformat(event["ts"].replace("Z", "+00:00")).timestamp()


def test_a_case_burying_the_scan_cannot_pass_and_the_report_says_why(
    harness: Harness,
) -> None:
    """100,000 files and a 4 GiB sparse file, left by a Case that otherwise does the task
    right: the sparse file is read by its data and listed; the files past the byte budget
    are listed unscanned, so the run fails saying why and validate flags it; the report's
    total duration is the run's wall time, scan included."""
    harness.env["CTO_HARNESS_CASE_BIN"] = str(HOARDER)  # its folder is what the sandbox shows
    harness.env["CTO_HARNESS_CASE_ARGS"] = ("--workspace {workspace} --task-file {task_file} "
                                            "--model {model}")
    harness.env["CTO_HARNESS_SCAN_MAX_BYTES"] = str(2 << 20)  # big.bin (1.2 MB), some files
    # A 4 GiB (sparse) file is over the default disk limit's file-size bound (RLIMIT_FSIZE):
    # this test is about the scan's budget, so the Case's disk limit sits above it.
    harness.env["CTO_HARNESS_CASE_DISK"] = "8G"
    code, out = harness.run_json("run", timeout=600)
    run_dir = Path(out["run_dir"])
    report = harness.report(run_dir)
    assert code == 1 and out["status"] == "failed", report["reasons"]
    assert report["checks"]["passed"] == report["checks"]["total"] > 0  # the task was done
    scan = report["scan"]
    assert scan["complete"] is False and scan["budget_bytes"] == 2 << 20
    assert 10_000 < scan["unscanned_count"] < 100_000
    assert len(scan["unscanned"]) == 200
    assert all(u["file"].startswith("workspace/flood/")
               and u["reason"].startswith("over the byte budget") for u in scan["unscanned"])
    assert [(f["file"], f["size"]) for f in scan["sparse"]] == [("workspace/big.bin", 4 << 30)]
    assert any(r.startswith(f"unscanned: {scan['unscanned_count']} entries")
               for r in report["reasons"])
    assert sum(v == UNHASHED for v in report["artifacts"].values()) == scan["unscanned_count"]
    trace = harness.trace(run_dir)
    span = stamp(trace[-2]) - stamp(trace[0])  # run_started .. report_written
    assert report["durations"]["scan_s"] > 0
    parts = report["durations"]
    assert parts["total_s"] >= sum(parts[k] for k in ("preflight_s", "case_s", "checks_s",
                                                      "baseline_s", "scan_s"))
    # all but the report's own writing (8 MB here: its artifact list), which follows it
    assert span - 3.0 <= parts["total_s"] <= span + 0.1
    validation = validate_run(run_dir)
    criterion = next(c for c in validation.criteria if c.id == "endpoint_not_written")
    assert not validation.ok and criterion.verdict == "failed"
    assert "were not scanned" in criterion.detail
    intact = next(c for c in validation.criteria if c.id == "evidence_intact")
    assert intact.verdict == "ok", intact.detail
    assert json.loads((run_dir / "report.json").read_text())["run_id"] == report["run_id"]


def test_a_bad_byte_budget_is_a_usage_error_naming_the_variable(harness: Harness) -> None:
    harness.env["CTO_HARNESS_SCAN_MAX_BYTES"] = "lots"
    proc = harness.run("run", "--json")
    assert proc.returncode == 2, proc.stderr
    assert "CTO_HARNESS_SCAN_MAX_BYTES" in proc.stderr and "Traceback" not in proc.stderr
    assert not harness.runs_root.exists() or not any(harness.runs_root.iterdir())


def test_a_leak_in_a_huge_sparse_file_is_scrubbed_in_bounded_memory(tmp_path: Path) -> None:
    """A Case knows the relay token (a registered secret): written 3 GiB into a sparse
    file, the scrub once read the whole 4 GiB into memory to mask it."""
    token = secrets.token_urlsafe(24)
    redactor = Redactor({"relay_token": token})
    big = tmp_path / "big.bin"
    with big.open("wb") as fh:
        fh.truncate(4 << 30)
        fh.seek(3 << 30)
        fh.write(f"token={token}\n".encode())
    scan = scan_run(tmp_path, redactor, seconds=60, max_bytes=1 << 20)
    assert [leak.finding.line for leak in scan.leaks] == [1]
    tracemalloc.start()
    try:
        findings = scrub(scan.leaks, redactor, tmp_path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [f.file for f in findings] == ["big.bin"]
    assert peak < 64 << 20, f"peak {peak >> 20} MiB"
    text = big.read_text()
    assert token not in text and "its content was removed" in text


def test_a_scan_held_past_its_time_lists_each_unread_entry_once(tmp_path: Path) -> None:
    """Held at a/held.txt by a lease until the time runs out: b/ is listed as one folder
    not listed, and its files are not read for their hashes afterwards either."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    held = tmp_path / "a" / "held.txt"
    held.write_text("held\n")
    for i in range(3):
        (tmp_path / "b" / f"{i}.txt").write_text("x")
    (tmp_path / "c.txt").write_text("c\n")
    with leased(held):
        scan = scan_run(tmp_path, Redactor({"endpoint": endpoint()}), seconds=0.5,
                        max_bytes=1 << 20)
    assert [(u.file, u.reason.split(":")[0].split(" until")[0])
            for u in scan.summary.unscanned] == [
        ("a/held.txt", "held by a file lease"), ("b", "folder not listed")]
    assert scan.summary.unscanned_count == 2 and scan.summary.files_read == 1
    hashes = artifact_hashes(RunPaths(tmp_path), known=scan.digests, unhashed=scan.unscanned,
                             unhashed_folders=scan.unscanned_folders)
    assert hashes == {"a/held.txt": UNHASHED, "b/0.txt": UNHASHED, "b/1.txt": UNHASHED,
                      "b/2.txt": UNHASHED, "c.txt": digest(tmp_path / "c.txt")}


def test_what_the_case_keeps_in_its_home_is_scanned(harness: Harness) -> None:
    """The Case's private $HOME is kept under the run (`home/`): the leak scan covers it,
    so the relay token an agent stores there as its credential is found and scrubbed."""
    harness.env["CTO_HARNESS_CASE_BIN"] = str(ROOT / "tests" / "cases" / "stasher.py")
    code, out = harness.run_json("run")
    run_dir = Path(out["run_dir"])
    report = harness.report(run_dir)
    assert code == 1 and report["leak_detected"] is True, report["reasons"]
    assert [(f["file"], f["secret"]) for f in report["leaks"]] == [
        ("home/.config/agent/auth.json", "relay_token")]
    assert (run_dir / "home/.config/agent/auth.json").read_text() == (
        '{"api_key": "[REDACTED:relay_token]"}\n')
    assert validate_run(run_dir).ok is False
