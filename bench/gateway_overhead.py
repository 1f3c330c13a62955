"""Benchmark: what a gateway adds between a run's relay and the endpoint.

The same loopback upstream as bench/relay.py (a streamed chat completion of `--chunks`
chunks in one write) is reached two ways in the same run, alternating request by request:

1. relay -> endpoint: a `Relay` forwarding to the upstream, as a local run's does;
2. relay -> gateway -> endpoint: a `Relay` forwarding to `cto-harness gateway serve` (its
   own process, real TLS pinned to its fingerprint, a job token), which forwards to the
   same upstream, as a cluster trial's relay does.

Both relays serve from one background event loop; one client (httpx, the run's token)
reads each stream whole. Prints the median and best time to the first byte and to the last,
what the gateway adds to the first byte, and what it adds per chunk after it. Aims (issue
20): 2 ms to the first byte, 10 us a chunk. Measured when it landed (2 cores, load average
~5 from other work, --repeat 40): first byte +8.3 ms median (+3.3 ms best), +3.9 us a
chunk; plain http instead of TLS made no measurable difference (the cost is the extra
process hop and its second pass through the relay's rules, scheduled on loaded cores).

Where it goes (session 7, load average ~5 on 2 cores, --chunks 2 --repeat 40, four runs
alternating TLS and plain http): +2.6 to +5.8 ms median over TLS, +2.1 to +3.9 ms over plain
http, the spread being the machine's load from one minute to the next; the gateway process's
own CPU is 1.8-2.8 ms a request (printed below), TLS ~0.3-0.5 ms of it. A profile of the
serving process puts most of a request's wall time in `socket.send` and `epoll` — not the
send's cost (13 us a round trip here) but the receiver woken and run first on a busy core:
each hop is at least a request and an answer between processes, each a wake-up. Slicing a
stream's first read so its first line goes on sooner made no measurable difference (the
first read here is small), so it was not kept; nor was sending each upstream request in one
write (httpcore writes a request's head and body apart: its network backend wrapped to hold
writes until the answer is read): three runs each way alternating with the code without it,
the gateway's context switches a request were 3.2-4.0 with it and 3.6-4.5 without, its added
first byte 5.3-19.3 ms with and 3.0-7.7 ms without — the load's swing, not the change.

    uv run python bench/gateway_overhead.py [--chunks 5000] [--repeat 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from pydantic import SecretStr

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from relay import MODEL, Upstream, stream_payload  # noqa: E402  (bench/relay.py)

from core.relay.server import Relay  # noqa: E402
from core.settings.gateway import JOB_HEADER, RUN_HEADER, pinned_context  # noqa: E402


def start_gateway(upstream_port: int, state: Path,
                  plain: bool) -> tuple[subprocess.Popen[str], dict]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CTO_HARNESS_")}
    env["CTO_HARNESS_CASE_LOCAL_BASE_URL"] = f"http://127.0.0.1:{upstream_port}/v1"
    env["PYTHONPATH"] = str(ROOT)
    cli = [sys.executable, "-m", "core.cli", "gateway"]
    token = subprocess.run([*cli, "token", "--job", "bench", "--state", str(state), "--json"],
                           env=env, capture_output=True, text=True, check=True, cwd=ROOT)
    token_file = json.loads(token.stdout)["token_file"]
    proc = subprocess.Popen([*cli, "serve", "--listen", "127.0.0.1:0", "--state", str(state),
                             "--json", *(["--insecure-plain-http"] if plain else [])],
                            env=env, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert proc.stdout is not None
    facts = json.loads(proc.stdout.readline())
    facts["token"] = Path(token_file).read_text().strip()
    return proc, facts


class Loop:
    """An event loop in a thread, serving the relays while the client reads from them."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()

    def run(self, coro: object) -> object:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(60)  # type: ignore


def make_relay(upstream: str, ledger: Path, token: str, api_key: SecretStr | None = None,
               **kw: object) -> Relay:
    return Relay(upstream=SecretStr(upstream), api_key=api_key, model=MODEL, token=token,
                 ledger=ledger, redact=lambda text: text, **kw)  # type: ignore[arg-type]


def cpu_s(pid: int) -> float:
    """A process's user + system CPU seconds so far (/proc: no profiler in its way)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wakeups(pid: int) -> int:
    """A process's context switches so far (each a time it waited, or was made to)."""
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    return sum(int(line.split()[1]) for line in status if "ctxt_switches" in line)


def timed(client: httpx.Client, url: str, token: str) -> tuple[float, float, int]:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "stream": True}
    started = time.perf_counter()
    first = 0.0
    size = 0
    with client.stream("POST", url, json=body,
                       headers={"authorization": f"Bearer {token}"}) as answer:
        for chunk in answer.iter_raw():
            if not first:
                first = time.perf_counter()
            size += len(chunk)
    assert answer.status_code == 200, answer.status_code
    return (first - started) * 1000, (time.perf_counter() - started) * 1000, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chunks", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--insecure-plain-http", action="store_true",
                        help="the gateway without TLS: how much of its cost is TLS")
    args = parser.parse_args()
    upstream = Upstream(stream_payload(args.chunks))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        proc, gw = start_gateway(upstream.port, folder / "gateway", args.insecure_plain_http)
        try:
            loop = Loop()
            token = "bench-run-token"
            direct = make_relay(f"http://127.0.0.1:{upstream.port}/v1", folder / "a.jsonl",
                                token)
            via = make_relay(gw["url"], folder / "b.jsonl", token,
                             api_key=SecretStr(gw["token"]),
                             verify=pinned_context(gw["fingerprint"]) if gw["fingerprint"]
                             else False, via_gateway=True,
                             identity={JOB_HEADER: "bench", RUN_HEADER: "bench-run"})
            for relay in (direct, via):
                loop.run(relay.start())
            rows: dict[str, list[tuple[float, float, int]]] = {"relay": [], "gateway": []}
            gateway_cpu = 0.0
            gateway_wakeups = 0
            with httpx.Client(timeout=60, trust_env=False) as client:
                for n in range(args.repeat + 1):
                    for name, relay in (("relay", direct), ("gateway", via)):
                        cpu, woken = cpu_s(proc.pid), wakeups(proc.pid)
                        got = timed(client, f"{relay.base_url}/chat/completions", token)
                        if n and name == "gateway":
                            gateway_cpu += cpu_s(proc.pid) - cpu
                            gateway_wakeups += wakeups(proc.pid) - woken
                        if n:  # the first of each warms connections and TLS up
                            rows[name].append(got)
            for relay in (direct, via):
                loop.run(relay.stop())
        finally:
            proc.terminate()
            proc.wait(30)
    out = {}
    for name, got in rows.items():
        firsts, lasts = [g[0] for g in got], [g[1] for g in got]
        out[name] = {"first_ms_median": statistics.median(firsts), "first_ms_best": min(firsts),
                     "last_ms_median": statistics.median(lasts), "last_ms_best": min(lasts),
                     "bytes": got[0][2]}
    a, b = out["relay"], out["gateway"]
    first_added = b["first_ms_median"] - a["first_ms_median"]
    stream_added = (b["last_ms_median"] - b["first_ms_median"]) - (
        a["last_ms_median"] - a["first_ms_median"])
    per_chunk_us = stream_added * 1000 / args.chunks
    print(f"chunks {args.chunks}, repeat {args.repeat}, gateway over "
          f"{'plain http' if args.insecure_plain_http else 'TLS'} (median / best, ms)")
    for name in ("relay", "gateway"):
        r = out[name]
        print(f"  {name:8} first byte {r['first_ms_median']:7.2f} / {r['first_ms_best']:7.2f}"
              f"   last byte {r['last_ms_median']:8.2f} / {r['last_ms_best']:8.2f}")
    print(f"gateway adds to the first byte: {first_added:.2f} ms (aim 2 ms)")
    print(f"gateway adds per chunk after it: {per_chunk_us:.1f} us (aim 10 us)")
    print(f"the gateway process's own CPU a request (its whole stream): "
          f"{gateway_cpu / args.repeat * 1000:.1f} ms, its context switches "
          f"{gateway_wakeups / args.repeat:.1f}; load average "
          f"{' '.join(Path('/proc/loadavg').read_text().split()[:3])} on {os.cpu_count()} cores")
    print(json.dumps({"first_byte_added_ms": round(first_added, 3),
                      "per_chunk_added_us": round(per_chunk_us, 2), **out}))


if __name__ == "__main__":
    main()
