"""The other commands as a user meets them: schema, runs, health, validate on bad runs, and
the live progress lines of a plain `run`."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from core.cli.main import COMMAND_MODULES, build_parser
from tests.support.harness import ROOT, Harness, unprivileged
from tests.support.tui_fixtures import make_runs_root


def test_schema_exports_the_run_directory_models(harness: Harness) -> None:
    proc = harness.run("schema")
    schemas = json.loads(proc.stdout)
    assert {"manifest", "trace_event", "report"} <= set(schemas)
    assert "case_model_admission_status" in schemas["report"]["properties"]


def test_runs_lists_finished_interrupted_and_unreadable_runs(harness: Harness) -> None:
    _, out = harness.run_json("run", "--engine", "fake")
    finished = Path(out["run_dir"])
    interrupted = harness.runs_root / "20200101T000000Z-r1-string-slugify-999999"
    interrupted.mkdir()
    manifest = json.loads((finished / "manifest.json").read_text())
    manifest.update(run_id=interrupted.name, harness_pid=999999, harness_start_ticks=1)
    (interrupted / "manifest.json").write_text(json.dumps(manifest))
    broken = harness.runs_root / "20190101T000000Z-r1-string-slugify-1"
    broken.mkdir()
    (broken / "manifest.json").write_text("{not json")
    code, rows = harness.run_json("runs")
    assert code == 0
    by_id = {r["run_id"]: r for r in rows}
    assert [r["run_id"] for r in rows] == [finished.name, interrupted.name, broken.name]
    assert by_id[finished.name]["status"] == "failed"
    assert by_id[interrupted.name]["status"] == "interrupted"
    assert by_id[broken.name]["status"] == "unreadable"
    assert "manifest.json" in by_id[broken.name]["problem"]


def test_health_runs_readiness_and_a_self_test(harness: Harness) -> None:
    code, health = harness.run_json("health")
    assert code == 0, health
    assert health["ok"] and health["ready"] and health["self_test"]["validate_accepted"]


def test_plain_run_shows_the_stages_as_they_happen(harness: Harness) -> None:
    proc = harness.run("run", "--engine", "fake")
    stages = [line.split()[1] for line in proc.stderr.splitlines() if line.strip()
              and line.split()[0].endswith("s")]
    assert stages[:4] == ["run_started", "config_resolved", "readiness_checked",
                          "admission_checked"]
    assert "run_finished" in stages
    assert "\x1b[" not in proc.stderr  # not a terminal: plain lines


def test_follower_bounds_a_line_that_never_ends(tmp_path: Path) -> None:
    """A Case printing `\r` progress for minutes with no newline: the follower hands the
    text over in bounded pieces instead of holding it all back."""
    from core.evidence.runs import MAX_PARTIAL, Follower

    log = tmp_path / "case.log"
    follower = Follower(log)
    handed: list[bytes] = []
    with log.open("wb") as fh:
        for _ in range(48):
            fh.write(b"\rdownloading 42%" * 4096)  # ~64 KiB of progress, no newline
            fh.flush()
            handed += follower.read()
    written = log.stat().st_size
    assert len(handed) >= 2 and all(len(p) <= MAX_PARTIAL + (1 << 20) for p in handed)
    assert written - sum(len(p) for p in handed) <= MAX_PARTIAL


def test_unusable_runs_root_is_a_usage_error(harness: Harness, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    proc = harness.run("run", "--engine", "fake", "--runs-root", str(blocker / "runs"))
    assert proc.returncode == 2, proc.stderr
    assert "runs root" in proc.stderr and "--runs-root" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_each_command_loads_only_its_own_module_and_help_lists_them_all(
    harness: Harness,
) -> None:
    for command, module in COMMAND_MODULES.items():
        sub = _subcommands(build_parser(command))
        assert command in sub, f"{module} does not register {command!r}"
    assert set(_subcommands(build_parser())) == {*COMMAND_MODULES, "schema"}
    assert set(_subcommands(build_parser("schema"))) == {"schema"}
    listed = harness.run("--help").stdout
    assert all(command in listed for command in COMMAND_MODULES)
    proc = harness.run("no-such-command")
    assert proc.returncode == 2 and "invalid choice" in proc.stderr


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices


def test_runs_survives_a_manifest_whose_pid_no_process_can_have(harness: Harness) -> None:
    _, out = harness.run_json("run", "--engine", "fake")
    manifest = json.loads((Path(out["run_dir"]) / "manifest.json").read_text())
    for n, pid in enumerate([10**20, -1, 0]):
        junk = harness.runs_root / f"2019010{n}T000000Z-r1-string-slugify-{n}"
        junk.mkdir()
        manifest.update(run_id=junk.name, harness_pid=pid)
        (junk / "manifest.json").write_text(json.dumps(manifest))
    code, rows = harness.run_json("runs")
    assert code == 0
    assert [r["status"] for r in rows[1:]] == ["interrupted"] * 3


def test_a_nan_timeout_is_a_usage_error(harness: Harness) -> None:
    proc = harness.run("run", "--engine", "fake", "--timeout", "nan")
    assert proc.returncode == 2 and "--timeout" in proc.stderr
    assert not harness.runs_root.exists()


def test_escape_sequences_from_the_case_never_reach_the_terminal(harness: Harness) -> None:
    """A Case asking for a model whose name clears the screen, retitles the window and
    writes the clipboard (OSC 52): the human output shows the bytes, never sends them."""
    hostile = "\x1b]52;c;cHduZWQ=\x07\x1b[2J\x1b]0;pwned\x07\x9bclaude-x\u202eevil"
    harness.env["CTO_HARNESS_CASE_ARGS"] = (
        f"--mode claude --ask-model '{hostile}' --workspace {{workspace}} --model {{model}}")
    proc = harness.run("run", "--no-baseline")
    assert proc.returncode == 1 and "guard_tripped" in proc.stderr, proc.stderr
    run_dir = next(harness.runs_root.iterdir())
    shown = harness.run("validate", str(run_dir)).stdout
    for output in (proc.stderr, shown):
        assert "\\x1b]52;c;" in output and "\\u202eevil" in output
        assert not any(ch in output for ch in "\x1b\x07\x9b\u202e")


def test_runs_limit_below_one_is_a_usage_error(harness: Harness) -> None:
    made = make_runs_root(harness.runs_root)
    for limit in ("-1", "0"):
        proc = harness.run("runs", "--limit", limit)
        assert proc.returncode == 2 and "--limit" in proc.stderr, proc.stderr
        assert proc.stdout == ""
    code, rows = harness.run_json("runs", "--limit", "2")
    assert code == 0
    assert [r["run_id"] for r in rows] == sorted(p.name for p in made.values())[:-3:-1]


def test_runs_names_a_runs_root_that_is_a_file(harness: Harness, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    for root, what in ((blocker, "is a file"), (blocker / "runs", "has a file in its path")):
        proc = harness.run("runs", "--runs-root", str(root), "--json")
        assert proc.returncode == 2 and proc.stdout == "", proc.stdout
        assert proc.stderr.splitlines() == [
            f"cto-harness: runs root {root} {what}, not a directory: choose another with "
            "--runs-root or CTO_HARNESS_RUNS_ROOT"]
    proc = harness.run("runs", "--runs-root", str(tmp_path / "not-yet"))
    assert proc.returncode == 2 and proc.stdout == ""  # a root named but missing: a typo
    assert proc.stderr == (f"cto-harness: runs root {tmp_path / 'not-yet'} does not exist: "
                           "check --runs-root or CTO_HARNESS_RUNS_ROOT\n")


def as_user(harness: Harness, *args: str) -> subprocess.CompletedProcess[str]:
    """`cto-harness ARGS` run as a user that file permissions apply to."""
    return subprocess.run(unprivileged([sys.executable, "-m", "core.cli", *args]),
                          env=harness.env, capture_output=True, text=True, timeout=60, cwd=ROOT)


def test_runs_and_validate_name_an_unreadable_runs_root(harness: Harness) -> None:
    passed = make_runs_root(harness.runs_root)["passed"]
    root = harness.runs_root
    root.chmod(0)
    try:
        listed = as_user(harness, "runs")
        validated = as_user(harness, "validate", passed.name)
    finally:
        root.chmod(0o755)
    unreadable = (f"runs root {root} cannot be read (Permission denied): fix its permissions "
                  "or choose another with --runs-root or CTO_HARNESS_RUNS_ROOT")
    assert listed.returncode == 2, listed.stderr
    assert listed.stderr.splitlines() == [f"cto-harness: {unreadable}"]
    assert validated.returncode == 2, validated.stderr
    assert validated.stderr.splitlines() == [
        f"cto-harness: no run directory at {passed.name}, and {unreadable}"]


def test_runs_and_validate_name_an_unreadable_run_folder(harness: Harness) -> None:
    made = make_runs_root(harness.runs_root)
    made["passed"].chmod(0)
    try:
        listed = as_user(harness, "runs", "--json")
        validated = as_user(harness, "validate", made["passed"].name, "--json")
    finally:
        made["passed"].chmod(0o755)
    assert listed.returncode == 0, listed.stderr
    rows = {r["run_id"]: r for r in json.loads(listed.stdout)}
    assert len(rows) == len(made)
    assert rows[made["passed"].name]["status"] == "unreadable"
    assert rows[made["passed"].name]["problem"] == "manifest.json: Permission denied"
    assert rows[made["failed"].name]["status"] == "failed", "the other runs are still listed"
    assert validated.returncode == 1, validated.stderr
    result = json.loads(validated.stdout)
    assert result["status"] == "unreadable"
    assert result["problems"] == ["manifest.json: Permission denied"]


def test_validate_names_an_unreadable_trace_and_gates_an_unreadable_root(
        harness: Harness) -> None:
    made = make_runs_root(harness.runs_root)
    trace = made["passed"] / "trace.jsonl"
    trace.chmod(0)
    try:
        validated = as_user(harness, "validate", made["passed"].name, "--json")
    finally:
        trace.chmod(0o644)
    assert validated.returncode == 1, validated.stderr
    assert "trace.jsonl cannot be read (Permission denied)" in validated.stdout
    sot = harness.runs_root.parent / "PLAN.md"
    sot.write_text("## CTO-WORK-030 - a work item\n\nStatus: blocked\n")
    not_a_root = harness.runs_root.parent / "a-file"
    not_a_root.write_text("")
    gated = harness.run("gates", str(sot), "--runs-root", str(not_a_root))
    assert gated.returncode == 2, gated.stderr
    assert gated.stderr.strip() == (f"cto-harness: runs root {not_a_root} is a file, not a "
                                    "directory: choose another with --runs-root or "
                                    "CTO_HARNESS_RUNS_ROOT")


def test_validate_an_empty_run_dir_is_a_usage_error(harness: Harness) -> None:
    proc = harness.run("validate", "", "--json")
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.splitlines() == [
        "cto-harness: RUN_DIR is empty: give a run directory or a run id"]
