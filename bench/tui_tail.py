"""The dashboard following a Case log that grows at 10,000 lines/s (issue 4's tail bench).

    uv run python bench/tui_tail.py [--seconds 30] [--rate 10000] [--burst 1000000]

A writer process appends lines stamped with their write time; the dashboard runs headless
and every 10 ms the newest line on the Live log is read back: now minus its stamp is the
write-to-display lag. Meanwhile a key (switch screen and back) is pressed every 0.5 s and
timed. Then a burst brings the log past `--burst` lines and the resident memory is read
before and after. Baseline, in the same run: `tail -f` of the same file, lag per line.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from textual import events  # noqa: E402

from core.settings import resolve  # noqa: E402
from tests.tui_fixtures import make_running  # noqa: E402
from tui.app import Dashboard  # noqa: E402
from tui.widgets.case_log import CaseLog  # noqa: E402

WRITER = """
import os, sys, time
path, rate, seconds, n, stop_at = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), \\
    int(sys.argv[4]), int(sys.argv[5])
fd = os.open(path, os.O_WRONLY | os.O_APPEND)
start, pad, t0 = n, "x" * 40, time.monotonic()
while (elapsed := time.monotonic() - t0) < seconds and n < stop_at:
    due = min(stop_at, start + int(elapsed * rate) if rate else n + 5000)
    if due > n:
        now = time.time()
        os.write(fd, "".join(f"{i} {now:.6f} case output {pad}\\n" for i in range(n, due)).encode())
        n = due
    else:
        time.sleep(0.0005)
print(n)
"""


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


def stamp_of(line: str) -> float | None:
    parts = line.split(" ", 2)
    try:
        return float(parts[1])
    except (IndexError, ValueError):
        return None


def follow_with_tail(path: Path, lags: list[float], stop: threading.Event) -> subprocess.Popen:
    proc = subprocess.Popen(["tail", "-n0", "-f", str(path)], stdout=subprocess.PIPE, text=True,
                            bufsize=1)

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if stop.is_set():
                break
            if (ts := stamp_of(line)) is not None:
                lags.append(time.time() - ts)

    threading.Thread(target=read, daemon=True).start()
    return proc


async def bench(seconds: float, rate: int, burst: int) -> None:
    for name in [n for n in os.environ if n.startswith("CTO_HARNESS_")]:
        del os.environ[name]
    root = Path(tempfile.mkdtemp(prefix="cto-harness-tail-")) / "runs"
    run = make_running(root)
    log_path = run.paths.case_log
    app = Dashboard(root, run_id=run.paths.root.name, resolved=resolve())
    lags: list[float] = []
    keys: list[float] = []
    tail_lags: list[float] = []
    stop = threading.Event()
    async with app.run_test(size=(140, 40)) as pilot:
        log = app.screen.query_one(CaseLog)
        await pilot.pause(0.5)
        tail = follow_with_tail(log_path, tail_lags, stop)
        await asyncio.sleep(0.3)
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(log_path), str(rate),
                                   str(seconds), "0", str(10**12)],
                                  stdout=subprocess.PIPE, text=True)
        next_key = time.monotonic() + 0.5
        while writer.poll() is None:
            if log.lines and (ts := stamp_of(log.lines[-1])) is not None:
                lags.append(time.time() - ts)
            if time.monotonic() >= next_key:
                # the key as the terminal driver delivers it (Pilot.press also waits for
                # the app to go idle, which a log at 10,000 lines/s never lets it)
                t0 = time.perf_counter()
                app.post_message(events.Key("2", "2"))
                while app.current_mode != "runs" or not app.screen.is_mounted:
                    await asyncio.sleep(0.001)
                keys.append(time.perf_counter() - t0)
                app.post_message(events.Key("1", "1"))
                next_key = time.monotonic() + 0.5
            await asyncio.sleep(0.01)
        written = int(writer.communicate()[0])
        stop.set()  # the baseline's figures are for the steady rate only
        await pilot.pause(0.5)
        rss_steady = rss_mib()
        # the burst: as fast as the writer can go, to `burst` lines in all
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(log_path), "0", "600",
                                   str(written), str(burst)], stdout=subprocess.PIPE, text=True)
        while writer.poll() is None:
            await asyncio.sleep(0.05)
        total = int(writer.communicate()[0])
        last = f"{total - 1} "
        t_catch = time.perf_counter()
        while not (log.lines and log.lines[-1].startswith(last)):
            await asyncio.sleep(0.05)
        catch_up = time.perf_counter() - t_catch
        rss_after = rss_mib()
        held = len(log.lines)
    stop.set()
    tail.terminate()
    print(f"lines written at {rate:,}/s for {seconds:g} s: {written:,}")
    print(f"dashboard lag write->display: p50 {pct(lags, .5) * 1000:.1f} ms, "
          f"p95 {pct(lags, .95) * 1000:.1f} ms, max {max(lags) * 1000:.1f} ms "
          f"({len(lags):,} samples)")
    print(f"tail -f lag (baseline):       p50 {pct(tail_lags, .5) * 1000:.1f} ms, "
          f"p95 {pct(tail_lags, .95) * 1000:.1f} ms ({len(tail_lags):,} lines)")
    print(f"key press (switch screen) during it: p50 {pct(keys, .5) * 1000:.1f} ms, "
          f"p95 {pct(keys, .95) * 1000:.1f} ms, max {max(keys) * 1000:.1f} ms ({len(keys)})")
    print(f"after a burst to {total:,} lines: caught up {catch_up:.1f} s after the writer "
          f"stopped; RSS {rss_steady:.0f} MiB at {written:,} lines -> {rss_after:.0f} MiB at "
          f"{total:,}; lines held on screen {held:,} (ring {app.log_ring:,})")
    print(f"median-lag ratio dashboard / tail -f: "
          f"{statistics.median(lags) / statistics.median(tail_lags):.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--rate", type=int, default=10_000)
    parser.add_argument("--burst", type=int, default=1_000_000)
    args = parser.parse_args()
    asyncio.run(bench(args.seconds, args.rate, args.burst))


if __name__ == "__main__":
    main()
