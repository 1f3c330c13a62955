"""What running a job's trials on a Ray worker node adds over the same job run locally.

    uv run --extra cluster python bench/cluster_overhead.py [--trials 48]

Starts a two-node Ray cluster on this machine (a head, and one worker offering one
`cto_worker` slot; token auth on; each its own temp dir; stopped by PID), then runs the
same job twice, one trial at a time: `cto-harness job --demo --task r1-string-slugify
--attempts N --concurrency 1` locally, and the same with `--cluster` (the head's GCS address).
Demo trials: the gateway's own cost is `bench/gateway_overhead.py`'s; this is Ray's and the
run folders' round trip. Prints each job's wall time, the connection and survey of the
cluster (paid once a job), and the per-trial cost the cluster adds after it, twice: by wall
time, (cluster wall - connect - local wall) / N, and around the runs (each job's wall less its
runs' own report durations: the runs' spread on a loaded machine taken out), and between
the runs: the median gap from one trial's run ending (its report's `finished_at`) to the next
one's starting (`started_at`), after the first trial (whose gap holds the actor's start), the
cluster's less the local job's. The issue's aim: under 100 ms a trial. The load average is
printed beside the figures (a shared machine).

Measured (session 7, load average ~6 on 2 cores, 48 trials): before, +253 ms a trial (median
gap 1,395 ms on the cluster, 1,142 ms locally; then, both started a fresh interpreter a
trial); of the cluster's part, ~85 ms was the run folder's way back through both nodes'
object stores and ~60 ms its unpacking, which held the next trial back. After (the folder
zlib-compressed, so a demo run's comes back inline with the call's answer; taken in while
the next trial starts; trials forked from a warm launcher on the node, as a local job's):
median gap 244 ms on the cluster, 164 ms locally: +80 ms a trial (+94 ms around the runs).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RAY = Path(sys.executable).parent / "ray"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Node:
    """`ray start --block` in its own session; stopped by its PID and its session's."""

    def __init__(self, argv: list[str], env: dict[str, str], name: str) -> None:
        self.temp = Path(tempfile.mkdtemp(prefix=f"cto-ray-bench-{name}-", dir="/tmp"))
        self.log = self.temp.with_suffix(".log")
        self.proc = subprocess.Popen([str(RAY), "start", "--block", "--temp-dir",
                                      str(self.temp), *argv], env=env,
                                     stdout=self.log.open("wb"), stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def wait_up(self, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while b"Ray runtime started" not in self.log.read_bytes():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"ray node did not start:\n{self.log.read_text()[-2000:]}")
            time.sleep(0.2)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=20)
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                with contextlib.suppress(OSError, ValueError, IndexError):
                    stat = Path(f"/proc/{entry}/stat").read_text()
                    if int(stat.rsplit(")", 1)[1].split()[3]) == self.proc.pid:
                        os.kill(int(entry), signal.SIGKILL)
        self.proc.wait()
        shutil.rmtree(self.temp, ignore_errors=True)
        self.log.unlink(missing_ok=True)


def job(env: dict[str, str], runs: Path, trials: int, *extra: str) -> tuple[float, dict]:
    argv = [sys.executable, "-m", "core.cli", "job", "--demo", "--task", "r1-string-slugify",
            "--attempts", str(trials), "--concurrency", "1", "--runs-root", str(runs),
            "--json", *extra]
    t0 = time.perf_counter()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"job failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return wall, json.loads(proc.stdout)


def _at(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def gaps(runs: Path) -> list[float]:
    """Seconds from each run's end to the next run's start, in the order they ran (the job
    runs one at a time): what the job does between two runs."""
    spans = []
    for report in runs.glob("*/report.json"):
        data = json.loads(report.read_text())
        spans.append((_at(data["started_at"]), _at(data["finished_at"])))
    spans.sort()
    return [nxt[0] - cur[1] for cur, nxt in itertools.pairwise(spans)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=48)
    args = parser.parse_args()
    if not RAY.exists():
        raise SystemExit("Ray is not installed: uv sync --extra cluster")
    scratch = Path(tempfile.mkdtemp(prefix="cto-cluster-bench-"))
    token = scratch / "ray-token"
    token.write_text(secrets.token_hex(32))
    token.chmod(0o600)
    home = scratch / "home"
    home.mkdir()
    ray_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home),
               "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token),
               "RAY_USAGE_STATS_ENABLED": "0", "RAY_ENABLE_UV_RUN_RUNTIME_ENV": "0",
               "PYTHONPATH": str(ROOT), "LANG": "C.UTF-8"}
    keys = {k: v for k, v in os.environ.items() if k == "CTO_HARNESS_SIGNING_KEY_FILE"}
    port = free_port()
    common = ["--num-cpus", "1", "--node-ip-address", "127.0.0.1",
              "--dashboard-agent-listen-port", "0", "--object-store-memory", "80000000",
              "--disable-usage-stats"]
    nodes: list[Node] = []
    try:
        t0 = time.perf_counter()
        head = Node(["--head", "--port", str(port), "--ray-client-server-port",
                     str(free_port()), "--include-dashboard", "false", *common],
                    ray_env, "head")
        nodes.append(head)
        head.wait_up()
        worker = Node(["--address", f"127.0.0.1:{port}", "--resources",
                       json.dumps({"cto_worker": 1}), *common],
                      ray_env | keys | {"CTO_HARNESS_CLUSTER_SCRATCH": str(scratch / "w")},
                      "worker")
        nodes.append(worker)
        worker.wait_up()
        up = time.perf_counter() - t0

        driver = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
        driver |= {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token),
                   "PYTHONPATH": str(ROOT)}
        probe = [sys.executable, "-c",
                 "import os,time; from core.jobs.cluster import connect, disconnect; "
                 f"t=time.perf_counter(); connect('127.0.0.1:{port}', os.environ); "
                 "print(time.perf_counter()-t); disconnect()"]
        connect_s = float(subprocess.run(probe, env=driver, capture_output=True, text=True,
                                         cwd=ROOT, check=True).stdout.split()[-1])
        # the cluster first: its worker's actor start is part of what is measured
        load_before = Path("/proc/loadavg").read_text().split()[:3]
        cluster_wall, cluster_out = job(driver, scratch / "cluster-runs", args.trials,
                                        "--cluster", f"127.0.0.1:{port}")
        local_wall, local_out = job(driver, scratch / "local-runs", args.trials)
        load_after = Path("/proc/loadavg").read_text().split()[:3]
        cluster_gaps = gaps(scratch / "cluster-runs")
        local_gaps = gaps(scratch / "local-runs")
    finally:
        for node in reversed(nodes):
            node.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    n = args.trials
    added = (cluster_wall - connect_s - local_wall) / n
    # The same with each job's own trial time taken out (the runs' report durations): what
    # is left is what the job adds around its runs, so two jobs on a loaded machine compare
    # without the runs' own spread (a demo trial varies by a second or more here).
    local_around = local_wall - local_out["summary"]["time_s"]
    cluster_around = cluster_wall - connect_s - cluster_out["summary"]["time_s"]
    print(f"cluster up (head + worker): {up:.1f} s (once, not per job)")
    print(f"local job:   {n} trials in {local_wall:.2f} s "
          f"({local_out['summary']['passes']} passed)")
    print(f"cluster job: {n} trials in {cluster_wall:.2f} s "
          f"({cluster_out['summary']['passes']} passed; nodes {cluster_out['summary']['nodes']})")
    print(f"connect + survey of the nodes: {connect_s * 1000:.0f} ms (once a job)")
    print(f"added per trial after it, by wall time: {added * 1000:.0f} ms "
          f"(ratio {cluster_wall / local_wall:.2f}x the local job)")
    print(f"around the runs (wall - the runs' own durations), per trial: local "
          f"{local_around / n * 1000:.0f} ms, cluster {cluster_around / n * 1000:.0f} ms: "
          f"added {(cluster_around - local_around) / n * 1000:.0f} ms (aim < 100 ms)")
    if cluster_gaps and local_gaps:
        c_med, l_med = statistics.median(cluster_gaps), statistics.median(local_gaps)
        print(f"between runs, after the first (median gap, end of one run to the start of "
              f"the next): local {l_med * 1000:.0f} ms, cluster {c_med * 1000:.0f} ms: added "
              f"{(c_med - l_med) * 1000:.0f} ms a trial (ratio {c_med / l_med:.2f}x; aim "
              f"< 100 ms); the cluster's first gap {cluster_gaps[0] * 1000:.0f} ms")
    print(f"load average (1/5/15 min) before {' '.join(load_before)}, after "
          f"{' '.join(load_after)}; {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
