"""A relay on loopback in front of a scripted upstream, and a client holding the Case's token:
the rig the relay tests (forwarding, responses, rules) all stand on."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
from pydantic import SecretStr

from core.evidence.models import RelayRecord
from core.relay.rules import Load
from core.relay.server import Relay
from core.secrets.redact import Redactor
from core.standins.endpoint import ScriptedEndpoint

MODEL = "qwen3.6-35b-a3b"


def chat(model: str = MODEL, stream: bool = False) -> dict:
    data: dict = {"model": model, "messages": [{"role": "user", "content": "write slugify"}]}
    if stream:
        data.update(stream=True, stream_options={"include_usage": True})
    return data


def masker(secret_url: str) -> Callable[[str], str]:
    return Redactor({"endpoint": secret_url}).redact


def ledger_lines(path: Path) -> list[RelayRecord]:
    return [RelayRecord.model_validate_json(line) for line in path.read_text().splitlines()]


class Rig:
    """An upstream, a relay in front of it, and a client holding the Case's token."""

    def __init__(self, upstream: ScriptedEndpoint, relay: Relay, token: str, ledger: Path,
                 seen: list[RelayRecord]) -> None:
        self.upstream, self.relay, self.token, self.ledger, self.seen = (
            upstream, relay, token, ledger, seen)
        self.hostport = f"127.0.0.1:{upstream.port}"

    def client(self, token: str | None = None, timeout: float = 10) -> httpx.AsyncClient:
        headers = {"authorization": f"Bearer {token or self.token}"}
        return httpx.AsyncClient(base_url=self.relay.base_url, headers=headers, timeout=timeout)


async def make_rig(tmp_path: Path, upstream: ScriptedEndpoint, *, api_key: str | None = None,
                   timeout: httpx.Timeout | None = None, load: Load | None = None
                   ) -> AsyncIterator[Rig]:
    token = secrets.token_hex(16)
    ledger = tmp_path / "backend" / "relay.jsonl"
    seen: list[RelayRecord] = []
    extra = {"timeout": timeout} if timeout is not None else {}
    extra |= {"load": load} if load is not None else {}
    relay = Relay(upstream=SecretStr(upstream.base_url),
                  api_key=SecretStr(api_key) if api_key else None, model=MODEL, token=token,
                  ledger=ledger, redact=masker(upstream.base_url), on_record=seen.append,
                  **extra)
    await relay.start()
    try:
        yield Rig(upstream, relay, token, ledger, seen)
    finally:
        await relay.stop()
