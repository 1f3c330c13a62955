"""Every bundled task discriminates: the workspace as given and the fake engine's naive
solution fail its hidden checks, a correct solution (kept here, in the test tree, never in
the task the Case sees) passes them all, and the demo endpoint's scripted answer, written
by the reference Case's own file-block writer, passes or fails as the demo intends.

The checks run through the harness's own `run_checks`, as in a run."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest

from core.evidence.models import CheckCounts
from core.run.checks import run_checks
from core.run.task import BUNDLED_TASKS_DIR, Task, available, load_task
from core.standins.demo import demo_responder
from core.standins.refcase import parse_file_blocks, task_prompt, workspace_files, write_blocks
from tests.support.harness import ROOT, Harness

SOLUTIONS = ROOT / "tests" / "task_solutions"
TASKS = available()
DEMO_ANSWERS_RIGHT = {
    "r1-string-slugify", "r2-fix-roman-numerals", "r3-docstring-median",
    "r6-refactor-config-parser", "r7-class-lru-cache", "r8-fix-merge-intervals",
}
"""The demo answers the rest wrong: r4 (ties not in alphabetical order), r5 (codes not
case-insensitive), r9 (pre-release identifiers compared as text)."""


def checks(task: Task, workspace: Path, out: Path) -> CheckCounts:
    return asyncio.run(run_checks(task, workspace, out, lambda s: s, asyncio.Event()))


def all_passed(counts: CheckCounts) -> bool:
    return counts.ran and counts.total > 0 and counts.passed == counts.total


def fresh(task: Task, tmp_path: Path) -> Path:
    workspace = tmp_path / "workspace"
    task.fresh_workspace(workspace)
    return workspace


def test_at_least_nine_bundled_tasks_each_with_a_solution_here() -> None:
    assert len(TASKS) >= 9
    assert sorted(p.name for p in SOLUTIONS.iterdir()) == TASKS
    assert set(TASKS) > DEMO_ANSWERS_RIGHT


@pytest.mark.parametrize("task_id", TASKS)
def test_the_workspace_as_given_fails(task_id: str, tmp_path: Path) -> None:
    task = load_task(task_id)
    assert not all_passed(checks(task, fresh(task, tmp_path), tmp_path / "checks"))


@pytest.mark.parametrize("task_id", TASKS)
def test_the_naive_solution_fails_and_a_correct_one_passes(task_id: str,
                                                           tmp_path: Path) -> None:
    task = load_task(task_id)
    assert task.title and task.naive_dir.is_dir(), "every bundled task has a naive solution"
    naive = fresh(task, tmp_path / "naive")
    shutil.copytree(task.naive_dir, naive, dirs_exist_ok=True)
    counts = checks(task, naive, tmp_path / "naive-checks")
    assert counts.total > 0 and not all_passed(counts), counts
    right = fresh(task, tmp_path / "right")
    shutil.copytree(SOLUTIONS / task_id, right, dirs_exist_ok=True)
    counts = checks(task, right, tmp_path / "right-checks")
    assert all_passed(counts), (counts, (tmp_path / "right-checks" / "checks.log").read_text())


@pytest.mark.parametrize("task_id", TASKS)
def test_the_demo_answer_through_the_reference_case(task_id: str, tmp_path: Path) -> None:
    task = load_task(task_id)
    workspace = fresh(task, tmp_path)
    prompt = task_prompt(task.prompt_file.read_text(), workspace_files(workspace))
    answer = demo_responder([{"role": "user", "content": prompt}])
    assert answer.startswith("[demo endpoint]")
    written = write_blocks(workspace, parse_file_blocks(answer), None)
    assert written, "the reference Case finds a file to write in the answer"
    counts = checks(task, workspace, tmp_path / "checks")
    assert all_passed(counts) == (task_id in DEMO_ANSWERS_RIGHT), counts


def test_task_json_of_every_bundled_task_is_complete() -> None:
    for task_id in TASKS:
        config = json.loads((BUNDLED_TASKS_DIR / task_id / "task.json").read_text())
        assert config["id"] == task_id and 0 < config["check_timeout_s"] <= 120


def test_a_demo_job_shows_a_mix(harness: Harness) -> None:
    """Two tasks through `job --demo`: the demo's right answer passes, its wrong one fails,
    and the baseline discriminates on both."""
    code, out = harness.run_json("job", "--demo", "--task", "r8-fix-merge-intervals",
                                 "--task", "r9-docstring-semver", "--concurrency", "2",
                                 timeout=600)
    assert code == 0, out
    by_task = {t["task"]: t for t in out["summary"]["tasks"]}
    assert by_task["r8-fix-merge-intervals"]["passes"] == 1
    assert by_task["r9-docstring-semver"]["passes"] == 0
    assert {t["baseline"] for t in by_task.values()} == {"discriminating"}
    assert out["summary"]["pass_at_1"] == 0.5
