"""Benchmark: what the relay adds to a streamed completion, as a real run has it.

A loopback upstream answers at once with the same streamed chat completion of 5,000 chunks
(vLLM's chunk shape, then usage and `[DONE]`, in one write). The same client
(bench/relay_case.py: a raw socket, no client library) reads it `--repeat` times:

1. directly from the upstream;
2. as the Case of `cto-harness run`, through the relay and the Case's network path (what
   main has: the sandbox's door to the relay; `--network host` (the sandbox off) measures
   the relay alone).

Then one stream of `--paced` chunks written one at a time, PACE_S apart, each stamped with
its send time: how long a chunk takes to reach the client each way (what an agent waits
on while a model generates).

Prints the median (and best) time to the first byte and to the last chunk each way, what
the relay adds to the first byte, and the cost it adds per chunk after it. On a shared
machine the median carries the scheduler's noise; the best is nearer the path's own cost.
Aims: <= 5 ms added to the first byte, <= 10 us a chunk. Black-box before this work (a new
connection each request): direct 2.6 ms / 27 ms, relayed 26 ms / 163 ms (27 us a chunk).

    uv run python bench/relay.py [--chunks 5000] [--repeat 20] [--paced 500]
                                 [--network isolated|host]
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

ROOT = Path(__file__).resolve().parent.parent
CLIENT = ROOT / "bench" / "relay_case.py"
MODEL = "qwen3.6-35b-a3b"
PACE_S = 0.002


def stream_payload(chunks: int) -> bytes:
    def chunk(delta: dict, finish: str | None = None, **extra: object) -> bytes:
        event = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 0,
                 "model": MODEL, "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                              "finish_reason": finish}], **extra}
        return b"data: " + json.dumps(event, separators=(",", ":")).encode() + b"\n\n"

    parts = [chunk({"role": "assistant", "content": ""})]
    parts += [chunk({"content": f" tok{i}"}) for i in range(chunks - 2)]
    parts.append(chunk({}, "stop"))
    usage = {"prompt_tokens": 1, "completion_tokens": chunks, "total_tokens": chunks + 1}
    parts.append(b"data: " + json.dumps({"id": "chatcmpl-bench", "object":
                 "chat.completion.chunk", "created": 0, "model": MODEL, "choices": [],
                 "usage": usage}).encode() + b"\n\n")
    parts.append(b"data: [DONE]\n\n")
    return b"".join(parts)


class Upstream:
    """Answers GET /v1/models, the readiness probe (400), and every streamed chat request
    with the whole payload in one write (chunked transfer, as vLLM streams)."""

    def __init__(self, payload: bytes) -> None:
        self.payload = payload
        self.port = 0
        self._ready = threading.Event()
        threading.Thread(target=asyncio.run, args=(self._serve(),), daemon=True).start()
        self._ready.wait(10)

    async def _serve(self) -> None:
        server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        await server.serve_forever()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                body = await reader.readexactly(length)
                paced = json.loads(body or b"{}").get("max_tokens")
                if isinstance(paced, int):
                    await self._paced(writer, paced)
                    continue
                writer.write(self._answer(head.split(b" ")[1], body))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def _paced(self, writer: asyncio.StreamWriter, chunks: int) -> None:
        """A stream as a model generates it: one chunk a write, PACE_S apart, each carrying
        the time it was sent (CLOCK_MONOTONIC, the same in every process)."""
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                     b"transfer-encoding: chunked\r\n\r\n")
        for _ in range(chunks):
            await asyncio.sleep(PACE_S)
            event = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 0,
                     "model": MODEL, "choices": [{"index": 0, "delta": {
                         "content": f"t{time.perf_counter() * 1000:.4f}"},
                         "logprobs": None, "finish_reason": None}]}
            data = b"data: " + json.dumps(event, separators=(",", ":")).encode() + b"\n\n"
            writer.write(b"%x\r\n" % len(data) + data + b"\r\n")
            await writer.drain()
        done = b"data: [DONE]\n\n"
        writer.write(b"%x\r\n" % len(done) + done + b"\r\n0\r\n\r\n")
        await writer.drain()

    def _answer(self, path: bytes, body: bytes) -> bytes:
        if path.endswith(b"/models"):
            data = json.dumps({"object": "list", "data": [{"id": MODEL, "object": "model"}]})
            return self._whole(200, data.encode())
        request = json.loads(body or b"{}")
        if not isinstance(request.get("messages"), list):
            return self._whole(400, b'{"error": {"message": "bad request"}}')
        return (b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                b"transfer-encoding: chunked\r\n\r\n"
                + b"%x\r\n" % len(self.payload) + self.payload + b"\r\n0\r\n\r\n")

    @staticmethod
    def _whole(status: int, data: bytes) -> bytes:
        return (b"HTTP/1.1 %d X\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
                % (status, len(data)) + data)


def figures(lines: list[str]) -> dict[str, float]:
    """Median and best of the client's figures: on a shared machine the median carries the
    scheduler's noise, the best is closest to the path's own cost."""
    rows = [json.loads(line.split(" ", 1)[1]) for line in lines if line.startswith("BENCH ")]
    if not rows:
        raise SystemExit("the client printed no figures")
    out: dict[str, float] = {"chunks": rows[0]["chunks"], "n": len(rows)}
    for key in ("ttfb_ms", "total_ms"):
        out[key] = statistics.median(r[key] for r in rows)
        out[f"best_{key}"] = min(r[key] for r in rows)
    return out


def paced_figures(lines: list[str]) -> dict[str, float]:
    row = next((json.loads(line.split(" ", 1)[1]) for line in lines
                if line.startswith("PACED ")), None)
    if row is None:
        raise SystemExit("the client printed no paced figures")
    return row


def direct(port: int, repeat: int, paced: int) -> tuple[dict[str, float], dict[str, float]]:
    out = subprocess.run([sys.executable, str(CLIENT), "--url", f"http://127.0.0.1:{port}/v1",
                          "--model", MODEL, "--repeat", str(repeat), "--paced", str(paced)],
                         capture_output=True, text=True, check=True).stdout
    return figures(out.splitlines()), paced_figures(out.splitlines())


def through_harness(port: int, repeat: int, paced: int, network: str, recording: bool = True,
                    inflight: bool = True) -> tuple[dict[str, float], dict[str, float], str]:
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        admission = tmp / "admission.json"
        admission.write_text(json.dumps({"admitted": [
            {"provider": "qwen-local", "model": MODEL, "status": "admitted"}]}))
        env = {k: v for k, v in os.environ.items() if not k.startswith("CTO_HARNESS_")}
        env.update({
            "CTO_HARNESS_CASE_LOCAL_BASE_URL": f"http://127.0.0.1:{port}/v1",
            "CTO_HARNESS_CASE_BIN": sys.executable,
            "CTO_HARNESS_CASE_ARGS": f"{CLIENT} --model {{model}} --repeat {repeat} "
                                     f"--paced {paced}",
            "CTO_HARNESS_CASE_MODEL_ADMISSION_FILE": str(admission),
            "CTO_HARNESS_RUNS_ROOT": str(tmp / "runs"),
            "CTO_HARNESS_CASE_SANDBOX": "off" if network == "host" else "on",
            # The client script: the sandbox shows the Case's interpreter, not this checkout.
            "CTO_HARNESS_CASE_SANDBOX_RO": str(CLIENT.parent),
        })
        if not recording:
            env["CTO_HARNESS_EXCHANGES_MAX_BYTES"] = "off"
        if not inflight:
            env["CTO_HARNESS_EXCHANGES_INFLIGHT"] = "off"
        proc = subprocess.run([sys.executable, "-m", "core.cli", "run", "--no-baseline",
                               "--json"], env=env, capture_output=True, text=True, cwd=ROOT)
        try:
            run_dir = Path(json.loads(proc.stdout)["run_dir"])
            report = json.loads((run_dir / "report.json").read_text())
        except (ValueError, KeyError, OSError):
            raise SystemExit(f"cto-harness run said: {proc.stdout} {proc.stderr}") from None
        log = (run_dir / "backend" / "case.log").read_text()
        path = f"{report.get('case_network')}: {report.get('case_network_detail')}"
        return figures(log.splitlines()), paced_figures(log.splitlines()), path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chunks", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--paced", type=int, default=500, metavar="CHUNKS")
    parser.add_argument("--network", default="isolated", choices=["isolated", "host"])
    parser.add_argument("--recording", default="on", choices=["on", "both"],
                        help="both: also a run with the exchanges' recording off "
                             "(CTO_HARNESS_EXCHANGES_MAX_BYTES=off), and one with only the "
                             "in-flight record off (CTO_HARNESS_EXCHANGES_INFLIGHT=off), to "
                             "print what each adds")
    args = parser.parse_args()
    upstream = Upstream(stream_payload(args.chunks))
    base, base_paced = direct(upstream.port, args.repeat, args.paced)
    relayed, relayed_paced, path = through_harness(upstream.port, args.repeat, args.paced,
                                                   args.network)
    if relayed["chunks"] != base["chunks"]:
        raise SystemExit(f"chunks differ: direct {base['chunks']}, relayed {relayed['chunks']}")
    added_first = relayed["ttfb_ms"] - base["ttfb_ms"]
    streaming = (relayed["total_ms"] - relayed["ttfb_ms"]) - (base["total_ms"] - base["ttfb_ms"])
    per_chunk_us = streaming * 1000 / base["chunks"]  # what it adds after the first byte
    best_first = relayed["best_ttfb_ms"] - base["best_ttfb_ms"]
    best_streaming = ((relayed["best_total_ms"] - relayed["best_ttfb_ms"])
                      - (base["best_total_ms"] - base["best_ttfb_ms"]))
    print(f"{base['chunks']} chunks, {args.repeat} requests on a kept-alive connection; "
          f"the Case's path: {path}")
    print("                 first byte   last chunk   (median; best)")
    for name, row in (("direct", base), ("relayed", relayed)):
        print(f"  {name:<9} {row['ttfb_ms']:8.2f} ms  {row['total_ms']:8.2f} ms   "
              f"({row['best_ttfb_ms']:.2f}; {row['best_total_ms']:.2f} ms)")
    print(f"  added     {added_first:8.2f} ms  {per_chunk_us:8.1f} us a chunk   "
          f"(best: {best_first:.2f} ms; {best_streaming * 1000 / base['chunks']:.1f} us)   "
          f"aims: <= 5 ms, <= 10 us")
    print(f"  ratio relayed/direct, last chunk: {relayed['total_ms'] / base['total_ms']:.1f}x")
    print(f"{args.paced} chunks sent one at a time, {PACE_S * 1000:g} ms apart: each chunk's "
          "delay from the upstream's write to the client (median; p90)")
    for name, row in (("direct", base_paced), ("relayed", relayed_paced)):
        print(f"  {name:<9} {row['median_ms']:8.3f} ms  ({row['p90_ms']:.3f} ms)")
    print(f"  added     {relayed_paced['median_ms'] - base_paced['median_ms']:8.3f} ms a chunk")
    if args.recording == "both":
        bare, bare_paced, _ = through_harness(upstream.port, args.repeat, args.paced,
                                              args.network, recording=False)
        rec = (relayed["total_ms"] - relayed["ttfb_ms"]) - (bare["total_ms"] - bare["ttfb_ms"])
        best = ((relayed["best_total_ms"] - relayed["best_ttfb_ms"])
                - (bare["best_total_ms"] - bare["best_ttfb_ms"]))
        print("the exchanges' recording, same run: relayed without it, then what it adds")
        print(f"  unrecorded {bare['ttfb_ms']:7.2f} ms  {bare['total_ms']:8.2f} ms   "
              f"({bare['best_ttfb_ms']:.2f}; {bare['best_total_ms']:.2f} ms)")
        print(f"  recording adds {rec * 1000 / base['chunks']:6.2f} us a chunk (best: "
              f"{best * 1000 / base['chunks']:.2f} us), "
              f"{relayed['ttfb_ms'] - bare['ttfb_ms']:.2f} ms to the first byte; paced "
              f"{relayed_paced['median_ms'] - bare_paced['median_ms']:.3f} ms a chunk   "
              "aim: <= 2 us a chunk")
        still, still_paced, _ = through_harness(upstream.port, args.repeat, args.paced,
                                                args.network, inflight=False)
        fly = (relayed["total_ms"] - relayed["ttfb_ms"]) - (still["total_ms"] - still["ttfb_ms"])
        print("the in-flight record (backend/exchanges/inflight.json), same run: recorded "
              "without it, then what it adds")
        print(f"  without   {still['ttfb_ms']:8.2f} ms  {still['total_ms']:8.2f} ms   "
              f"({still['best_ttfb_ms']:.2f}; {still['best_total_ms']:.2f} ms)")
        print(f"  in-flight adds {fly * 1000 / base['chunks']:6.2f} us a chunk, "
              f"{relayed['ttfb_ms'] - still['ttfb_ms']:.2f} ms to the first byte; paced "
              f"{relayed_paced['median_ms'] - still_paced['median_ms']:.3f} ms a chunk")

if __name__ == "__main__":
    main()
