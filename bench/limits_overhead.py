"""Benchmark: what bounding a Case costs (core/sandbox/limits.py).

1. The per-run cgroup: made (v1 memory + pids here, or v2) and removed, best and median of
   `--repeat`; it is made while the preflight runs.
2. Per sandboxed process: `/bin/true` in the sandbox, started as a run starts it, without
   the limits and with them (the `/bin/sh` that joins the cgroup and sets RLIMIT_FSIZE
   before it execs the sandbox); aim: under 20 ms added.
3. A job of `--trials` quick trials (bench/job_throughput.py's) with CTO_HARNESS_CASE_LIMITS
   off and on, alternated `--rounds` times in the same run: aim, not measurably slower.

    uv run python bench/limits_overhead.py [--repeat 20] [--trials 48] [--rounds 1]
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
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from job_throughput import job  # noqa: E402

from core.sandbox.bwrap import Sandboxes, Spec  # noqa: E402
from core.sandbox.cgroups import make_cgroup  # noqa: E402
from core.sandbox.limits import RunLimits, settings_from  # noqa: E402


def ms(values: list[float]) -> str:
    return (f"best {min(values) * 1000:7.2f} ms   median "
            f"{statistics.median(values) * 1000:7.2f} ms")


def timed(argv: list[str], fds: tuple[int, ...]) -> float:
    t0 = time.perf_counter()
    subprocess.run(argv, pass_fds=fds, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                   check=True)
    return time.perf_counter() - t0


def per_process(repeat: int) -> None:
    settings = settings_from({})
    made = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        cgroup = make_cgroup(settings.memory, settings.pids)
        t1 = time.perf_counter()
        cgroup.remove()
        made.append((t1 - t0, time.perf_counter() - t1))
    print("1. the per-run cgroup")
    print(f"   made    {ms([m for m, _ in made])}")
    print(f"   removed {ms([r for _, r in made])}")
    box = Sandboxes(private=[], runs_root=Path("/nonexistent-runs-root"))
    box.prepare()
    limits = RunLimits(settings)
    limits.setup()
    try:
        spec = Spec(binds=[], cwd="/")
        plain, fds = box.command(spec, ["/bin/true"])
        bounded = limits.wrap(plain)
        off, on = [], []
        for _ in range(repeat):  # alternated, so a busy moment hits both alike
            off.append(timed(plain, fds))
            on.append(timed(bounded, fds))
        added = statistics.median(on) - statistics.median(off)
        print("2. a sandboxed /bin/true")
        print(f"   without limits {ms(off)}")
        print(f"   with limits    {ms(on)}   added (medians) {added * 1000:6.2f} ms"
              "   (aim < 20 ms)")
    finally:
        limits.close()
        box.close()


def jobs(trials: int, concurrency: int, rounds: int) -> None:
    walls: dict[str, list[float]] = {"off": [], "on": []}
    with tempfile.TemporaryDirectory(prefix="cto-harness-bench-limits-") as scratch:
        case = Path(scratch) / "quick-case"
        case.write_text("#!/bin/sh\nexit 0\n")
        case.chmod(0o755)
        for n in range(rounds):
            for mode in (("off", "on") if n % 2 == 0 else ("on", "off")):
                folder = Path(scratch) / f"{mode}-{n}"
                folder.mkdir()
                wall, out = job(trials, concurrency, str(case), folder,
                                {"CTO_HARNESS_CASE_LIMITS": mode})
                done = out["summary"]["done"]
                assert done == trials, out
                walls[mode].append(wall)
    print(f"3. a job of {trials} quick trials, --concurrency {concurrency}, {rounds} round(s)")
    for mode in ("off", "on"):
        print(f"   limits {mode:3s}  " + "  ".join(f"{w:6.1f} s" for w in walls[mode]))
    ratio = statistics.median(walls["on"]) / statistics.median(walls["off"])
    print(f"   on / off (medians) {ratio:.3f}   (aim: not measurably slower)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--trials", type=int, default=48)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--no-job", action="store_true")
    args = parser.parse_args()
    per_process(args.repeat)
    if not args.no_job:
        jobs(args.trials, args.concurrency, args.rounds)


if __name__ == "__main__":
    main()
