"""Fixtures of the dashboard's tests. A module that wants a newcomer's empty environment says
so with `pytestmark = pytest.mark.usefixtures("bare_environment")`."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support.signing import harness_setting
from tests.support.tui_fixtures import make_runs_root


@pytest.fixture
def bare_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing configured, as on a newcomer's machine."""
    for name in list(os.environ):
        if harness_setting(name):
            monkeypatch.delenv(name)


@pytest.fixture
def runs(tmp_path: Path) -> dict[str, Path]:
    """The fixture runs (passed, tripped, blocked, ...) under an absolute runs root."""
    return make_runs_root(tmp_path / "runs")
