"""A real small model on CPU (SmolLM2-135M through llama-cpp-python's OpenAI-compatible
server): the reference Case against it directly, then the whole harness against it.

The model is weak, so these tests assert the protocol and the evidence — readiness,
admission under its own id, the relay ledger, streaming, an honest report — never that the
task passes. Without the optional extra they are skipped with the reason in `-ra` output.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.evidence.transcript import Transcript
from core.standins.demo import reference_case_bin
from core.standins.localmodel import (
    SMOLLM_MODEL,
    SMOLLM_PROVIDER,
    LocalModelServer,
    LocalModelUnavailable,
    unavailable_reason,
)
from tests.support.harness import ROOT
from tests.support.signing import harness_setting

pytestmark = pytest.mark.realmodel

TASK = ROOT / "core" / "run" / "tasks" / "r1-string-slugify"


@pytest.fixture(scope="module")
def local_model() -> Iterator[LocalModelServer]:
    reason = unavailable_reason()
    if reason:
        pytest.skip(f"real model not available here: {reason}")
    with LocalModelServer() as server:
        yield server


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items()
            if not (harness_setting(k) or k.startswith(("OPENAI_", "ANTHROPIC_")))}


def test_reference_case_streams_from_the_real_model(local_model: LocalModelServer,
                                                    tmp_path: Path) -> None:
    workspace = tmp_path / "workspace"
    shutil.copytree(TASK / "workspace", workspace)
    env = {**clean_env(), "OPENAI_BASE_URL": local_model.base_url, "OPENAI_API_KEY": "none",
           "CTO_HARNESS_CASE_MODEL": SMOLLM_MODEL}
    proc = subprocess.run([sys.executable, "-m", "core.standins.refcase", "--task-file",
                           str(TASK / "TASK.md"), "--workspace", str(workspace)],
                          cwd=workspace, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode in (0, 1), proc.stderr
    streamed = re.search(r"turn 1: (\d+) tokens streamed", proc.stdout)
    assert streamed and int(streamed.group(1)) > 5, proc.stdout
    assert f"model answered {SMOLLM_MODEL}" in proc.stdout
    assert local_model.base_url not in proc.stdout + proc.stderr


def test_harness_runs_the_reference_case_against_the_real_model(
        local_model: LocalModelServer, tmp_path: Path) -> None:
    endpoint_file = tmp_path / "endpoint"
    endpoint_file.write_text(local_model.base_url + "\n")
    admission = tmp_path / "admission.json"
    admission.write_text(json.dumps({"admitted": [{"provider": SMOLLM_PROVIDER,
                                                   "model": SMOLLM_MODEL, "status": "admitted",
                                                   "expires": None}]}))
    runs = tmp_path / "runs"
    env = {**clean_env(),
           "CTO_HARNESS_CASE_LOCAL_BASE_URL_FILE": str(endpoint_file),
           "CTO_HARNESS_CASE_MODEL_ADMISSION_FILE": str(admission),
           "CTO_HARNESS_CASE_MODEL_PROVIDER": SMOLLM_PROVIDER,
           "CTO_HARNESS_CASE_MODEL": SMOLLM_MODEL,
           "CTO_HARNESS_CASE_BIN": reference_case_bin(tmp_path),
           "CTO_HARNESS_RUNS_ROOT": str(runs)}

    def harness(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "core.cli", *args, "--json"], env=env,
                              cwd=tmp_path, capture_output=True, text=True, timeout=300)

    ready = harness("readiness")
    assert ready.returncode == 0, ready.stdout + ready.stderr
    readiness = json.loads(ready.stdout)
    states = {c["name"]: c["state"] for c in readiness["checks"]}
    assert states["model_served"] == "ok" and states["endpoint_reachable"] == "ok", states

    run = harness("run", "--timeout", "240")
    assert "Traceback" not in run.stderr
    result = json.loads(run.stdout)
    run_dir = Path(result["run_dir"])
    report = json.loads((run_dir / "report.json").read_text())
    assert report["status"] in ("passed", "failed"), report["reasons"]
    assert report["status"] == "passed" or report["reasons"], "a failure must say why"
    assert report["demo"] is False and report["case_process_started"] is True
    assert (report["case_model_provider"], report["case_model"]) == (SMOLLM_PROVIDER,
                                                                    SMOLLM_MODEL)
    assert report["case_model_admission_status"] == "admitted"
    assert report["relay"]["requests"] >= 1 and report["relay"]["refused"] == 0
    assert report["relay"]["models_seen"] == [SMOLLM_MODEL]
    assert report["fallback_detected"] is False
    assert report["baseline"]["status"] in ("failed", "passed")

    ledger = [json.loads(line)
              for line in (run_dir / "backend" / "relay.jsonl").read_text().splitlines()]
    chats = [r for r in ledger if r["path"].endswith("/chat/completions")]
    assert chats and all(
        (r["model_asked"], r["model_answered"], r["stream"], r["status"])
        == (SMOLLM_MODEL, SMOLLM_MODEL, True, 200) for r in chats), ledger
    # The conversation, rebuilt from the exchanges the relay kept: the task's prompt, and
    # each of the real model's streamed answers, whole, attributed to it.
    steps = Transcript(run_dir).all_steps()
    shown = [(s.source, s.first_line[:60], s.problems) for s in steps]
    assert steps[0].source == "system" and "careful coding agent" in steps[0].message, shown
    assert any(s.source == "user" and "slugify" in s.message for s in steps), shown
    answers = [s for s in steps if s.answer]
    assert len(answers) == len(chats), shown
    assert all(s.model == SMOLLM_MODEL and s.message.strip() and not s.problems
               for s in answers), shown
    case_log = (run_dir / "backend" / "case.log").read_text()
    assert re.search(r"turn 1: \d+ tokens streamed", case_log), case_log

    host = local_model.base_url.split("//")[1].split("/")[0]
    for path in run_dir.rglob("*"):
        if path.is_file():
            text = path.read_bytes().decode("utf-8", "replace")
            assert host not in text, f"the endpoint leaked into {path}"

    checked = harness("validate", str(run_dir))
    verdicts = {c["id"]: c["verdict"] for c in json.loads(checked.stdout)["criteria"]}
    assert verdicts["endpoint_not_written"] == "ok"
    assert verdicts["evidence_intact"] == "ok"
    assert verdicts["model_proven"] != "ok", "SmolLM must never count as Qwen evidence"


def test_a_missing_server_package_is_named_with_the_install_line(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # With the extra installed only llama_cpp is missing; without it, its companions too.
    monkeypatch.setitem(sys.modules, "llama_cpp", None)
    reason = unavailable_reason()
    assert reason is not None and reason.startswith("missing llama_cpp")
    assert "; install the optional extra as the README" in reason
    readme = (ROOT / "README.md").read_text()
    command = reason.split(" does: ", 1)[1]
    for step in command.split(" && "):  # the README's own install lines, word for word
        assert f"\n{step} " in readme, step


def test_a_broken_model_file_is_a_clear_error_not_a_hang(tmp_path: Path) -> None:
    if unavailable_reason():
        pytest.skip(f"real model not available here: {unavailable_reason()}")
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"not a gguf file at all")
    server = LocalModelServer(gguf=broken, startup_timeout=60)
    with pytest.raises(LocalModelUnavailable, match=r"exited with -?\d+ before it was ready"):
        server.start()
    server.stop()
