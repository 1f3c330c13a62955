"""The verdict on a run directory (core/evidence/validate.py), through `cto-harness validate`:
partial and corrupt runs, and an edited trace line named."""

from __future__ import annotations

from pathlib import Path

from tests.support.harness import Harness


def test_validate_gives_a_verdict_on_partial_and_corrupt_runs(harness: Harness) -> None:
    _, out = harness.run_json("run", "--engine", "fake")
    run_dir = Path(out["run_dir"])
    (run_dir / "report.json").write_text('{"status": "passed"')
    code, result = harness.run_json("validate", str(run_dir))
    assert code == 1 and result["status"] == "unreadable"
    assert "report.json" in result["problems"][0]
    (run_dir / "report.json").unlink()
    code, result = harness.run_json("validate", str(run_dir))
    assert code == 1 and result["status"] == "incomplete"
    proc = harness.run("validate", str(run_dir.parent / "no-such-run"))
    assert proc.returncode == 2 and "no run directory" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_validate_names_an_edited_trace_line(harness: Harness) -> None:
    _, out = harness.run_json("run", "--engine", "fake")
    trace = Path(out["run_dir"]) / "trace.jsonl"
    lines = trace.read_text().splitlines(keepends=True)
    lines[3] = lines[3].replace('"event"', '"event" ', 1)
    trace.write_text("".join(lines))
    code, result = harness.run_json("validate", out["run_dir"])
    assert code == 1
    intact = next(c for c in result["criteria"] if c["id"] == "evidence_intact")
    assert intact["verdict"] == "failed" and "line 5" in intact["detail"]


def test_validate_knows_failure_class(harness: Harness) -> None:
    """A fake run fails its checks: the agent's fault, said by the report and validate; a
    report that drops its class (or claims one on a pass) is named."""
    code, out = harness.run_json("run", "--engine", "fake")
    assert code == 1 and out["status"] == "failed" and out["failure_class"] == "agent"
    _, result = harness.run_json("validate", out["run_dir"])
    assert result["failure_class"] == "agent"
    line = harness.run("validate", out["run_dir"]).stdout.splitlines()[0]
    assert line.endswith("(run failed); whose fault: agent"), line
    report = Path(out["run_dir"]) / "report.json"
    report.write_text(report.read_text().replace('"failure_class": "agent"',
                                                 '"failure_class": null'))
    code, result = harness.run_json("validate", out["run_dir"])
    assert code == 1 and "failure_class is missing on a failed run: the report was not " \
        "written by this harness" in result["problems"]
    shown = harness.run("validate", out["run_dir"]).stdout
    assert "failure_class is missing" in shown
    assert "NOT accepted (run failed)" in shown  # as the dashboard words it
