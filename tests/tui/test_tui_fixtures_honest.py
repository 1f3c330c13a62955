"""The dashboard's fixture runs against runs the real harness wrote: every trace event the
fixtures write carries the fields the runner writes for it, so a screen tested on fixtures
shows what it will show on a real run (a config_resolved without endpoint_source once made
Summary say "supplied through None")."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

from tests.support.harness import ROOT
from tests.support.signing import harness_setting
from tests.support.tui_fixtures import make_runs_root

LEFT_OUT_BY_FIXTURES = {"prev"}
"""Fields every line has; the chain is checked by validate, not compared here."""


def events_by_name(root: Path) -> dict[str, set[frozenset[str]]]:
    shapes: dict[str, set[frozenset[str]]] = defaultdict(set)
    for trace in root.glob("*/trace.jsonl"):
        for line in trace.read_text().splitlines():
            event = json.loads(line)
            shapes[event["event"]].add(frozenset(set(event) - LEFT_OUT_BY_FIXTURES))
    return shapes


def real_runs(root: Path) -> None:
    """A demo run (passed) and a run with nothing configured (blocked), as users make them."""
    env = {k: v for k, v in os.environ.items() if not harness_setting(k)}
    env.update(PYTHONPATH=str(ROOT), CTO_HARNESS_RUNS_ROOT=str(root))
    for args in (["--demo"], []):
        proc = subprocess.run([sys.executable, "-m", "core.cli", "run", *args, "--json"],
                              env=env, cwd=root.parent, capture_output=True, text=True,
                              timeout=180)
        assert proc.returncode in (0, 3), proc.stderr


def test_fixture_events_carry_the_fields_the_runner_writes(tmp_path: Path) -> None:
    real_root = tmp_path / "real"
    real_runs(real_root)
    real = events_by_name(real_root)
    make_runs_root(tmp_path / "fixtures")
    fixtures = events_by_name(tmp_path / "fixtures")
    compared = sorted(set(real) & set(fixtures))
    assert {"config_resolved", "readiness_checked", "admission_checked", "run_blocked",
            "case_process_started", "case_process_exited", "checks_completed",
            "baseline_completed", "guard_verdict", "run_finished"} <= set(compared)
    mismatches = {}
    for name in compared:
        real_fields = set().union(*real[name])
        for shape in fixtures[name]:
            if shape != real_fields and shape not in real[name]:
                mismatches[name] = {"fixture lacks": sorted(real_fields - shape),
                                    "fixture invents": sorted(shape - real_fields)}
    assert mismatches == {}, json.dumps(mismatches, indent=1)
