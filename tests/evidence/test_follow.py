"""Following a run as it grows (core/evidence/follow.py's RunTail): only what was added, whole
lines, bounded per poll, and never stalled or led astray by what the Case planted."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from core.evidence.follow import RunTail
from tests.support.tui_fixtures import make_running


def test_tail_reads_only_what_was_added_and_waits_for_whole_lines(tmp_path: Path) -> None:
    run = make_running(tmp_path)
    tail = RunTail(run.paths.root)
    first = tail.poll()
    assert [e.event for e in first.events][:2] == ["run_started", "config_resolved"]
    assert first.log_lines == [b"case: started"] and first.manifest is not None
    run.log(b"half a li")
    assert tail.poll().log_lines == []
    run.log(b"ne\n", "next")
    run.event(1.0, "case_process_exited", exit_code=0)
    again = tail.poll()
    assert again.log_lines == [b"half a line", b"next"]
    assert [e.event for e in again.events] == ["case_process_exited"]
    assert again.manifest is None, "the manifest is read once"
    assert not tail.poll()


def test_tail_is_bounded_per_poll_so_a_reader_behind_catches_up_in_steps(tmp_path: Path) -> None:
    run = make_running(tmp_path)
    run.log(*[f"line {i:06d}" for i in range(20_000)])
    tail = RunTail(run.paths.root)
    batches = []
    while batch := tail.poll(log_bytes=1 << 16):
        batches.append(batch)
    lines = [line for b in batches for line in b.log_lines]
    assert len(lines) == 20_001 and lines[-1] == b"line 019999"
    assert len(batches) > 3 and all(sum(map(len, b.log_lines)) <= 1 << 16 for b in batches)
    assert batches[0].pending_bytes > 0 and batches[-1].pending_bytes == 0


def test_tail_can_start_near_the_end_of_a_huge_log(tmp_path: Path) -> None:
    run = make_running(tmp_path)
    run.log(*[f"line {i:06d}" for i in range(100_000)])
    lines = RunTail(run.paths.root, log_tail_bytes=1200).poll().log_lines
    assert lines[-1] == b"line 099999" and len(lines) == 1200 // 12
    assert all(line.startswith(b"line ") and len(line) == 11 for line in lines)


def test_files_the_case_planted_as_fifos_or_links_never_stall_or_lead_the_follower(
        tmp_path: Path) -> None:
    run = make_running(tmp_path / "runs")
    outside = tmp_path / "outside.json"
    outside.write_text('{"ready": true, "checks": []}')
    run.paths.readiness.unlink()
    os.mkfifo(run.paths.readiness)
    run.paths.report.symlink_to(outside)
    polled: list[object] = []
    reader = threading.Thread(target=lambda: polled.append(RunTail(run.paths.root).poll()),
                              daemon=True)
    reader.start()
    reader.join(10)
    assert not reader.is_alive(), "a FIFO in the run blocked the follower"
    batch = polled[0]
    assert batch.readiness is None and batch.report is None  # type: ignore[attr-defined]
    assert batch.problems == ["report.json: a symbolic link, never followed"]  # type: ignore[attr-defined]
