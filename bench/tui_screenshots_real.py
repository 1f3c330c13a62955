"""Export every screenshot the README shows (assets/*.svg) from runs and jobs the real harness
makes — never from hand-made fixtures (issue 21: a Baseline tab drawn from fixtures showed
check rows no real run ever had).

    uv run python bench/tui_screenshots_real.py

Makes, in a temporary runs root signed with a temporary key (nothing of the account's):
tests/support/real_runs.py's set — the test Case against the scripted endpoint (passed,
failed, tripped, blocked, cancelled, killed, a tool loop), a demo job, a naive Case's job and
a job killed mid-trial — then two demo runs of r1-string-slugify (`cto-harness run --demo`,
as the quick start). Two to three minutes. Each screen at 140x40 (Live also at 80x24), as
a user sees it; times, ids and durations are the real ones.
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

from core.evidence.keys import KEY_FILE_VAR  # noqa: E402
from core.settings import resolve  # noqa: E402
from tests.support.harness import SEED  # noqa: E402
from tests.support.real_runs import make_real_runs  # noqa: E402
from tests.support.signing import write_key  # noqa: E402
from tui.app import Dashboard  # noqa: E402
from tui.screens.compare_jobs import CompareJobsScreen  # noqa: E402
from tui.screens.compare_runs import CompareRunsScreen  # noqa: E402
from tui.screens.detail import RunDetailScreen  # noqa: E402
from tui.widgets.case_log import CaseLog  # noqa: E402
from tui.widgets.changes import ChangesView  # noqa: E402
from tui.widgets.job_views import JobsTable  # noqa: E402
from tui.widgets.runs_table import RunsTable  # noqa: E402

ASSETS = ROOT / "assets"
SIZE = (140, 40)
TASK = "r1-string-slugify"


def demo_run(env: dict[str, str]) -> Path:
    out = subprocess.run([sys.executable, "-m", "core.cli", "run", "--demo", "--task", TASK,
                          "--json"], env=env, cwd=ROOT, capture_output=True, text=True,
                         check=False, timeout=600)
    return Path(json.loads(out.stdout)["run_dir"])


async def until(pilot: Pilot, ready: Callable[[], object]) -> None:
    deadline = time.monotonic() + 30
    while not ready() and time.monotonic() < deadline:
        await pilot.pause(0.05)
    if not ready():
        raise SystemExit(f"a screen never got ready: {ready}")


async def shoot(app: Dashboard, name: str, steps: Callable[[Pilot], object],
                size: tuple[int, int] = SIZE) -> None:
    async with app.run_test(size=size) as pilot:
        await steps(pilot)  # type: ignore[misc]
        await pilot.pause(0.3)
        print(app.save_screenshot(filename=f"{name}.svg", path=str(ASSETS)))


async def main() -> None:
    for name in [n for n in os.environ if n.startswith("CTO_HARNESS_")]:
        del os.environ[name]
    base = Path(tempfile.mkdtemp(prefix="cto-harness-shots-"))
    os.environ[KEY_FILE_VAR] = str(write_key(base / "key" / "signing-key"))
    made = make_real_runs(base)  # under base/runs
    root = base / "runs"
    env = {**os.environ, "CTO_HARNESS_RUNS_ROOT": str(root), "PYTHONPATH": str(ROOT)}
    demos = [demo_run(env) for _ in range(2)]  # the newest, as after the quick start
    os.chdir(base)
    ASSETS.mkdir(exist_ok=True)

    def app(run: Path | None = None, sot: Path | None = None) -> Dashboard:
        return Dashboard(Path("runs"), run_id=run.name if run else None,
                         resolved=resolve(), sot=sot)

    async def live(pilot: Pilot) -> None:
        await until(pilot, lambda: pilot.app.screen.view.report is not None)  # type: ignore[attr-defined]
        await until(pilot, lambda: pilot.app.screen.query_one(CaseLog).lines)

    async def before(pilot: Pilot) -> None:
        await until(pilot, lambda: pilot.app.readiness[0] is not None)  # type: ignore[attr-defined]

    async def runs_screen(pilot: Pilot) -> None:
        await pilot.press("2")
        count = sum(1 for p in root.iterdir() if p.name != "jobs")
        await until(pilot, lambda: pilot.app.screen.query_one(RunsTable).row_count == count)

    async def jobs_screen(pilot: Pilot) -> None:
        await pilot.press("4")
        await until(pilot, lambda: pilot.app.screen.query_one(JobsTable).row_count == 3)

    def detail(run: Path, tab: str) -> Callable[[Pilot], object]:
        async def steps(pilot: Pilot) -> None:
            await pilot.app.push_screen(RunDetailScreen(run.resolve()))
            screen = pilot.app.screen
            await until(pilot, lambda: screen.record.validation is not None)  # type: ignore[attr-defined]
            screen.query_one(TabbedContent).active = tab
            if tab == "changes":
                await until(pilot, lambda: screen.query_one(ChangesView).diff is not None)
            if tab == "conversation":
                await pilot.pause(0.5)
                await pilot.press("t", "z")
        return steps

    async def help_screen(pilot: Pilot) -> None:
        await live(pilot)
        await pilot.press("question_mark")

    async def compare_runs(pilot: Pilot) -> None:
        await pilot.app.push_screen(CompareRunsScreen(demos[0], made["failed"]))
        await until(pilot, lambda: getattr(pilot.app.screen, "sides", None) is not None)

    async def compare_jobs(pilot: Pilot) -> None:
        await pilot.app.push_screen(CompareJobsScreen(made["job-a"], made["job-b"]))
        await until(pilot, lambda: getattr(pilot.app.screen, "result", None) is not None)

    async def work_items(pilot: Pilot) -> None:
        await pilot.press("3")
        await until(pilot, lambda: getattr(pilot.app.screen, "report", None) is not None)

    (base / "empty").mkdir()
    await shoot(Dashboard(Path("empty"), resolved=resolve()), "tui-live-readiness", before)
    await shoot(app(demos[0]), "tui-live-passed", live)
    await shoot(app(demos[0]), "tui-live-80x24", live, size=(80, 24))
    await shoot(app(made["tripped"]), "tui-live-tripped", live)
    await shoot(app(demos[0]), "tui-runs", runs_screen)
    await shoot(app(demos[0]), "tui-jobs", jobs_screen)
    await shoot(app(demos[0]), "tui-detail-summary", detail(demos[0], "summary"))
    await shoot(app(demos[0]), "tui-detail-trace", detail(demos[0], "trace"))
    await shoot(app(made["tripped"]), "tui-detail-relay", detail(made["tripped"], "relay"))
    await shoot(app(demos[0]), "tui-detail-baseline", detail(demos[0], "baseline"))
    await shoot(app(demos[0]), "tui-detail-changes", detail(demos[0], "changes"))
    await shoot(app(made["tools"]), "tui-detail-conversation",
                detail(made["tools"], "conversation"))
    await shoot(app(demos[0]), "tui-compare-runs", compare_runs)
    await shoot(app(demos[0]), "tui-compare-jobs", compare_jobs)
    await shoot(app(demos[0]), "tui-help", help_screen)
    Path("PLAN.md").write_bytes(SEED.read_bytes())
    await shoot(app(sot=Path("PLAN.md")), "tui-work-items", work_items)


if __name__ == "__main__":
    asyncio.run(main())
