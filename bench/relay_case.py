#!/usr/bin/env python3
"""The bench's client, run directly and as the Case of `cto-harness run` (bench/relay.py).

Stdlib only, like any foreign Case. Makes `--repeat` streamed chat completions over a raw
socket (no client library's cost in the figures) and prints one JSON line a request: the
time to the first `data:` byte and to the `[DONE]` line, and the number of chunks seen.
The URL and token come from `--url`/`--token`, else OPENAI_BASE_URL / OPENAI_API_KEY (as
the harness gives them to a Case).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import time
from urllib.parse import urlsplit


def one(host: str, port: int, path: str, token: str, model: str) -> dict[str, float | int]:
    body = json.dumps({"model": model, "stream": True,
                       "messages": [{"role": "user", "content": "go"}]}).encode()
    head = (f"POST {path}/chat/completions HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
    started = time.perf_counter()
    with socket.create_connection((host, port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(head + body)
        buf = bytearray()
        first = None
        while True:
            data = sock.recv(1 << 16)
            if not data:
                break
            buf += data
            if first is None and b"data:" in buf:
                first = time.perf_counter()
            if buf.find(b"[DONE]", max(0, len(buf) - len(data) - 8)) != -1:
                break
        done = time.perf_counter()
    if first is None or b"[DONE]" not in buf:
        raise SystemExit(f"no complete stream: {bytes(buf[:300])!r}")
    return {"ttfb_ms": (first - started) * 1000, "total_ms": (done - started) * 1000,
            "chunks": buf.count(b"data: {")}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default=os.environ.get("OPENAI_BASE_URL"))
    parser.add_argument("--token", default=os.environ.get("OPENAI_API_KEY", "none"))
    parser.add_argument("--model", required=True)
    parser.add_argument("--repeat", type=int, default=20)
    args, _ = parser.parse_known_args()
    parts = urlsplit(args.url)
    for _ in range(args.repeat):
        result = one(parts.hostname or "127.0.0.1", parts.port or 80,
                     parts.path.rstrip("/"), args.token, args.model)
        sys.stdout.write("BENCH " + json.dumps(result) + "\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
