"""The embedded demo: its scripted answer passes the task's hidden checks, its environment
serves and admits the demo model and finds the reference Case, and `cto-harness run --demo`
goes end to end to a passing, demo-labelled report."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from core.evidence.validate import validate_run
from core.standins import demo
from core.standins.demo import DEMO_MODEL, DEMO_PROVIDER, demo_environment, demo_responder
from core.standins.refcase import parse_file_blocks
from tests.support.harness import ROOT
from tests.support.signing import harness_setting

TASK = ROOT / "core" / "run" / "tasks" / "r1-string-slugify"


def slugify_prompt() -> list[dict]:
    return [{"role": "system", "content": "a coding agent"},
            {"role": "user", "content": (TASK / "TASK.md").read_text()}]


def test_scripted_answer_passes_the_hidden_checks(tmp_path: Path) -> None:
    blocks = parse_file_blocks(demo_responder(slugify_prompt()))
    assert [b.path for b in blocks] == ["slugify.py"]
    (tmp_path / "slugify.py").write_text(blocks[0].content)
    shutil.copy(TASK / "checks" / "test_slugify.py", tmp_path)
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "test_slugify.py"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stdout
    assert "15 passed" in proc.stdout


def test_unknown_task_gets_a_labelled_reply_that_edits_nothing() -> None:
    reply = demo_responder([{"role": "user", "content": "# r9-other-task\nDo something."}])
    assert reply.startswith("[demo endpoint]")
    assert not [b for b in parse_file_blocks(reply) if b.path]
    assert demo_responder(slugify_prompt()).startswith("[demo endpoint]")


def test_demo_environment_serves_admits_and_cleans_up(tmp_path: Path) -> None:
    with demo_environment(token_delay=0.0) as settings:
        base_url = settings.endpoint.get_secret_value()
        assert base_url.startswith("http://127.0.0.1:")
        assert base_url not in repr(settings)
        models = httpx.get(f"{base_url}/models", timeout=5).json()
        assert [m["id"] for m in models["data"]] == [DEMO_MODEL]
        admitted = json.loads(settings.admission_file.read_text())["admitted"]
        assert admitted == [{"provider": DEMO_PROVIDER, "model": DEMO_MODEL,
                             "status": "admitted", "expires": None}]
        assert (settings.provider, settings.model) == ("qwen-local", "qwen3.6-35b-a3b")
        assert os.access(settings.case_bin, os.X_OK)
        workspace = tmp_path / "workspace"
        shutil.copytree(TASK / "workspace", workspace)
        env = {"PATH": os.environ["PATH"], "OPENAI_BASE_URL": base_url, "OPENAI_API_KEY": "t",
               "CTO_HARNESS_CASE_MODEL": DEMO_MODEL}
        proc = subprocess.run([settings.case_bin, "--task-file", str(TASK / "TASK.md"),
                               "--workspace", str(workspace), "--model", DEMO_MODEL],
                              cwd=workspace, env=env, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        assert (workspace / "slugify.py").read_text() == demo.SLUGIFY_SOLUTION
        folder = settings.admission_file.parent
    assert not folder.exists()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{base_url}/models", timeout=2)


def test_without_an_installed_script_a_launcher_runs_the_reference_case(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bare = tmp_path / "bin"
    bare.mkdir()
    (bare / "python").symlink_to(sys.executable)
    monkeypatch.setattr(sys, "executable", str(bare / "python"))
    launcher = demo.reference_case_bin(tmp_path)
    assert launcher == str(tmp_path / "cto-harness-case")
    site_packages = Path(httpx.__file__).parent.parent  # the bare python lacks the venv's
    proc = subprocess.run([launcher, "--workspace", str(tmp_path)],
                          env={"PATH": os.environ["PATH"], "PYTHONPATH": str(site_packages)},
                          cwd=tmp_path,
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert proc.stderr.startswith("refcase: missing --task-file or CTO_HARNESS_TASK_FILE")


def test_cli_demo_run_passes_and_says_demo(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items()
           if not (harness_setting(k) or k.startswith(("OPENAI_", "ANTHROPIC_")))}
    proc = subprocess.run(
        [sys.executable, "-m", "core.cli", "run", "--demo", "--json",
         "--runs-root", str(tmp_path / "runs")],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert "Traceback" not in proc.stderr
    result = json.loads(proc.stdout)
    assert (result["status"], result["exit_code"], result["demo"]) == ("passed", 0, True)
    run_dir = Path(result["run_dir"])
    report = json.loads((run_dir / "report.json").read_text())
    assert report["demo"] is True and report["stage2_passed"] is True
    assert (report["case_model_provider"], report["case_model"]) == (DEMO_PROVIDER, DEMO_MODEL)
    assert report["relay"]["models_seen"] == [DEMO_MODEL]
    assert report["baseline"]["status"] == "failed"
    case_log = (run_dir / "backend" / "case.log").read_text()
    assert "[demo endpoint]" in case_log
    assert "wrote slugify.py" in case_log
    ledger_lines = (run_dir / "backend" / "relay.jsonl").read_text().splitlines()
    ledger = [json.loads(line) for line in ledger_lines]
    assert [(r["model_asked"], r["stream"], r["status"]) for r in ledger] == [
        (DEMO_MODEL, True, 200)]
    validation = validate_run(run_dir)
    verdicts = {c.id: c.verdict for c in validation.criteria}
    assert validation.ok and validation.demo and not validation.stage2_pass_evidence
    assert verdicts["stage2_pass_evidence"] == verdicts["endpoint_config_supplied"] == (
        "not_applicable")
