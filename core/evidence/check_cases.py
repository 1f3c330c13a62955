"""Each hidden check's outcome, real Case beside fake baseline, from the JUnit XML files the
checks wrote (`CHECK_RESULTS` under `checks/` and `baseline/checks/`): which checks tell a real
solution from the fake one, not only how many."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from core.evidence.rundir import CHECK_RESULTS, RunPaths

Outcome = str
"""passed | failed | error | skipped"""
MAX_CASES = 500
"""Rows shown at most: the file was written by pytest inside the run, not by us."""


def check_outcomes(junit: Path) -> dict[str, Outcome]:
    """{check name: outcome}; empty when the file is missing or not JUnit XML."""
    try:
        root = ET.parse(junit).getroot()
    except (OSError, ET.ParseError):
        return {}
    found: dict[str, Outcome] = {}
    for case in root.iter("testcase"):
        if len(found) >= MAX_CASES:
            break
        name = case.get("name") or "?"
        kinds = {child.tag for child in case}
        found[name] = ("failed" if "failure" in kinds else "error" if "error" in kinds
                       else "skipped" if "skipped" in kinds else "passed")
    return found


def check_pairs(run_dir: Path) -> list[tuple[str, Outcome | None, Outcome | None]]:
    """(check, real outcome, fake outcome) for every check either side ran; None where a
    side did not run it."""
    paths = RunPaths(run_dir)
    real = check_outcomes(paths.checks / CHECK_RESULTS)
    fake = check_outcomes(paths.baseline / "checks" / CHECK_RESULTS)
    return [(name, real.get(name), fake.get(name)) for name in dict.fromkeys([*real, *fake])]
