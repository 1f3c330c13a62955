"""How long the README's first command takes, set-up apart.

The dashboard cannot be timed headless, so this times what it runs: a whole demo run,
`cto-harness run --demo --json`, end to end (endpoint start, preflight, the reference Case
streaming from the scripted model, checks, the fake baseline, the report). Set-up is timed
on its own: a fresh environment from uv's cache (`uv sync --frozen` into a temp folder) and
the check `uv run` makes before every command.

Baseline: the reference Case's own time in the same run (the scripted stream's pace), so
the ratio is what the harness adds around the Case.

    uv run python bench/first_command.py [--repeat N]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def timed(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, str]:
    started = time.perf_counter()
    proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        sys.exit(f"first_command: {argv[0]} {argv[1]} failed ({proc.returncode}): {tail[0]}")
    return elapsed, proc.stdout


def demo_run(uv: str, runs_root: Path) -> tuple[float, dict]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CTO_HARNESS_")}
    elapsed, out = timed([uv, "run", "--frozen", "cto-harness", "run", "--demo", "--json",
                          "--runs-root", str(runs_root)], env)
    result = json.loads(out)
    if result["status"] != "passed":
        sys.exit(f"first_command: the demo run did not pass ({result['status']})")
    report = json.loads((Path(result["run_dir"]) / "report.json").read_text())
    return elapsed, report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    uv = shutil.which("uv")
    if uv is None:
        sys.exit("first_command: uv is not on PATH (pip install uv)")
    with tempfile.TemporaryDirectory(prefix="first-command-") as tmp:
        fresh_env = {**os.environ, "UV_PROJECT_ENVIRONMENT": str(Path(tmp) / "venv")}
        cold_setup, _ = timed([uv, "sync", "--frozen", "--quiet"], fresh_env)
        warm_setup, _ = timed([uv, "run", "--frozen", "python", "-c", "pass"])
        runs = [demo_run(uv, Path(tmp) / "runs") for _ in range(args.repeat)]
    walls = [wall for wall, _ in runs]
    cases = [report["durations"]["case_s"] or 0.0 for _, report in runs]
    median_wall, median_case = statistics.median(walls), statistics.median(cases)
    last = runs[-1][1]["durations"]
    print(f"set-up, fresh environment from uv's cache (uv sync --frozen): {cold_setup:6.2f} s")
    print(f"set-up, uv run's check on a synced environment:              {warm_setup:6.2f} s")
    print(f"uv run cto-harness run --demo --json, {args.repeat} runs: median {median_wall:.2f} s "
          f"(min {min(walls):.2f}, max {max(walls):.2f})")
    print(f"  last run: preflight {last['preflight_s']:.2f} s, case {last['case_s'] or 0:.2f} s, "
          f"checks {last['checks_s'] or 0:.2f} s, baseline {last['baseline_s'] or 0:.2f} s, "
          f"total in report {last['total_s']:.2f} s")
    ratio = median_wall / median_case if median_case else float("nan")
    print(f"baseline: the reference Case alone, median {median_case:.2f} s; "
          f"first command / Case = {ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
