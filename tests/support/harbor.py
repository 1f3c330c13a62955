"""Harbor's own pydantic models (`harbor.models.trajectories.Trajectory`), pinned, as the
judge of our ATIF export: installed by tests/agents/install.py into its own venv (harbor
wants Python >= 3.12; the project runs on 3.11), and called as a process."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.agents.install import HARBOR, install, unavailable
from tests.support.harness import missing_machinery

VALIDATE = """
import json, sys
from harbor.models.trajectories import Trajectory
for path in sys.argv[1:]:
    Trajectory.model_validate(json.load(open(path)))
    print("valid", path)
"""


def harbor_python() -> Path:
    """The Python of harbor's venv, installing it when missing (a second call is quick);
    without it the test fails in CI and skips elsewhere, with the installer's reason."""
    if unavailable(HARBOR) is not None:
        install(HARBOR)
    problem = unavailable(HARBOR)
    if problem is not None:
        missing_machinery(f"harbor is not available: {problem}")
    return HARBOR.bin


def assert_valid_atif(*paths: Path) -> None:
    proc = subprocess.run([str(harbor_python()), "-c", VALIDATE, *map(str, paths)],
                          capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        pytest.fail(f"harbor's Trajectory refused the export: {proc.stderr[-3000:]}",
                    pytrace=False)
    assert proc.stdout.count("valid ") == len(paths)
