"""Export an SVG screenshot of each dashboard screen to assets/, for the README.

    uv run python bench/tui_screenshots.py

Runs the app headless over the deterministic fixture runs of the tests (nothing configured,
so the pre-run screen shows what a newcomer sees).
"""

from __future__ import annotations

import asyncio
import os
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
from tests.support.tui_fixtures import make_runs_root  # noqa: E402
from tui.app import Dashboard  # noqa: E402
from tui.screens.detail import RunDetailScreen  # noqa: E402
from tui.widgets.case_log import CaseLog  # noqa: E402
from tui.widgets.runs_table import RunsTable  # noqa: E402

ASSETS = ROOT / "assets"
SIZE = (140, 40)


async def until(pilot: Pilot, ready: Callable[[], object]) -> None:
    deadline = time.monotonic() + 10
    while not ready() and time.monotonic() < deadline:
        await pilot.pause(0.05)


async def shoot(app: Dashboard, name: str, steps: Callable[[Pilot], object],
                size: tuple[int, int] = SIZE) -> None:
    async with app.run_test(size=size) as pilot:
        await steps(pilot)  # type: ignore[misc]
        await pilot.pause(0.3)
        path = app.save_screenshot(filename=f"{name}.svg", path=str(ASSETS))
        print(path)


async def main() -> None:
    for name in [n for n in os.environ if n.startswith("CTO_HARNESS_")]:
        del os.environ[name]
    ASSETS.mkdir(exist_ok=True)
    os.chdir(tempfile.mkdtemp(prefix="cto-harness-shots-"))
    runs = make_runs_root(Path("harness-runs"))

    def app(run: str | None = None, root: str = "harness-runs") -> Dashboard:
        return Dashboard(Path(root), run_id=runs[run].name if run else None, resolved=resolve())

    async def live(pilot: Pilot) -> None:
        await until(pilot, lambda: pilot.app.screen.view.report is not None)  # type: ignore[attr-defined]
        await until(pilot, lambda: pilot.app.screen.query_one(CaseLog).lines)

    async def before(pilot: Pilot) -> None:
        await until(pilot, lambda: pilot.app.readiness[0] is not None)  # type: ignore[attr-defined]

    async def runs_screen(pilot: Pilot) -> None:
        await pilot.press("2")
        await until(pilot, lambda: pilot.app.screen.query_one(RunsTable).row_count == 7)

    def detail(run: str, tab: str) -> Callable[[Pilot], object]:
        async def steps(pilot: Pilot) -> None:
            await pilot.app.push_screen(RunDetailScreen(runs[run].resolve()))
            screen = pilot.app.screen
            await until(pilot, lambda: screen.record.validation is not None)  # type: ignore[attr-defined]
            screen.query_one(TabbedContent).active = tab
        return steps

    async def help_screen(pilot: Pilot) -> None:
        await live(pilot)
        await pilot.press("question_mark")

    await shoot(app(root="empty-runs-root"), "tui-live-readiness", before)
    await shoot(app("passed"), "tui-live-passed", live)
    await shoot(app("tripped"), "tui-live-tripped", live)
    await shoot(app("passed"), "tui-runs", runs_screen)
    await shoot(app("passed"), "tui-detail-summary", detail("passed", "summary"))
    await shoot(app("passed"), "tui-detail-trace", detail("passed", "trace"))
    await shoot(app("tripped"), "tui-detail-relay", detail("tripped", "relay"))
    await shoot(app("passed"), "tui-detail-baseline", detail("passed", "baseline"))
    await shoot(app("passed"), "tui-help", help_screen)
    await shoot(app("passed"), "tui-live-80x24", live, size=(80, 24))
    seed = ROOT / "tests" / "data" / "seed-sot-000_83b213521af4b263.txt"
    Path("PLAN.md").write_bytes(seed.read_bytes())
    work = Dashboard(Path("harness-runs"), resolved=resolve(), sot=Path("PLAN.md"))

    async def work_items(pilot: Pilot) -> None:
        await pilot.press("3")
        await until(pilot, lambda: getattr(pilot.app.screen, "report", None) is not None)

    await shoot(work, "tui-work-items", work_items)


if __name__ == "__main__":
    asyncio.run(main())
