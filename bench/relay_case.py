#!/usr/bin/env python3
"""The bench's client, run directly and as the Case of `cto-harness run` (bench/relay.py).

Stdlib only, like any foreign Case. Makes `--repeat` streamed chat completions over one kept-alive
raw socket (no client library's cost in the figures), as an agent's client reuses its
connection and prints one JSON line a request: the
time to the first `data:` byte and to the `[DONE]` line, and the number of chunks seen.
The URL and token come from `--url`/`--token`, else OPENAI_BASE_URL / OPENAI_API_KEY (as
the harness gives them to a Case).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import statistics
import sys
import time
from urllib.parse import urlsplit

STAMP = re.compile(rb'"content":"t([0-9.]+)"')


def one(sock: socket.socket, host: str, port: int, path: str, token: str,
        model: str) -> dict[str, float | int]:
    """One streamed request on a kept-alive connection, as an agent's client makes it."""
    body = json.dumps({"model": model, "stream": True,
                       "messages": [{"role": "user", "content": "go"}]}).encode()
    head = (f"POST {path}/chat/completions HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    started = time.perf_counter()
    sock.sendall(head + body)
    buf = bytearray()
    first = None
    while True:
        data = sock.recv(1 << 16)
        if not data:
            raise SystemExit("the server closed the connection")
        buf += data
        if first is None and b"data:" in buf:
            first = time.perf_counter()
        # the end of a chunked body, after the [DONE] line
        if buf.endswith(b"\r\n0\r\n\r\n") and b"[DONE]" in buf[-64:]:
            break
    done = time.perf_counter()
    assert first is not None
    return {"ttfb_ms": (first - started) * 1000, "total_ms": (done - started) * 1000,
            "chunks": buf.count(b"data: {")}


def paced(sock: socket.socket, host: str, port: int, path: str, token: str, model: str,
          chunks: int) -> list[float]:
    """One stream whose chunks come one at a time, each stamped with when the upstream sent
    it: how long each took to arrive, in ms."""
    body = json.dumps({"model": model, "stream": True, "max_tokens": chunks,
                       "messages": [{"role": "user", "content": "go"}]}).encode()
    sock.sendall((f"POST {path}/chat/completions HTTP/1.1\r\nHost: {host}:{port}\r\n"
                  f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
                  f"Content-Length: {len(body)}\r\n\r\n").encode() + body)
    delays: list[float] = []
    pending, tail, done = b"", b"", False
    while True:
        data = sock.recv(1 << 16)
        now = time.perf_counter() * 1000
        if not data:
            raise SystemExit("the server closed the connection")
        pending += data
        cut = pending.rfind(b"\n") + 1
        delays += [now - float(stamp) for stamp in STAMP.findall(pending, 0, cut)]
        done = done or b"[DONE]" in pending[:cut]
        pending, tail = pending[cut:], (tail + data)[-16:]
        if done and tail.endswith(b"\r\n0\r\n\r\n"):
            return delays


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default=os.environ.get("OPENAI_BASE_URL"))
    parser.add_argument("--token", default=os.environ.get("OPENAI_API_KEY", "none"))
    parser.add_argument("--model", required=True)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--close", action="store_true")
    parser.add_argument("--paced", type=int, default=0, metavar="CHUNKS",
                        help="then one stream of CHUNKS chunks sent one at a time")
    args, _ = parser.parse_known_args()
    parts = urlsplit(args.url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    sock = None
    for _ in range(args.repeat):
        if sock is None or args.close:
            if sock is not None:
                sock.close()
            sock = socket.create_connection((host, port))
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        result = one(sock, host, port, parts.path.rstrip("/"), args.token, args.model)
        sys.stdout.write("BENCH " + json.dumps(result) + "\n")
        sys.stdout.flush()
    if args.paced:
        assert sock is not None
        delays = paced(sock, host, port, parts.path.rstrip("/"), args.token, args.model,
                       args.paced)
        sys.stdout.write("PACED " + json.dumps({
            "chunks": len(delays), "median_ms": statistics.median(delays),
            "p90_ms": sorted(delays)[int(len(delays) * 0.9)]}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
