"""The relay's memory stays bounded however many large bodies a Case sends at once.

The relay runs in a process of its own (tests/support/relay_process.py) so its peak resident
memory (VmHWM in /proc/PID/status: the kernel's own high-water mark, never a sample that
could miss a peak) is its alone. 24 clients each send a 60 MiB body at once to an upstream
that accepts and never reads, so what the relay takes in it must hold. Before the caps the
relay held all 24 (1.5 GiB); now the bodies past the buffer cap are refused (503) before
they are read, and recorded.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from core.evidence.models import RelayRecord
from core.relay.rules import MAX_BUFFERED
from tests.support.harness import ROOT

MODEL = "qwen3.6-35b-a3b"
CLIENTS = 24
BODY_MIB = 60
PIECE = 1 << 20


def status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise AssertionError(f"{field} not in /proc/{pid}/status")


@pytest.fixture
async def stalled_upstream() -> AsyncIterator[str]:
    """Accepts connections and never reads a byte or answers."""
    held: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}/v1"
    for writer in held:
        writer.close()
    server.close()


def body_of(size: int) -> bytes:
    head = f'{{"model": "{MODEL}", "messages": [{{"role": "user", "content": "'.encode()
    tail = b'"}]}'
    return head + b"x" * (size - len(head) - len(tail)) + tail


async def send_large(port: int, token: str, body: memoryview) -> int | None:
    """Send the body in pieces while watching for an early answer; the answer's status,
    or None when the whole body went in and no answer came (the relay holds it)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"POST /v1/chat/completions HTTP/1.1\r\nHost: relay\r\n"
                 f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
                 f"Content-Length: {len(body)}\r\n\r\n".encode())
    answer = asyncio.ensure_future(reader.readuntil(b"\r\n\r\n"))
    try:
        for at in range(0, len(body), PIECE):
            if answer.done():
                break
            writer.write(body[at:at + PIECE])
            await writer.drain()
        done, _ = await asyncio.wait({answer}, timeout=5)
        return int(answer.result().split(b" ", 2)[1]) if done else None
    except (ConnectionError, asyncio.IncompleteReadError):
        done, _ = await asyncio.wait({answer}, timeout=5)
        return int(answer.result().split(b" ", 2)[1]) if done and not answer.exception() else 0
    finally:
        answer.cancel()
        writer.close()


async def test_many_large_bodies_at_once_are_refused_not_held(
        tmp_path: Path, stalled_upstream: str) -> None:
    if not Path("/proc/self/status").exists():
        if os.environ.get("CI") == "true":
            pytest.fail("no /proc here: the relay's memory bound cannot be measured")
        pytest.skip("no /proc here: the relay's memory bound cannot be measured")
    token = secrets.token_hex(16)
    ledger = tmp_path / "relay.jsonl"
    env = {**os.environ, "RELAY_UPSTREAM": stalled_upstream, "RELAY_TOKEN": token,
           "RELAY_MODEL": MODEL, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "support" / "relay_process.py"),
                             str(ledger)], env=env, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        _, pid, port = (await asyncio.to_thread(proc.stdout.readline)).split()
        before = status_kib(int(pid), "VmRSS")
        body = memoryview(body_of(BODY_MIB << 20))
        statuses = await asyncio.gather(
            *(send_large(int(port), token, body) for _ in range(CLIENTS)))
        peak_mib = (status_kib(int(pid), "VmHWM") - before) / 1024
    finally:
        proc.communicate(timeout=30)
    records = [RelayRecord.model_validate_json(line)
               for line in ledger.read_text().splitlines()]
    refused = [r for r in records if r.status == 503]
    accepted = statuses.count(None)
    # What fits under the buffer cap is held (it went upstream); the rest is refused.
    assert accepted <= MAX_BUFFERED // (BODY_MIB << 20), statuses
    assert statuses.count(503) == len(refused) >= CLIENTS - accepted - 1, statuses
    assert all(r.refused and "MiB of request bodies" in r.refused for r in refused)
    # Each held body costs at most ~3x its size (the body, the parse's text, the socket's
    # send buffer); the 24 bodies together are 1,440 MiB.
    bound = 3 * (MAX_BUFFERED >> 20) + 64
    print(json.dumps({"peak_growth_mib": round(peak_mib), "bound_mib": bound,
                      "statuses": statuses}))
    assert peak_mib < bound, f"relay grew {peak_mib:.0f} MiB (bound {bound} MiB)"
