"""The layering is enforced, not hoped for: import-linter's contracts (core never imports
the dashboard or Textual; tui sits above core; core's packages in their layers; the dashboard
never runs a Case in its own process), ruff and mypy, run as the tools themselves (CI runs
only pytest, so these are how CI runs them)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.harness import ROOT

BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    path = BIN / name
    if not path.exists():
        found = shutil.which(name)
        if found is None:
            pytest.fail(f"{name} is not installed: install the test extra "
                        "(pip install -e '.[test]')")
        return found
    return str(path)


def test_import_contracts_hold() -> None:
    proc = subprocess.run([tool("lint-imports")], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "4 kept, 0 broken" in proc.stdout


def test_ruff_is_clean() -> None:
    proc = subprocess.run([tool("ruff"), "check", "--no-cache", "core", "tui", "tests", "bench"],
                          cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_types_check() -> None:
    """mypy over core/ and tui/ as pyproject.toml's [tool.mypy] says (an unused
    `# type: ignore` fails too)."""
    proc = subprocess.run([tool("mypy")], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("Success: no issues found"), proc.stdout
