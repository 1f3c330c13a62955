"""Benchmark: the harness's own cost per run, and the sandbox's, against running the same
Case directly.

1. The sandbox per process: the same program started directly and in a sandbox (bwrap, its
   user namespace as root, the first process that drops to the sandbox's uid), best and
   median of `--repeat`; and the per-run set-up (user namespace, bwrap's version, the
   probe), which runs while the preflight does.
2. Per-run overhead, as a real run has it (fake baseline on): a Case that exits at once,
   through `cto-harness run` with the sandbox on and off. The harness's own cost is the
   wall time less the Case, the checks and the baseline (the task's costs); the sandbox's is
   the difference between on and off (one sandbox for the Case, the checks, the fake engine
   and its checks: four a run).
3. Throughput: a Case printing `--lines` lines through the harness against the same Case
   run the way the harness runs it (its output through a pipe, drained in 1 MiB reads to a
   file), each best of `--repeat`.

Everything runs against a real loopback endpoint (the demo's scripted server). Prints the
figures and the ratios; aims: under 50 ms a sandboxed process, overhead under 300 ms a
run, throughput ratio under 1.3.

    uv run python bench/run_overhead.py [--repeat 5] [--lines 1000000]
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from core.run.process import COALESCE_S, F_SETPIPE_SZ, PIPE_SIZE, READ_SIZE
from core.sandbox.bwrap import Bind, Sandboxes, Spec
from core.sandbox.paths import program_binds
from core.standins.endpoint import ScriptedEndpoint

ROOT = Path(__file__).resolve().parent.parent
CASE = ROOT / "tests" / "cases" / "case.py"


def harness_env(tmp: Path, endpoint: ScriptedEndpoint, case_args: str,
                sandbox: str = "on") -> dict[str, str]:
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
        "CTO_HARNESS_CASE_SANDBOX": sandbox,
        "PYTHONUNBUFFERED": "1",  # as the harness sets it for the Case: same Case, same env
    })
    return env


def timed(argv: list[str], env: dict[str, str], pass_fds: tuple[int, ...] = ()) -> float:
    t0 = time.perf_counter()
    subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                   check=False, pass_fds=pass_fds)
    return time.perf_counter() - t0


def piped_to_file(argv: list[str], env: dict[str, str], out: Path) -> float:
    """The Case run as the harness runs it: stdout+stderr on one 1 MiB pipe, drained in
    1 MiB reads to a file, pausing 2 ms after a short read as the harness does (so a Case
    writing tiny lines is read in large chunks); only the redactor and the guard are not
    there."""
    t0 = time.perf_counter()
    with out.open("wb") as fh:
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        assert proc.stdout is not None
        fcntl.fcntl(proc.stdout.fileno(), F_SETPIPE_SZ, PIPE_SIZE)
        while chunk := os.read(proc.stdout.fileno(), READ_SIZE):
            fh.write(chunk)
            if len(chunk) < READ_SIZE // 16:
                time.sleep(COALESCE_S)
        proc.wait()
    return time.perf_counter() - t0


def harness_run(env: dict[str, str], *flags: str) -> tuple[float, dict]:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "core.cli", "run", *flags, "--json"],
                          env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    out = json.loads(proc.stdout)
    report = json.loads((Path(out["run_dir"]) / "report.json").read_text())
    return wall, report


def ms(values: list[float]) -> str:
    return (f"best {min(values) * 1000:7.1f} ms   median "
            f"{statistics.median(values) * 1000:7.1f} ms")


def per_process(tmp: Path, env: dict[str, str], repeat: int) -> None:
    box = Sandboxes(private=[], runs_root=tmp / "runs")
    setup = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        box.prepare()
        setup.append(time.perf_counter() - t0)
        box.close()
    box.prepare()
    workspace = tmp / "workspace"
    workspace.mkdir()
    box.hand_over(workspace)
    _, needed = program_binds(str(CASE), env.get("PATH", ""))  # as a run binds them
    spec = Spec(binds=[Bind(workspace, "/workspace", writable=True),
                       *(Bind(p, str(p)) for p in dict.fromkeys(needed))], cwd="/workspace")
    print("1. the sandbox per process")
    print(f"   per-run set-up (userns, version, probe)   {ms(setup)}   (during the preflight)")
    unfiltered = Sandboxes(private=[], runs_root=tmp / "runs", seccomp=False)
    unfiltered.prepare()
    for name, argv in (("/bin/true", ["/bin/true"]),
                       ("the test Case (Python)", [str(CASE), "--mode", "flood", "--lines",
                                                    "0", "--workspace", "/workspace"])):
        direct = [timed(argv, env) for _ in range(repeat)]
        command, fds = box.command(spec, argv)
        inside = [timed(command, env, fds) for _ in range(repeat)]
        command, fds = unfiltered.command(spec, argv)
        bare = [timed(command, env, fds) for _ in range(repeat)]
        added = min(inside) - min(direct)
        print(f"   {name:24s} direct    {ms(direct)}")
        print(f"   {'':24s} sandboxed {ms(inside)}   added {added * 1000:6.1f} ms"
              "   (aim < 50 ms)")
        print(f"   {'':24s} no seccomp {ms(bare)}   seccomp adds "
              f"{(statistics.median(inside) - statistics.median(bare)) * 1000:6.1f} ms "
              "(medians)")
    unfiltered.close()
    box.take_back(workspace)
    box.close()


def per_run(tmp: Path, endpoint: ScriptedEndpoint, repeat: int) -> None:
    quick = "--mode flood --lines 0 --workspace {workspace}"
    print("2. per run, fake baseline on (a Case that exits at once)")
    direct = [timed([str(CASE), "--mode", "flood", "--lines", "0", "--workspace", str(tmp)],
                    harness_env(tmp, endpoint, quick)) for _ in range(repeat)]
    walls: dict[str, list[float]] = {}
    envs = {sandbox: harness_env(tmp, endpoint, quick, sandbox) for sandbox in ("off", "on")}
    results: dict[str, list[tuple[float, dict]]] = {"off": [], "on": []}
    for sandbox in ("off", "on"):
        harness_run(envs[sandbox])  # warm-up: bytecode caches written, files in the page cache
    for _ in range(repeat):  # alternated, so the machine's load drifts over both alike
        for sandbox in ("off", "on"):
            results[sandbox].append(harness_run(envs[sandbox]))
    for sandbox in ("off", "on"):
        runs = results[sandbox]
        wall = [w for w, _ in runs]
        task = [(r["durations"]["checks_s"] or 0.0) + (r["durations"]["baseline_s"] or 0.0)
                for _, r in runs]
        own = [w - t - d for w, t, d in zip(wall, task, direct, strict=True)]
        walls[sandbox] = wall
        print(f"   sandbox {sandbox:3s}  cto-harness run  {ms(wall)}")
        print(f"                checks + baseline {ms(task)}")
        print(f"                harness's own     {ms(own)}   (aim < 300 ms: wall less "
              "the Case, checks and baseline)")
    added = statistics.median(walls["on"]) - statistics.median(walls["off"])
    best = min(walls["on"]) - min(walls["off"])
    pairs = [on - off for on, off in zip(walls["on"], walls["off"], strict=True)]
    print(f"   the sandbox adds {added * 1000:6.1f} ms a run (medians; bests {best * 1000:.1f} "
          f"ms; median of the paired differences {statistics.median(pairs) * 1000:.1f} ms): "
          "four sandboxed processes and the set-up")
    print(f"   direct Case       {ms(direct)}")


def throughput(tmp: Path, endpoint: ScriptedEndpoint, lines: int, repeat: int) -> None:
    flood = f"--mode flood --lines {lines} --workspace {{workspace}}"
    env = harness_env(tmp, endpoint, flood)
    out = tmp / "direct.log"
    argv = [str(CASE), "--mode", "flood", "--lines", str(lines), "--workspace", str(tmp)]
    direct = [piped_to_file(argv, env, out) for _ in range(repeat)]
    print(f"3. a Case printing {lines:,} lines ({out.stat().st_size / 1e6:.1f} MB), best of "
          f"{repeat}")
    print(f"   direct, piped to a file        {min(direct):8.3f} s")
    for sandbox in ("off", "on"):
        env = harness_env(tmp, endpoint, flood, sandbox)
        case_s = min(harness_run(env, "--no-baseline")[1]["durations"]["case_s"]
                     for _ in range(repeat))
        print(f"   through the harness, sandbox {sandbox:3s} {case_s:8.3f} s   ratio "
              f"{case_s / min(direct):5.2f}   (aim < 1.3)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--lines", type=int, default=1_000_000)
    args = parser.parse_args()
    with ScriptedEndpoint(model_id="qwen3.6-35b-a3b") as endpoint, \
            tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        per_process(tmp, harness_env(tmp, endpoint, ""), args.repeat)
        per_run(tmp, endpoint, args.repeat)
        throughput(tmp, endpoint, args.lines, args.repeat)


if __name__ == "__main__":
    main()
