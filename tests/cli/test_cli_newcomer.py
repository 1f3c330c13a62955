"""The CLI as a newcomer meets it (issue 13): the README's demo command from a fresh clone,
exit codes that agree with the README's table, words that agree with the dashboard."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.cli.main import build_parser
from core.cli.schemas import schemas
from tests.support.harness import ROOT, Harness
from tests.support.signing import harness_setting
from tests.support.tui_fixtures import make_runs_root


def bare_env(**extra: str) -> dict[str, str]:
    """A newcomer's environment: nothing of ours configured, the repository importable."""
    env = {k: v for k, v in os.environ.items() if not harness_setting(k)}
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


def cli(*args: str, cwd: Path, env: dict[str, str] | None = None,
        timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "core.cli", *args], cwd=cwd,
                          env=env or bare_env(), capture_output=True, text=True,
                          timeout=timeout)


def test_demo_run_with_the_default_runs_root_passes_from_any_folder(tmp_path: Path) -> None:
    """The README's first command, with the default `./harness-runs`: the Case and the
    checks run in folders of their own, so relative run paths pointed nowhere."""
    proc = cli("run", "--demo", "--json", cwd=tmp_path)
    assert "Traceback" not in proc.stderr
    result = json.loads(proc.stdout)
    assert (proc.returncode, result["status"]) == (0, "passed"), result
    run_dir = Path(result["run_dir"])
    assert run_dir.is_absolute() and run_dir.parent == tmp_path / "harness-runs"
    assert "no task file" not in (run_dir / "backend" / "case.log").read_text()
    valid = cli("validate", result["run_id"], cwd=tmp_path)
    assert valid.returncode == 0 and (": accepted as a demo (run passed): demo endpoint, never "
                                      "real-model evidence") in valid.stdout


def test_validate_on_a_folder_that_is_not_a_run_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "notes").mkdir()
    proc = cli("validate", str(tmp_path / "notes"), cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout
    assert "is not a run directory" in proc.stderr and "manifest.json" in proc.stderr


def test_validate_says_accepted_as_the_dashboard_does(tmp_path: Path) -> None:
    made = make_runs_root(tmp_path / "runs")
    failed = cli("validate", str(made["failed"]), cwd=tmp_path)
    assert failed.returncode == 0 and ": accepted (run failed)" in failed.stdout
    corrupt = cli("validate", str(made["corrupt"]), cwd=tmp_path)
    assert corrupt.returncode == 1 and ": NOT accepted (run unreadable)" in corrupt.stdout
    for proc in (failed, corrupt):
        assert ": valid" not in proc.stdout and "NOT valid" not in proc.stdout


def test_runs_under_a_root_that_does_not_exist(tmp_path: Path) -> None:
    named = cli("runs", "--runs-root", str(tmp_path / "nonexistent"), cwd=tmp_path)
    assert named.returncode == 2 and "does not exist" in named.stderr
    from_env = cli("runs", cwd=tmp_path,
                   env=bare_env(CTO_HARNESS_RUNS_ROOT=str(tmp_path / "missing")))
    assert from_env.returncode == 2 and "CTO_HARNESS_RUNS_ROOT" in from_env.stderr
    fresh_clone = cli("runs", cwd=tmp_path)  # the default root: made by the first run
    assert fresh_clone.returncode == 0 and "no runs under" in fresh_clone.stdout


def test_health_json_ok_agrees_with_its_exit_code(harness: Harness) -> None:
    env = {k: v for k, v in harness.env.items() if k != "CTO_HARNESS_CASE_LOCAL_BASE_URL"}
    proc = subprocess.run([sys.executable, "-m", "core.cli", "health", "--json"], env=env,
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    health = json.loads(proc.stdout)
    assert proc.returncode == 3 and health["exit_code"] == 3
    assert health["ok"] is False and health["ready"] is False
    assert health["self_test"]["ok"] is True
    assert health["self_test"]["fake_run_status"] == "failed"
    assert "expected" in health["self_test"]["expected"]


def test_schema_help_names_every_schema_it_prints(tmp_path: Path) -> None:
    help_text = " ".join(cli("schema", "--help", cwd=tmp_path).stdout.split())
    printed = json.loads(cli("schema", cwd=tmp_path).stdout)
    assert set(printed) == set(schemas())
    for name in printed:
        assert name in help_text, name


def every_parser(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    found = [parser]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found += every_parser(sub)
    return found


def test_no_option_is_taken_from_an_abbreviation(tmp_path: Path) -> None:
    parsers = every_parser(build_parser())
    assert len(parsers) > 5
    assert [p.prog for p in parsers if p.allow_abbrev] == []
    proc = cli("run", "--dem", "--json", cwd=tmp_path)
    assert proc.returncode == 2 and "--dem" in proc.stderr
    assert not (tmp_path / "harness-runs").exists(), "no run may start from a typo"


def test_dashboard_rejects_a_negative_log_ring_as_usage(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-c", "from tui.cli import main; main()",
                           "--log-lines", "-5"], cwd=tmp_path, env=bare_env(),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "--log-lines must be at least 100 (got -5)" in proc.stderr


def test_dashboard_without_a_terminal_says_so_and_exits_2(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-c", "from tui.cli import main; main()"],
                          cwd=tmp_path, env=bare_env(), stdin=subprocess.DEVNULL,
                          capture_output=True, timeout=60)
    assert proc.returncode == 2
    assert b"needs a terminal" in proc.stderr
    assert b"\x1b" not in proc.stdout + proc.stderr


@pytest.mark.parametrize("flag", ["--dem", "--runs"])
def test_dashboard_takes_no_abbreviation(tmp_path: Path, flag: str) -> None:
    proc = subprocess.run([sys.executable, "-c", "from tui.cli import main; main()", flag],
                          cwd=tmp_path, env=bare_env(), capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2 and "unrecognized arguments" in proc.stderr


def test_validate_never_prints_none_for_a_field_the_trace_lacks(tmp_path: Path) -> None:
    from tests.support.tui_fixtures import QWEN, FixtureRun, run_id, stage2

    run = FixtureRun(tmp_path / "runs", run_id(0, 2001))
    run.event(0.05, "config_resolved", endpoint_configured=True, provider="qwen-local",
              model=QWEN)  # no endpoint_source: how the endpoint was supplied is unknown
    run.readiness(True)
    run.event(0.3, "readiness_checked", ready=True, checks={"endpoint_config": "ok"})
    run.event(0.35, "admission_checked", status="admitted", detail="admitted")
    stage2(run)
    run.report("passed", 9.5)
    proc = cli("validate", str(run.paths.root), "--json", cwd=tmp_path)
    criteria = {c["id"]: c for c in json.loads(proc.stdout)["criteria"]}
    supplied = criteria["endpoint_config_supplied"]
    assert supplied["verdict"] == "failed"
    assert "config_resolved has no endpoint_source" in supplied["detail"]
    text = cli("validate", str(run.paths.root), cwd=tmp_path).stdout
    assert "None" not in text and "True" not in text and "False" not in text


def test_gates_prints_the_sots_words_inert(tmp_path: Path) -> None:
    """A SOT (or a run) can hold escape sequences: `gates` spells them, never sends them."""
    plan = tmp_path / "PLAN.md"
    plan.write_text("---\ntitle: plan\n---\n\n## CTO-WORK-030 - evidence\n\n"
                    "Status: blocked\x1b]52;c;cHduZWQ=\x07\u202egnp.exe\n")
    proc = cli("gates", str(plan), "--runs-root", str(tmp_path / "runs"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "\x1b" not in proc.stdout and "\u202e" not in proc.stdout
    assert "blocked\\x1b]52;c;chduzwq=\\x07\\u202egnp.exe" in proc.stdout  # lowercased
