"""Benchmark: the Conversation tab on a huge run, beside the Log tab on the same size.

Writes a run as bench/transcript.py does (`--turns` exchanges, default 5,000, each adding a
tool result of `--kb` KiB: about 300 MB), plus a `backend/case.log` of the same size; then,
each in a fresh process (a dashboard opening the run), headless at 160x48:

- Run detail opened as a user opens it: the dashboard started, the Runs screen shown and
  read for a second, then Enter → the screen drawn (the same for any run and any tab:
  Textual composing the screen in a process that has not drawn it before);
- the Conversation tab, asked for a second later (as a click on it): its first frame (its
  first rows and the first step drawn); a jump to the middle step at once (the steps read
  up to it, the step drawn); how long the tab then takes to read the rest behind the
  screen, and the longest the event loop was held meanwhile (a key waits that long at
  worst); then jumps to the quarter, the middle, the last and the first step, all read;
- the Log tab on the same run (its first lines drawn): the same-run baseline;
- the reader alone, to the middle: eager (every tool result read, as the exports do) and
  lazy (results read when a step is shown, as the tab does);

with each process's peak RSS and the load average beside the figures (a shared machine).
Aims: the tab's first frame < 500 ms, a jump < 200 ms, RSS < 300 MB. (Until 2026-12 the
first frame was timed from Run detail pushed over the Live screen the instant the app
started, Live still reading the same run's first page: a path no user takes.)

    uv run python bench/conversation_tab.py [--turns 5000] [--kb 60] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.transcript import write_run  # noqa: E402

TAB = """
import asyncio, json, resource, sys, time
from pathlib import Path
from textual.widgets import TabbedContent
from core.settings import resolve
from tui.app import Dashboard
from tui.screens.detail import RunDetailScreen
from tui.widgets.conversation import ConversationView
from tui.widgets.file_view import FileView
from tui.widgets.runs_table import RunsTable
run, tab, middle = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])

async def until(pilot, ready):
    while not ready():
        await pilot.pause(0.005)

async def drawn(pilot):
    \"\"\"What is pending handled, then the screen painted (pause() with no delay would
    also wait for the process to go idle: for the conversation read behind the screen).\"\"\"
    await pilot.pause(0)

async def jump(pilot, view, row):
    start = time.perf_counter()
    while len(view.steps) <= row and await view._more(row + 50):
        pass
    view._go(row)
    await until(pilot, lambda: view.shown_row == row)
    await drawn(pilot)
    return (time.perf_counter() - start) * 1000

async def lag(stop, worst):
    \"\"\"How late the event loop runs a 10 ms tick: the longest the screen could not
    answer a key while the rest of the conversation was read behind it.\"\"\"
    while not stop.is_set():
        start = time.perf_counter()
        await asyncio.sleep(0.01)
        worst[0] = max(worst[0], (time.perf_counter() - start) * 1000 - 10)

async def opened(pilot, app):
    \"\"\"As a user opens a run: the Runs screen shown and read (a second to choose), then
    Enter. Returns Run detail, drawn, and the time it took from the key.\"\"\"
    await pilot.press("2")
    table = app.screen.query_one(RunsTable)
    await until(pilot, lambda: table.row_count > 0)
    await pilot.pause(1.0)
    start, cpu = time.perf_counter(), time.process_time()
    await pilot.press("enter")
    await until(pilot, lambda: isinstance(app.screen, RunDetailScreen))
    await drawn(pilot)
    took = {"mount_ms": (time.perf_counter() - start) * 1000,
            "mount_cpu_ms": (time.process_time() - cpu) * 1000}
    await pilot.pause(1.0)  # the user reads the summary, then asks for the tab
    return app.screen, took

async def main():
    app = Dashboard(run.parent, resolved=resolve())
    async with app.run_test(size=(160, 48)) as pilot:
        screen, out = await opened(pilot, app)
        start, cpu = time.perf_counter(), time.process_time()
        screen.query_one(TabbedContent).active = tab  # as a click on the tab, or its key
        if tab == "conversation":
            view = screen.query_one(ConversationView)
            await until(pilot, lambda: view.shown_row == 0)
            await drawn(pilot)
            out["own_ms"] = (time.perf_counter() - start) * 1000
            out["own_cpu_ms"] = (time.process_time() - cpu) * 1000
            stop, worst = asyncio.Event(), [0.0]
            ticker = asyncio.create_task(lag(stop, worst))
            out["middle_ms"] = await jump(pilot, view, middle)
            start = time.perf_counter()
            await until(pilot, lambda: view.transcript.complete)
            out["rest_ms"] = (time.perf_counter() - start) * 1000
            stop.set()
            await ticker
            out["stall_ms"] = worst[0]
            out["rows"] = view.table.row_count
            out["warm_ms"] = [await jump(pilot, view, row)
                              for row in (middle // 2, middle, out["rows"] - 1, 0)]
        else:
            log = screen.query_one("#log-view", FileView)
            await until(pilot, lambda: log.line_count > 0)
            await drawn(pilot)
            out["own_ms"] = (time.perf_counter() - start) * 1000
            out["own_cpu_ms"] = (time.process_time() - cpu) * 1000
    out["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(out))

asyncio.run(main())
"""

READER = """
import json, resource, sys, time
from pathlib import Path
from core.evidence.transcript import Transcript
run, middle, lazy = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "lazy"
start = time.perf_counter()
t = Transcript(run, lazy=lazy)
steps = t.steps(middle, 50)
for step in steps[:1]:
    t.fill(step)
print(json.dumps({"middle_ms": (time.perf_counter() - start) * 1000,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def probe(code: str, *args: object) -> dict:
    proc = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True,
                          text=True, cwd=ROOT)
    if proc.returncode:
        raise SystemExit(f"probe failed: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def loadavg() -> str:
    path = Path("/proc/loadavg")
    return " ".join(path.read_text().split()[:3]) if path.exists() else "?"


def write_log(path: Path, size: int) -> None:
    line = b"case: running step " + b"x" * 100 + b"\n"
    with path.open("wb") as fh:
        for _ in range(size // len(line)):
            fh.write(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--turns", type=int, default=5000)
    parser.add_argument("--kb", type=int, default=60)
    parser.add_argument("--context-kb", type=int, default=512)
    parser.add_argument("--keep", metavar="DIR", help="write the run there and keep it")
    args = parser.parse_args()
    tmp = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-conv-"))
    run = tmp / "runs" / "20260601T000000Z-r1-string-slugify-1"
    try:
        if not (run / "backend" / "exchanges" / "index.jsonl").exists():
            write_run(run, args.turns, args.kb, args.context_kb)
            write_log(run / "backend" / "case.log", args.turns * args.kb * 1024)
        size = sum(p.stat().st_size for p in (run / "backend" / "exchanges").rglob("*")
                   if p.is_file())
        print(f"{args.turns} exchanges, {size / 1e6:.0f} MB of exchanges; a case.log of "
              f"{(run / 'backend' / 'case.log').stat().st_size / 1e6:.0f} MB")
        middle = args.turns  # two steps a turn: the middle of the conversation
        load = loadavg()
        conv = probe(TAB, run, "conversation", middle)
        log = probe(TAB, run, "log", 0)
        print(f"  Run detail opened (Enter on Runs → drawn) {conv['mount_ms']:5.0f} ms "
              f"(CPU {conv['mount_cpu_ms']:.0f} ms): the same for any run, any tab")
        print(f"  Conversation tab  first frame {conv['own_ms']:7.0f} ms (asked → its first rows "
              f"and first step drawn; CPU {conv['own_cpu_ms']:.0f} ms)   peak RSS "
              f"{conv['rss_mb']:.0f} MB")
        print(f"    jump to step {middle:,} at once (reading to it) {conv['middle_ms']:6.0f} ms;"
              f" the rest read behind in {conv['rest_ms']:.0f} ms more, the screen held at "
              f"most {conv['stall_ms']:.0f} ms meanwhile ({conv['rows']:,} rows)")
        warm = conv["warm_ms"]
        print(f"    then jumps to step {middle // 2:,} / {middle:,} / the last / the first: "
              + " / ".join(f"{ms:.0f}" for ms in warm) + " ms")
        print(f"  Log tab (baseline) first frame {log['own_ms']:6.0f} ms (CPU "
              f"{log['own_cpu_ms']:.0f} ms)   peak RSS {log['rss_mb']:.0f} MB")
        for mode in ("eager", "lazy"):
            row = probe(READER, run, middle, mode)
            print(f"  reader, {mode:<5} to step {middle:,}: {row['middle_ms']:7.0f} ms   "
                  f"peak RSS {row['rss_mb']:.0f} MB")
        print(f"  ratio first frame Conversation/Log: {conv['own_ms'] / log['own_ms']:.2f}x"
              f"   load average {load} (before), "
              f"{loadavg()} (after)")
        print("  aims: first frame < 500 ms, a jump < 200 ms, RSS < 300 MB")
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
