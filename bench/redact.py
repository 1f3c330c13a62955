"""Throughput and line latency of the streaming redactor (issue 3's aim: >= half a plain copy).

A synthetic agent log (1% of lines hold a form of the endpoint) is copied in 64 KiB
chunks to a file twice in the same run, plainly and through the redactor: once read from
a file, once from a pipe fed by a child process (how the Case's output arrives). Then
every line of a log is fed alone to time how long the redactor keeps it.

    uv run python bench/redact.py [--size-mb 200]
"""

from __future__ import annotations

import argparse
import os
import random
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from core.secrets.redact import Redactor

CHUNK = 64 * 1024
WORDS = ("agent", "tool", "call", "edit", "patch", "file", "test", "passed", "failed", "retry",
         "model", "request", "response", "token", "workspace", "diff", "python", "error",
         "warning", "status", "latency_ms", "prompt", "completion")


def make_endpoint() -> str:
    return (f"https://case:{secrets.token_hex(6)}@spark-{secrets.token_hex(3)}.internal:8443"
            f"/v1?key={secrets.token_hex(8)}")


def synthetic_log(path: Path, size: int, redactor: Redactor) -> int:
    """Write about `size` bytes of log lines, 1% holding a form; return how many do."""
    rng = random.Random(7)
    forms = [f.value for f in redactor.forms]
    lines = []
    for i in range(20_000):
        words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 16)))
        line = f"{i:06d} INFO case: {words} {rng.random():.6f}"
        if i % 100 == 0:
            line += f" url={forms[(i // 100) % len(forms)]} done"
        lines.append(line + "\n")
    block = "".join(lines).encode()
    with path.open("wb") as fh:
        for _ in range(max(1, size // len(block))):
            fh.write(block)
    return path.stat().st_size


def copy_file(src: Path, dst: Path, transform: Callable[[bytes], bytes] | None) -> float:
    start = time.perf_counter()
    with src.open("rb", buffering=0) as fin, dst.open("wb", buffering=0) as fout:
        while chunk := fin.read(CHUNK):
            fout.write(transform(chunk) if transform else chunk)
    return time.perf_counter() - start


def copy_pipe(src: Path, dst: Path, transform: Callable[[bytes], bytes] | None) -> float:
    start = time.perf_counter()
    child = subprocess.Popen(["cat", str(src)], stdout=subprocess.PIPE, bufsize=0)
    assert child.stdout is not None
    with dst.open("wb", buffering=0) as fout:
        fd = child.stdout.fileno()
        while chunk := os.read(fd, CHUNK):
            fout.write(transform(chunk) if transform else chunk)
    child.wait()
    return time.perf_counter() - start


def throughput(redactor: Redactor, src: Path, dst: Path, size: int) -> None:
    for label, copy in (("file", copy_file), ("pipe", copy_pipe)):
        plain = min(copy(src, dst, None) for _ in range(2))
        best, masks = float("inf"), 0
        for _ in range(2):
            stream = redactor.stream()
            elapsed = copy(src, dst, stream.feed)
            with dst.open("ab") as fout:
                fout.write(stream.flush())
            best, masks = min(best, elapsed), stream.redactions
        print(f"{label:4s} source: plain copy {size / plain / 1e6:7.0f} MB/s   "
              f"redactor {size / best / 1e6:7.0f} MB/s   ratio {plain / best:.2f}   "
              f"({masks} masks)")


def latency(redactor: Redactor, src: Path) -> None:
    with src.open("rb") as fh:
        lines = [fh.readline() for _ in range(20_000)]
    stream = redactor.stream()
    times, held = [], 0
    for line in lines:
        start = time.perf_counter()
        out = stream.feed(line)
        times.append(time.perf_counter() - start)
        held += not out.endswith(b"\n")
    times.sort()
    print(f"line latency: median {statistics.median(times) * 1e6:.1f} us, "
          f"p99 {times[int(len(times) * 0.99)] * 1e6:.1f} us in feed(); "
          f"lines held for a later write: {held} of {len(lines)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=200, help="log size (default 200)")
    args = parser.parse_args()
    redactor = Redactor({"endpoint": make_endpoint()})
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp, "agent.log"), Path(tmp, "case.log")
        size = synthetic_log(src, args.size_mb * 1_000_000, redactor)
        print(f"{size / 1e6:.0f} MB synthetic log, {len(redactor.forms)} forms of the endpoint, "
              f"{CHUNK // 1024} KiB chunks, prefilter: "
              f"{redactor.prefilter}")
        throughput(redactor, src, dst, size)
        latency(redactor, src)
    return 0


if __name__ == "__main__":
    sys.exit(main())
