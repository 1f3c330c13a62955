"""Shared fixtures: a real loopback upstream, an admission file, and the CLI as a process.
What they build (Harness, ROOT, CASE, ...) is in tests/support/harness.py."""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from core.evidence.keys import KEY_FILE_VAR
from core.standins.endpoint import ScriptedEndpoint
from tests.support.harness import CASE, HOSTED_VARS, QWEN, ROOT, Harness, answer
from tests.support.signing import harness_setting, write_key


@pytest.fixture(autouse=True, scope="session")
def signing_key_file(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Every run of the suite is signed with the fixture key, and every in-process validate
    checks with it: the account's own key is never made or used by a test."""
    path = write_key(tmp_path_factory.mktemp("signing", numbered=True) / "signing-key")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(KEY_FILE_VAR, str(path))
        yield path


@pytest.fixture
def upstream() -> Iterator[ScriptedEndpoint]:
    """A real OpenAI-compatible server on loopback, standing in for the private box."""
    with ScriptedEndpoint(responder=answer, model_id=QWEN) as endpoint:
        yield endpoint


@pytest.fixture
def admission(tmp_path: Path) -> Path:
    path = tmp_path / "admission.json"
    path.write_text(json.dumps({"admitted": [
        {"provider": "qwen-local", "model": QWEN, "status": "admitted", "expires": None}]}))
    return path


@pytest.fixture
def harness(tmp_path: Path, upstream: ScriptedEndpoint, admission: Path) -> Harness:
    """Fully configured for the case-qwen profile with the test Case in `good` mode."""
    env = {k: v for k, v in os.environ.items()
           if not harness_setting(k) and k not in HOSTED_VARS}
    env.update({
        "CTO_HARNESS_CASE_LOCAL_BASE_URL": upstream.base_url,
        "CTO_HARNESS_CASE_BIN": str(CASE),
        "CTO_HARNESS_CASE_ARGS": "--mode good --task-file {task_file} --workspace {workspace}"
                                 " --model {model}",
        "CTO_HARNESS_CASE_MODEL_ADMISSION_FILE": str(admission),
        "CTO_HARNESS_RUNS_ROOT": str(tmp_path / "runs"),
        KEY_FILE_VAR: os.environ[KEY_FILE_VAR],
        "PYTHONPATH": str(ROOT),
        # Planted hosted-provider keys: the harness must never hand them to the Case.
        "ANTHROPIC_API_KEY": "sk-ant-" + secrets.token_hex(12),
        "ANTHROPIC_BASE_URL": "https://api.anthropic.example/v1",
    })
    return Harness(env=env, runs_root=tmp_path / "runs")


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Callable[..., None]:
    """Set the harness's variables (and only those) for `resolve()`."""
    for name in list(os.environ):
        if harness_setting(name):
            monkeypatch.delenv(name)

    def setenv(**values: str) -> None:
        for name, value in values.items():
            monkeypatch.setenv(f"CTO_HARNESS_{name.upper()}", value)

    return setenv


@pytest.fixture
def case_bin(tmp_path: Path) -> Path:
    """A Case in a folder of its own that other accounts may enter: as root the sandbox
    runs as an unused uid, which pytest's 0700 tmp_path keeps out (readiness says so)."""
    path = tmp_path / "bin" / "case"
    path.parent.mkdir(mode=0o755)
    path.parent.chmod(0o755)
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(0o755)
    return path
