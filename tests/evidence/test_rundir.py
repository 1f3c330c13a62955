"""Reading a run directory's files (core/evidence/rundir.py's open_regular): a FIFO or a
symbolic link planted in place of a run file is named, never opened."""

from __future__ import annotations

import os
from pathlib import Path

from tests.support.harness import Harness


def test_validate_never_opens_a_fifo_or_a_link_in_place_of_a_run_file(
    harness: Harness, tmp_path: Path
) -> None:
    _, out = harness.run_json("run", "--engine", "fake")
    run_dir = Path(out["run_dir"])
    (run_dir / "trace.jsonl").unlink()
    os.mkfifo(run_dir / "trace.jsonl")  # opening it would wait for a writer forever
    code, result = harness.run_json("validate", str(run_dir), timeout=20)
    intact = next(c for c in result["criteria"] if c["id"] == "evidence_intact")
    assert code == 1 and "trace.jsonl is not a regular file" in intact["detail"]
    outside = tmp_path / "report-elsewhere.json"
    (run_dir / "report.json").rename(outside)
    (run_dir / "report.json").symlink_to(outside)
    code, result = harness.run_json("validate", str(run_dir), timeout=20)
    assert code == 1 and result["status"] == "unreadable"
    assert "report.json: a symbolic link" in result["problems"][0]
