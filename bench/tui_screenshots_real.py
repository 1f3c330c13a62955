"""Export SVG screenshots of the Changes tab and the two compare screens to assets/, for the
README, drawn from runs and jobs the real harness makes (demo endpoint), not fixtures.

    uv run python bench/tui_screenshots_real.py

Makes, in a temporary runs root: two demo runs of r1-string-slugify and two demo jobs over
three tasks (about a minute). Nothing configured but the runs root.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from textual.pilot import Pilot  # noqa: E402
from textual.widgets import TabbedContent  # noqa: E402

from core.settings import resolve  # noqa: E402
from tui.app import Dashboard  # noqa: E402
from tui.screens.compare_jobs import CompareJobsScreen  # noqa: E402
from tui.screens.compare_runs import CompareRunsScreen  # noqa: E402
from tui.screens.detail import RunDetailScreen  # noqa: E402
from tui.widgets.changes import ChangesView  # noqa: E402

ASSETS = ROOT / "assets"
SIZE = (140, 40)
TASKS = ("r1-string-slugify", "r2-fix-roman-numerals", "r4-cli-wordcount")


def harness(env: dict[str, str], *args: str) -> dict:
    out = subprocess.run([sys.executable, "-m", "core.cli", *args, "--json"], env=env,
                         cwd=ROOT, capture_output=True, text=True, check=False, timeout=600)
    return json.loads(out.stdout)


async def until(pilot: Pilot, ready: Callable[[], object]) -> None:
    deadline = time.monotonic() + 20
    while not ready() and time.monotonic() < deadline:
        await pilot.pause(0.05)


async def shoot(name: str, steps: Callable[[Pilot], object]) -> None:
    app = Dashboard(Path("harness-runs"), resolved=resolve())  # as the README's commands say
    async with app.run_test(size=SIZE) as pilot:
        await steps(pilot)  # type: ignore[misc]
        await pilot.pause(0.3)
        print(app.save_screenshot(filename=f"{name}.svg", path=str(ASSETS)))


async def main() -> None:
    for name in [n for n in os.environ if n.startswith("CTO_HARNESS_")]:
        del os.environ[name]
    root = Path(tempfile.mkdtemp(prefix="cto-harness-shots-")) / "harness-runs"
    env = {**os.environ, "CTO_HARNESS_RUNS_ROOT": str(root), "PYTHONPATH": str(ROOT)}
    runs = [Path(harness(env, "run", "--demo", "--task", TASKS[0])["run_dir"])
            for _ in range(2)]
    task_args = [a for t in TASKS for a in ("--task", t)]
    jobs = [root / "jobs" / harness(env, "job", "--demo", "--name", name, *task_args)["job_id"]
            for name in ("a", "b")]

    async def changes(pilot: Pilot) -> None:
        await pilot.app.push_screen(RunDetailScreen(runs[0]))
        screen = pilot.app.screen
        screen.query_one(TabbedContent).active = "changes"
        await until(pilot, lambda: screen.query_one(ChangesView).diff is not None)

    async def compare_runs(pilot: Pilot) -> None:
        await pilot.app.push_screen(CompareRunsScreen(*runs))
        await until(pilot, lambda: getattr(pilot.app.screen, "sides", None) is not None)

    async def compare_jobs(pilot: Pilot) -> None:
        await pilot.app.push_screen(CompareJobsScreen(*jobs))
        await until(pilot, lambda: getattr(pilot.app.screen, "result", None) is not None)

    os.chdir(root.parent)
    await shoot("tui-detail-changes", changes)
    await shoot("tui-compare-runs", compare_runs)
    await shoot("tui-compare-jobs", compare_jobs)


if __name__ == "__main__":
    asyncio.run(main())
