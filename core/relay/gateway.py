"""`cto-harness gateway serve`: the relay's upstream side as a service on the endpoint's host.

Workers' relays (a Ray job's trials, or any run with CTO_HARNESS_GATEWAY_URL) forward here
instead of to the endpoint, which only this host knows. The gateway is a `Relay` with another
door: a LAN address over TLS (its self-signed certificate pinned by the workers) that admits
the bearer tokens it issued for a job (core/relay/gateway_state.py) instead of one run's
token. Everything else is the relay's own code, not a copy — the routes and model check
(`core.relay.rules`), the body rules (`judge_body`), answers passed through chunk by chunk
and redacted of the endpoint's forms, upstream failures turned into errors that never quote
it — so a request a run's relay forwards is judged twice by the same rules.

Its ledger (`ledger.jsonl` in the state folder, one `GatewayRecord` a request) says which
job (the token's) and which trial (the relay's X-Cto-Run) sent what; `validate
--gateway-ledger` checks it against a run's own relay ledger.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path

from pydantic import SecretStr
from starlette.requests import Request
from starlette.responses import Response

from core.evidence.gateway_check import GatewayRecord
from core.evidence.models import RelayRecord
from core.relay.bodies import BodyRules
from core.relay.gateway_state import LEDGER, GatewayStateError, Tokens
from core.relay.ledger import Ledger, Pending
from core.relay.loopback import LoopbackServer
from core.relay.rules import NAME_CHARS, Load, clip
from core.relay.server import Relay
from core.secrets.stream import StreamRedactor
from core.settings.gateway import JOB_HEADER, RUN_HEADER
from core.term import visible

GATEWAY_IN_FLIGHT = 256
"""Requests a gateway handles at once: it serves a whole job's trials (tens at once, each a
handful of requests), where one relay serves one Case. Past it, the recorded 429."""
GATEWAY_CONNECTIONS = 1024
"""uvicorn's backstop, well above GATEWAY_IN_FLIGHT (as the relay's is above its own)."""


class GatewayLedger(Ledger):
    """The relay's ledger, writing `GatewayRecord` lines and keeping none in memory (a
    gateway serves for days)."""

    WHO = "gateway"

    def __init__(self, path: Path, redact: Callable[[str], str], transport: str) -> None:
        super().__init__(path, redact)
        self._transport = transport

    def finish(self, pending: Pending) -> None:
        super().finish(pending)
        self.records.clear()

    def line(self, record: RelayRecord, pending: Pending) -> str:
        return GatewayRecord(
            ts=record.ts, job=pending.job, run=pending.run,
            sent_job=pending.sent_job if pending.sent_job != pending.job else None,
            method=record.method, path=record.path, model=record.model_asked,
            model_answered=record.model_answered, status=record.status,
            bytes=pending.bytes_out, latency_ms=record.latency_ms, stream=record.stream,
            refused=record.refused, error=record.error,
            transport=self._transport,  # type: ignore[arg-type]
        ).model_dump_json()


class Gateway(Relay):
    """A relay whose door is `host:port` (TLS with `tls`=(cert, key), or plain http as the
    explicit opt-out) and whose tokens are the job tokens in `state`."""

    def __init__(self, *, upstream: SecretStr, api_key: SecretStr | None, model: str,
                 state: Path, host: str, port: int, tls: tuple[Path, Path] | None,
                 redact: Callable[[str], str], rules: BodyRules | None = None,
                 streams: Callable[[], StreamRedactor] | None = None) -> None:
        super().__init__(upstream=upstream, api_key=api_key, model=model,
                         token=secrets.token_urlsafe(32),  # never used: _admit is the door
                         ledger=state / LEDGER, redact=redact, rules=rules, streams=streams,
                         load=Load(max_in_flight=GATEWAY_IN_FLIGHT))
        self.ledger = GatewayLedger(state / LEDGER, redact,
                                    "tls" if tls is not None else "plain-http")
        self._tokens = Tokens(state)
        self._server = LoopbackServer(self._asgi, connection_limit=GATEWAY_CONNECTIONS,
                                      host=host, port=port, tls=tls)
        self.tls = tls is not None

    def __repr__(self) -> str:
        return f"Gateway(model={self.model!r}, port={self.port})"

    def _said(self, request: Request, header: str) -> str | None:
        value = request.headers.get(header)
        return clip(visible(self._redact(value)), NAME_CHARS) if value else None

    def _admit(self, request: Request, pending: Pending) -> Response | None:
        pending.run = self._said(request, RUN_HEADER)
        pending.sent_job = self._said(request, JOB_HEADER)
        try:
            job, reason = self._tokens.admit(request.headers.get("authorization", ""))
        except GatewayStateError as exc:
            job, reason = None, f"the gateway cannot read its tokens ({exc})"
        if reason is not None:
            return self.ledger.refuse(pending, 401, reason, "invalid_api_key")
        pending.job = job
        return None
