"""The dashboard following a Case log that grows at 10,000 lines/s (issue 4's tail bench).

    uv run python bench/tui_tail.py [--seconds 30] [--rate 10000]             # tmux, black-box
    uv run python bench/tui_tail.py --headless [--seconds 30] [--burst 1000000]

Black-box (the default, issue 21's figure): the installed `cto-harness-tui` in a tmux pane
at 160x48 follows a run whose log grows at `--rate` lines a second while its conversation
grows beside it (an exchange recorded every 2 s, the answer in flight rewritten at the
relay's 4 Hz); `tail -f` of the same log runs in a second pane of the same size on the same
tmux server. Both panes are read back (`capture-pane`) in turn as fast as tmux answers; each
read's lag is when it returned minus the newest line stamp it shows. The same-run ratio of the
p95s is the figure; the load average is printed beside it, as the machine is shared.

--headless, the in-process figures below (key presses, the burst, memory):

A writer process appends lines stamped with their write time. The dashboard runs headless,
but every frame it would send to a terminal is still rendered to its escape sequences (the
work a real terminal costs) and the newest stamp in it noted with the time: the lag a user
sees at an instant is that instant minus the newest stamp on screen, read on a 1 ms grid
over the whole run (so a frame that comes late counts for all the time it is late). Meanwhile
a key (switch screen and back) is pressed every 0.5 s and timed until the frame showing the
other screen is out. Then a burst brings the log past `--burst` lines and the resident
memory is read before and after. An endpoint and key are configured (invented), so the
display's redaction runs as it does for a user. Baseline, in the same run and measured the
same way: `tail -f` of the same file, read by a separate process as a terminal would.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import json
import os
import re
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from textual import events  # noqa: E402
from textual._compositor import CompositorUpdate  # noqa: E402
from textual.screen import Screen  # noqa: E402

from core.evidence import inflight  # noqa: E402
from core.evidence.exchange_store import ExchangeStore, Recorded  # noqa: E402
from core.evidence.inflight import InFlight  # noqa: E402
from core.settings import API_KEY_VAR, ENDPOINT_VAR, resolve  # noqa: E402
from tests.support.tui_fixtures import make_running  # noqa: E402
from tui.app import Dashboard  # noqa: E402
from tui.screens.live import LiveScreen  # noqa: E402
from tui.screens.runs import RunsScreen  # noqa: E402

WRITER = """
import os, sys, time
path, rate, seconds, n, stop_at = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), \\
    int(sys.argv[4]), int(sys.argv[5])
fd = os.open(path, os.O_WRONLY | os.O_APPEND)
start, pad, t0 = n, "x" * 40, time.monotonic()
first = last = time.time()
while (elapsed := time.monotonic() - t0) < seconds and n < stop_at:
    due = min(stop_at, start + int(elapsed * rate) if rate else n + 5000)
    if due > n:
        now = time.time()
        if n == start:
            first = now
        os.write(fd, "".join(f"{i} {now:.6f} case output {pad}\\n" for i in range(n, due)).encode())
        n, last = due, now
    else:
        time.sleep(0.0005)
print(n, first, last)
"""

TAIL_READER = """
import os, re, time
# What a terminal running `tail -f` gets: each read's arrival time and its newest stamp.
stamp, buf, seen = re.compile(rb"(\\d+) (\\d+\\.\\d+) case output"), b"", []
while chunk := os.read(0, 1 << 16):
    now, buf = time.time(), buf + chunk
    cut = buf.rfind(b"\\n")
    if cut >= 0:
        if found := stamp.match(buf, buf.rfind(b"\\n", 0, cut) + 1):
            seen.append(f"{now:.6f} {found.group(2).decode()}")
        buf = buf[cut + 1:]
print("\\n".join(seen))
"""

STAMP = re.compile(r"(\d+) (\d+\.\d+) case output")
GRID_S = 0.001


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


def seen_lags(seen: list[tuple[float, float | None]], start: float, end: float) -> list[float]:
    """The lag on screen every millisecond from `start` to `end`: the instant minus the
    newest stamp shown by then (minus `start` before any is). `seen` holds (time, newest
    stamp shown from then on, 0 before any, None while the log is not on screen)."""
    times = [t for t, _ in seen]
    lags = []
    for step in range(int((end - start) / GRID_S)):
        now = start + step * GRID_S
        at = bisect.bisect_right(times, now) - 1
        if at < 0:
            lags.append(now - start)
        elif (shown := seen[at][1]) is not None:
            lags.append(now - max(shown, start))
    return lags


class Screenwatch:
    """Renders each frame the app would send to a terminal (as a real terminal costs) and
    notes the newest log line in it, and when; wakes whoever waits for a screen to show."""

    def __init__(self, app: Dashboard) -> None:
        self.app = app
        self.seen: list[tuple[float, float | None]] = []
        self.newest_stamp: float | None = None
        self.newest_line = -1
        self._want: tuple[type[Screen], asyncio.Future[float]] | None = None
        self._display = app._display
        app._display = self.display  # type: ignore[method-assign]

    def display(self, screen: Screen, renderable: object) -> None:
        if not isinstance(renderable, CompositorUpdate) or self.app._batch_count:
            self._display(screen, renderable)  # type: ignore[arg-type]
            return
        text = renderable.render_segments(self.app.console)
        self._display(screen, renderable)
        now = time.time()
        live = isinstance(screen, LiveScreen)
        if live:
            for found in STAMP.finditer(text):
                self.newest_line = max(self.newest_line, int(found.group(1)))
                stamp = float(found.group(2))
                self.newest_stamp = max(self.newest_stamp or stamp, stamp)
        shown = (self.newest_stamp or 0.0) if live else None
        if not self.seen or self.seen[-1][1] != shown:
            self.seen.append((now, shown))
        if self._want is not None and isinstance(screen, self._want[0]):
            self._want[1].set_result(time.perf_counter())
            self._want = None

    async def press(self, key: str, shows: type[Screen]) -> float:
        """Seconds from a key arriving (as the driver delivers it) to the frame of `shows`.
        (Pilot.press also waits for the app to go idle, which a log at 10,000 lines/s
        never lets it.)"""
        done: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._want = (shows, done)
        t0 = time.perf_counter()
        self.app.post_message(events.Key(key, key))
        return await done - t0


def start_tail(path: Path) -> tuple[subprocess.Popen, subprocess.Popen]:
    tail = subprocess.Popen(["tail", "-n0", "-f", str(path)], stdout=subprocess.PIPE)
    reader = subprocess.Popen([sys.executable, "-c", TAIL_READER], stdin=tail.stdout,
                              stdout=subprocess.PIPE, text=True)
    assert tail.stdout is not None
    tail.stdout.close()
    return tail, reader


def tail_seen(tail: subprocess.Popen, reader: subprocess.Popen) -> list[tuple[float, float]]:
    tail.terminate()
    out = reader.communicate()[0]
    return [(float(a), float(b)) for a, b in (line.split() for line in out.splitlines())]


def write(path: Path, rate: int, seconds: float, start: int, stop_at: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(rate), str(seconds),
                             str(start), str(stop_at)], stdout=subprocess.PIPE, text=True)


def ended(writer: subprocess.Popen) -> tuple[int, float, float]:
    n, first, last = writer.communicate()[0].split()
    return int(n), float(first), float(last)


async def wait_until(done: Callable[[], bool], period: float) -> None:
    while not done():
        await asyncio.sleep(period)


async def bench(seconds: float, rate: int, burst: int) -> None:
    for name in [n for n in os.environ if n.startswith("CTO_HARNESS_")]:
        del os.environ[name]
    # an endpoint and key as a user has them, so the display's redaction does its real work
    os.environ[ENDPOINT_VAR] = f"http://127.0.0.1:9/{secrets.token_hex(8)}/v1"
    os.environ[API_KEY_VAR] = secrets.token_hex(16)
    root = Path(tempfile.mkdtemp(prefix="cto-harness-tail-")) / "runs"
    run = make_running(root)
    log_path = run.paths.case_log
    app = Dashboard(root, run_id=run.paths.root.name, resolved=resolve())
    keys: dict[str, list[float]] = {"2": [], "1": []}
    async with app.run_test(size=(140, 40)) as pilot:
        watch = Screenwatch(app)
        await pilot.pause(0.5)
        tail, reader = start_tail(log_path)
        await asyncio.sleep(0.3)
        writer = write(log_path, rate, seconds, 0, 10**12)
        cpu_start = time.process_time()
        while writer.poll() is None:
            await asyncio.sleep(0.5)
            if writer.poll() is None:
                keys["2"].append(await watch.press("2", RunsScreen))
                keys["1"].append(await watch.press("1", LiveScreen))
        written, first, last = ended(writer)
        cpu = (time.process_time() - cpu_start) / (last - first)
        await pilot.pause(0.5)
        tail_events = tail_seen(tail, reader)  # the baseline's figures: the steady rate only
        rss_steady = rss_mib()
        # the burst: as fast as the writer can go, to `burst` lines in all
        writer = write(log_path, 0, 600, written, burst)
        await wait_until(lambda: writer.poll() is not None, 0.05)
        total, _, _ = ended(writer)
        t_catch = time.perf_counter()
        await wait_until(lambda: watch.newest_line >= total - 1, 0.01)
        catch_up = time.perf_counter() - t_catch
        rss_after = rss_mib()
        held = len(app.query_one("#case-log").lines)  # type: ignore[attr-defined]
    lags = seen_lags(watch.seen, first, last)
    tail_lags = seen_lags(tail_events, first, last)
    presses = keys["2"] + keys["1"]
    ms = [f"p50 {pct(v, .5) * 1000:.1f} ms, p95 {pct(v, .95) * 1000:.1f} ms" for v in
          (lags, tail_lags, presses, keys["2"], keys["1"])]
    print(f"lines written at {rate:,}/s for {seconds:g} s: {written:,}; the dashboard's CPU "
          f"meanwhile: {cpu:.0%} of a core")
    print(f"dashboard lag write->screen: {ms[0]}, max {max(lags) * 1000:.1f} ms "
          f"({len(lags):,} ms on the grid, {len(watch.seen):,} frames changed it)")
    print(f"tail -f lag (baseline):      {ms[1]}, max {max(tail_lags) * 1000:.1f} ms")
    print(f"key press (switch screen) during it: {ms[2]}, max {max(presses) * 1000:.1f} ms "
          f"({len(presses)}; to Runs {ms[3]}; back to Live {ms[4]})")
    print(f"after a burst to {total:,} lines: on screen {catch_up:.2f} s after the writer "
          f"stopped; RSS {rss_steady:.0f} MiB at {written:,} lines -> {rss_after:.0f} MiB at "
          f"{total:,}; lines held {held:,} (ring {app.log_ring:,})")
    print(f"median-lag ratio dashboard / tail -f: "
          f"{statistics.median(lags) / statistics.median(tail_lags):.1f}x")


# -- black-box, in tmux ------------------------------------------------------------------
TUI = Path(sys.executable).parent / "cto-harness-tui"
SOCKET = f"cto-tail-bench-{os.getpid()}"
MODEL = "qwen3.6-35b-a3b"


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", "-L", SOCKET, *args], capture_output=True, text=True,
                          check=True, timeout=30).stdout


def newest_stamp(text: str) -> float | None:
    stamps = [float(m.group(2)) for m in STAMP.finditer(text)]
    return max(stamps) if stamps else None


def exchange(seq: int, turns: int) -> Recorded:
    """One exchange of a tool loop `turns` turns long (the history resent each time)."""
    messages: list[dict[str, object]] = [
        {"role": "system", "content": "You are a careful coding agent."},
        {"role": "user", "content": "Make slugify() pass its tests."}]
    for turn in range(turns):
        call = {"id": f"call_{turn}", "type": "function", "function": {
            "name": "write_file", "arguments": json.dumps({"path": f"f{turn}.py",
                                                           "content": "x = 1\n" * 20})}}
        messages += [{"role": "assistant", "content": None, "tool_calls": [call]},
                     {"role": "tool", "tool_call_id": f"call_{turn}", "content": "written"}]
    answer = {"object": "chat.completion", "model": MODEL, "choices": [{
        "index": 0, "finish_reason": "stop", "message": {
            "role": "assistant", "content": f"Turn {turns}: " + "reasoning aloud " * 40}}],
        "usage": {"prompt_tokens": 400 + 50 * turns, "completion_tokens": 90}}
    return Recorded(seq=seq, started="2026-06-01T02:20:00.000Z",
                    ended="2026-06-01T02:20:01.000Z", method="POST", route="chat/completions",
                    api="chat", status=200, stream=False, model_asked=MODEL,
                    model_answered=MODEL, latency_ms=900.0, prompt_tokens=400,
                    completion_tokens=90, error=None,
                    request=json.dumps({"model": MODEL, "messages": messages}).encode(),
                    response=answer)


def converse(store: ExchangeStore, seq: int, stop: threading.Event) -> None:
    """The run's conversation as the relay grows it: the answer in flight rewritten at
    4 Hz (atomically, as the relay does), an exchange recorded every 2 s."""
    folder, words, t0 = store.folder, 0, time.time()
    while not stop.wait(inflight.PERIOD_S):
        words += 10
        flying = InFlight(started="2026-06-01T02:20:00.000Z", api="chat", stream=True,
                          model_asked=MODEL, model=MODEL, elapsed_s=time.time() - t0,
                          tokens=words, tokens_per_s=40.0,
                          text=("streaming answer words " * words)[-inflight.TAIL_CHARS:])
        tmp = folder / "inflight.json.tmp"
        tmp.write_bytes(inflight.document([flying]))
        tmp.replace(folder / inflight.NAME)
        if words % 80 == 0:
            store.write(exchange(seq, seq))
            seq, t0 = seq + 1, time.time()
    store.close()


def sample(panes: tuple[str, ...], until_t: float) -> dict[str, list[float]]:
    """Each pane read back in turn until `until_t`: when the read returned minus the newest
    stamp it shows (the read's own few ms counted for both panes alike; its midpoint went
    below zero for tail -f, the stamp taken just before a write that the read then saw)."""
    lags: dict[str, list[float]] = {p: [] for p in panes}
    while time.time() < until_t:
        for pane in panes:
            text = tmux("capture-pane", "-p", "-t", pane)
            stamp = newest_stamp(text)
            if stamp is not None:
                lags[pane].append(time.time() - stamp)
    return lags


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pane_pid(pane: str) -> int:
    """The dashboard's process: the pane's shell is `exec`'d into it."""
    return int(tmux("display-message", "-p", "-t", pane, "#{pane_pid}").strip())


def bench_tmux(seconds: float, rate: int, tui: Path = TUI) -> None:
    for name in [n for n in os.environ if n.startswith("CTO_HARNESS_")]:
        del os.environ[name]
    # an endpoint and key as a user has them (in the tmux server's environment, never in
    # an argv), so the display's redaction does its real work
    os.environ[ENDPOINT_VAR] = f"http://127.0.0.1:9/{secrets.token_hex(8)}/v1"
    os.environ[API_KEY_VAR] = secrets.token_hex(16)
    for name in ("COLUMNS", "LINES"):
        os.environ.pop(name, None)
    os.environ["TERM"] = "xterm-256color"
    root = Path(tempfile.mkdtemp(prefix="cto-harness-tail-")) / "runs"
    run = make_running(root)
    folder = run.paths.root / "backend" / "exchanges"
    folder.mkdir(parents=True, exist_ok=True)
    store = ExchangeStore(folder, lambda text: text)
    for seq in range(1, 6):
        store.write(exchange(seq, seq))
    log = run.paths.case_log
    stop = threading.Event()
    try:
        tmux("new-session", "-d", "-s", "dash", "-x", "160", "-y", "48",
             f"exec {tui} --runs-root {root} --run {run.paths.root.name}")
        tmux("new-session", "-d", "-s", "tail", "-x", "160", "-y", "48",
             f"exec tail -n0 -f {log}")
        deadline = time.monotonic() + 120
        while "case: started" not in (text := tmux("capture-pane", "-p", "-t", "dash")):
            if time.monotonic() > deadline:
                raise SystemExit(f"the dashboard never showed the run:\n{text}")
            time.sleep(0.2)
        talk = threading.Thread(target=converse, args=(store, 6, stop), daemon=True)
        talk.start()
        load = Path("/proc/loadavg").read_text().split()[:3]
        pid, cpu0 = pane_pid("dash"), 0.0
        cpu0 = cpu_s(pid)
        writer = write(log, rate, seconds, 0, 10**12)
        t_start = time.time()
        lags = sample(("dash", "tail"), t_start + seconds)
        written, first, last = ended(writer)
        cpu = (cpu_s(pid) - cpu0) / (last - first)
        shown = tmux("capture-pane", "-p", "-t", "dash")
    finally:
        stop.set()
        subprocess.run(["tmux", "-L", SOCKET, "kill-server"], capture_output=True, timeout=30)
    # the first second is the dashboard catching up with the start of the stream
    dash = lags["dash"][len(lags["dash"]) // int(seconds):]
    tail = lags["tail"][len(lags["tail"]) // int(seconds):]
    load_after = Path("/proc/loadavg").read_text().split()[:3]
    print(f"tmux 160x48, black-box: {written:,} lines written at {rate:,}/s for {seconds:g} s "
          f"while the conversation grew; the dashboard's CPU meanwhile {cpu:.0%} of a core")
    for name, got in (("dashboard", dash), ("tail -f (baseline)", tail)):
        print(f"{name:>20} lag write->screen: p50 {pct(got, .5) * 1000:.1f} ms, "
              f"p95 {pct(got, .95) * 1000:.1f} ms, max {max(got) * 1000:.1f} ms "
              f"({len(got):,} reads)")
    print(f"p95 ratio dashboard / tail -f: {pct(dash, .95) / pct(tail, .95):.2f}x "
          f"(p50 {pct(dash, .5) / pct(tail, .5):.2f}x); load average {' '.join(load)} "
          f"before, {' '.join(load_after)} after")
    if "in flight" not in shown or "case output" not in shown:
        print("! the last screen did not show both the log and the answer in flight:")
        print(shown)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=30, help="steady phase length")
    parser.add_argument("--rate", type=int, default=10_000, help="lines per second")
    parser.add_argument("--burst", type=int, default=1_000_000,
                        help="lines in the log after the burst (--headless)")
    parser.add_argument("--headless", action="store_true",
                        help="in-process: key presses, the burst and memory too")
    parser.add_argument("--tui", type=Path, default=TUI,
                        help="the cto-harness-tui to measure (another checkout's, to compare)")
    args = parser.parse_args()
    if args.headless:
        asyncio.run(bench(args.seconds, args.rate, args.burst))
    else:
        bench_tmux(args.seconds, args.rate, args.tui)


if __name__ == "__main__":
    main()
