"""Fixtures of the dashboard's tests. A module that wants a newcomer's empty environment says
so with `pytestmark = pytest.mark.usefixtures("bare_environment")`.

`real_runs` is what the snapshots draw: runs and jobs `cto-harness` made in this session
(tests/support/real_runs.py), once, then steadied (tests/support/steady.py) so the same
screen comes out on every session and machine."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.support.real_runs import make_real_runs
from tests.support.signing import harness_setting
from tests.support.steady import steady_copy
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


MALFORMED = "20260601T025900Z-r1-string-slugify-1099"
"""A run folder whose manifest is not JSON: no real run is written so; a hand-made one."""


@pytest.fixture(scope="session")
def real_runs_made(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Runs and jobs the real harness made, steadied, under `<tmp>/steady/runs`, with a
    malformed run folder beside them (key `malformed`) and the demo job's first trial as
    `demo`; made once a session (a minute or two), read by every snapshot."""
    made = make_real_runs(tmp_path_factory.mktemp("real-runs"))
    dest = tmp_path_factory.mktemp("steady") / "runs"
    ids = steady_copy(next(iter(made.values())).parent, dest)
    out = {name: (dest / "jobs" / ids[path.name] if name.startswith("job-")
                  else dest / ids[path.name]) for name, path in made.items()}
    job = json.loads((out["job-a"] / "job.json").read_text())
    out["demo"] = dest / job["trials"][0]["run_id"]  # the demo job's first trial
    malformed = dest / MALFORMED
    (malformed / "backend").mkdir(parents=True)
    (malformed / "manifest.json").write_text("{not json at all")
    out["malformed"] = malformed
    return out


@pytest.fixture
def real_runs(real_runs_made: dict[str, Path], monkeypatch: pytest.MonkeyPatch
              ) -> dict[str, Path]:
    """`real_runs_made`, with the working directory their root's parent (the screens say
    `runs`, no temporary path) and nothing of the harness configured but the suite's key;
    the values are relative paths (`runs/<id>`)."""
    for name in list(os.environ):
        if harness_setting(name):
            monkeypatch.delenv(name)
    root = real_runs_made["passed"].parent
    monkeypatch.chdir(root.parent)
    return {name: path.relative_to(root.parent) for name, path in real_runs_made.items()}
