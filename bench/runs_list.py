"""Time until the Runs screen shows its first rows, for 100, 1,000 and 10,000 runs.

    uv run python bench/runs_list.py

Each runs root is made of copies of one finished fixture run (cached under the temp dir).
The first screenful is summarized at once and the rest in chunks, so the first figure
should not grow with the count; the last column is the time until every row is read.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from textual import events  # noqa: E402

from core.settings import resolve  # noqa: E402
from tests.support.tui_fixtures import make_runs_root  # noqa: E402
from tui.app import Dashboard  # noqa: E402
from tui.widgets.runs_table import RunsTable  # noqa: E402

COUNTS = (100, 1_000, 10_000)


def runs_root(count: int) -> Path:
    root = Path(tempfile.gettempdir()) / f"cto-harness-bench-runs-{count}"
    if root.is_dir() and len(os.listdir(root)) == count:
        return root
    shutil.rmtree(root, ignore_errors=True)
    seed = make_runs_root(Path(tempfile.mkdtemp()) / "seed")["passed"]
    root.mkdir()
    for i in range(count):
        day, rest = divmod(i, 86_400)
        hh, mm, ss = rest // 3600, rest // 60 % 60, rest % 60
        stamp = f"2026{6 + day // 28:02d}{1 + day % 28:02d}T{hh:02d}{mm:02d}{ss:02d}Z"
        name = f"{stamp}-r1-string-slugify-{i}"
        shutil.copytree(seed, root / name)
    return root


async def first_rows(root: Path) -> tuple[float, float]:
    started = time.perf_counter()
    app = Dashboard(root, resolved=resolve())
    async with app.run_test(size=(140, 40)):
        app.post_message(events.Key("2", "2"))  # as a terminal delivers it (no idle wait)
        while not app.screen.query(RunsTable):
            await asyncio.sleep(0.002)
        table = app.screen.query_one(RunsTable)
        while table.row_count == 0:
            await asyncio.sleep(0.002)
        first = time.perf_counter() - started
        total = len(app.run_dirs)
        while table.row_count < total or not total:
            await asyncio.sleep(0.01)
            total = len(app.run_dirs)
        return first, time.perf_counter() - started


def main() -> None:
    for name in [n for n in os.environ if n.startswith("CTO_HARNESS_")]:
        del os.environ[name]
    print(f"{'runs':>8}  {'first rows':>10}  {'all rows':>9}")
    for count in COUNTS:
        root = runs_root(count)
        first, every = asyncio.run(first_rows(root))
        print(f"{count:>8,}  {first * 1000:>8.0f} ms  {every:>7.2f} s")


if __name__ == "__main__":
    main()
