"""Benchmark: the harness's own cost per run, against running the same Case directly.

1. Overhead: a Case that exits at once (fake baseline off). The harness's figure is the
   whole `cto-harness run` wall time less the time its hidden checks take (a pytest
   subprocess: the task's cost, not the harness's), split into the run itself and the
   interpreter's start-up and imports.
2. Throughput: a Case printing 1,000,000 lines, through the harness (streaming redactor,
   guard, log) against the same Case with its output sent straight to a file.

Everything runs against a real loopback endpoint (the demo's scripted server). Prints the
figures and the ratios; aims: overhead under 300 ms, ratio under 1.3.

    uv run python bench/run_overhead.py [--repeat 5] [--lines 1000000]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from core.endpoint import ScriptedEndpoint

ROOT = Path(__file__).resolve().parent.parent
CASE = ROOT / "tests" / "cases" / "case.py"


def harness_env(tmp: Path, endpoint: ScriptedEndpoint, case_args: str) -> dict[str, str]:
    admission = tmp / "admission.json"
    admission.write_text(json.dumps({"admitted": [
        {"provider": "qwen-local", "model": endpoint.model_id, "status": "admitted"}]}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CTO_HARNESS_")}
    # A user's Python caches compiled modules; without that every run would recompile the
    # harness's (PYTHONDONTWRITEBYTECODE is set on some CI and sandbox machines).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.update({
        "CTO_HARNESS_CASE_LOCAL_BASE_URL": endpoint.base_url,
        "CTO_HARNESS_CASE_BIN": str(CASE),
        "CTO_HARNESS_CASE_ARGS": case_args,
        "CTO_HARNESS_CASE_MODEL_ADMISSION_FILE": str(admission),
        "CTO_HARNESS_RUNS_ROOT": str(tmp / "runs"),
        "PYTHONUNBUFFERED": "1",  # as the harness sets it for the Case: same Case, same env
    })
    return env


def timed(argv: list[str], env: dict[str, str], stdout=subprocess.DEVNULL) -> float:
    t0 = time.perf_counter()
    subprocess.run(argv, env=env, stdout=stdout, stderr=subprocess.STDOUT, check=False)
    return time.perf_counter() - t0


def harness_run(env: dict[str, str]) -> tuple[float, dict]:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "core.cli", "run", "--no-baseline", "--json"],
                          env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    out = json.loads(proc.stdout)
    report = json.loads((Path(out["run_dir"]) / "report.json").read_text())
    return wall, report


STACK = ("import pydantic_settings, httpx, httpcore._sync.http11, uvicorn, starlette.responses"
         "; import os; os._exit(0)")
"""The libraries every run needs (settings, readiness, relay): their import is a floor that
no change to the harness's own code can go under. It leaves as `cto-harness` does, without
tearing the interpreter down."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--lines", type=int, default=1_000_000)
    args = parser.parse_args()
    with ScriptedEndpoint(model_id="qwen3.6-35b-a3b") as endpoint, \
            tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        quick = "--mode flood --lines 0 --workspace {workspace}"
        env = harness_env(tmp, endpoint, quick)
        direct_argv = [str(CASE), "--mode", "flood", "--lines", "0", "--workspace", tmp_name]
        direct = [timed(direct_argv, env) for _ in range(args.repeat)]
        harness_run(env)  # warm-up: bytecode caches written, files in the page cache
        runs = [harness_run(env) for _ in range(args.repeat)]
        floor = [timed([sys.executable, "-c", STACK], env) for _ in range(args.repeat)]
        wall = [w for w, _ in runs]
        checks = [r["durations"]["checks_s"] or 0.0 for _, r in runs]
        own = [w - c - d for w, c, d in zip(wall, checks, direct, strict=True)]
        inside = [r["durations"]["total_s"] - (r["durations"]["checks_s"] or 0.0)
                  - (r["durations"]["case_s"] or 0.0) for _, r in runs]
        print("1. per-run overhead (Case exits at once, baseline off)")
        print(f"   direct Case           median {statistics.median(direct) * 1000:8.1f} ms")
        print(f"   cto-harness run       median {statistics.median(wall) * 1000:8.1f} ms")
        print(f"   of which checks       median {statistics.median(checks) * 1000:8.1f} ms")
        print(f"   harness's own cost    median {statistics.median(own) * 1000:8.1f} ms"
              "   (aim < 300 ms; wall time minus checks minus the direct Case)")
        print(f"     of which in the run median {statistics.median(inside) * 1000:6.1f} ms"
              "   (preflight, relay, report, leak scan: the report's durations)")
        print(f"     the rest              median "
              f"{(statistics.median(own) - statistics.median(inside)) * 1000:6.1f} ms"
              "   (interpreter start-up and imports)")
        print(f"   import floor          median {statistics.median(floor) * 1000:8.1f} ms"
              "   (a bare interpreter importing the libraries a run needs)")

        flood = f"--mode flood --lines {args.lines} --workspace {{workspace}}"
        env = harness_env(tmp, endpoint, flood)
        out_file = tmp / "direct.log"
        with out_file.open("wb") as fh:
            direct_flood = timed([str(CASE), "--mode", "flood", "--lines", str(args.lines),
                                  "--workspace", tmp_name], env, stdout=fh)
        _, report = harness_run(env)
        case_s = report["durations"]["case_s"]
        print(f"2. a Case printing {args.lines:,} lines")
        print(f"   direct, output to a file   {direct_flood:8.3f} s "
              f"({out_file.stat().st_size / 1e6:.1f} MB)")
        print(f"   through the harness        {case_s:8.3f} s")
        print(f"   ratio                      {case_s / direct_flood:8.2f}   (aim < 1.3)")


if __name__ == "__main__":
    main()
