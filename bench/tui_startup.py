"""Start-up to first frame: `cto-harness-tui` against a bare Textual app, same run.

    uv run python bench/tui_startup.py [--repeat 5]

Each sample is a fresh interpreter (imports included) running the app headless; the clock
stops when the first frame has been composed (the first `call_after_refresh` after mount).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

BARE = """
import sys, time
from textual.app import App
from textual.widgets import Footer, Header, Static
class Bare(App):
    def compose(self):
        yield Header(); yield Static("hello"); yield Footer()
    def on_mount(self):
        self.call_after_refresh(lambda: (print(time.time()), self.exit()))
Bare().run(headless=True, size=(140, 40))
"""

DASHBOARD = """
import sys, time
from pathlib import Path
from core.settings import resolve
import tui.app
from tui.app import Dashboard
class Timed(Dashboard):
    CSS_PATH = [Path(tui.app.__file__).parent / n for n in ("global.tcss", "app.tcss")]
    def on_mount(self):
        super().on_mount()
        self.call_after_refresh(lambda: (print(time.time()), self.exit()))
Timed(Path(sys.argv[1]), resolved=resolve()).run(headless=True, size=(140, 40))
"""


def sample(code: str, *args: str) -> float:
    started = time.time()
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                         cwd=ROOT, timeout=60, check=True).stdout
    return float(out.strip().splitlines()[-1]) - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    repeat = parser.parse_args().repeat
    root = tempfile.mkdtemp(prefix="cto-harness-startup-")
    sample(BARE)  # warm the file cache for both
    bare = [sample(BARE) for _ in range(repeat)]
    dash = [sample(DASHBOARD, root) for _ in range(repeat)]
    b, d = statistics.median(bare), statistics.median(dash)
    print(f"bare Textual app: median {b * 1000:.0f} ms to first frame ({repeat} runs)")
    print(f"cto-harness-tui:  median {d * 1000:.0f} ms to first frame ({repeat} runs)")
    print(f"ratio: {d / b:.2f}x")


if __name__ == "__main__":
    main()
