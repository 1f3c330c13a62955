"""The loopback relay: the only door from the Case to the model.

The Case gets `http://127.0.0.1:PORT/v1` and a per-run token; the harness alone knows the
secret endpoint and forwards to it. On the way the relay lets through only the routes and
bodies `core.relay.rules` allows (refusing any model but the admitted one), passes answers
through — streams chunk by chunk — while `core.relay.passage` reads which model answered
and the token usage, turns upstream failures into OpenAI-style errors with their text
redacted, and `core.relay.ledger` appends one `RelayRecord` per request to the ledger
(backend/relay.jsonl), refusals included.

Neither the upstream URL nor the token is ever logged, recorded or returned: uvicorn's
loggers are silenced and every text that came from upstream passes `redact`.
"""

from __future__ import annotations

import hmac
import secrets
import ssl
from collections.abc import Callable
from pathlib import Path

import httpx
from pydantic import SecretStr
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from core.evidence.exchange_store import DEFAULT_MAX_BYTES, ExchangeStore
from core.evidence.models import RelayRecord
from core.evidence.rundir import utcnow
from core.relay.answers import ClosingStream, pass_stream, scrub, upstream_error
from core.relay.bodies import BodyRules, judge_body
from core.relay.inflight import InFlightWriter
from core.relay.inflight import enabled as inflight_enabled
from core.relay.ledger import Ledger, Pending
from core.relay.loopback import LoopbackServer
from core.relay.passage import (
    Api,
    parse_answer,
)
from core.relay.recording import Recorder
from core.relay.rules import (
    CONNECTION_LIMIT,
    MAX_BODY,
    NAME_CHARS,
    Load,
    Matched,
    Unmatched,
    clip,
    match_route,
    parse_body,
)
from core.secrets.stream import StreamRedactor
from core.settings import upstream_headers, upstream_url, verifies_tls

UPSTREAM_TIMEOUT = httpx.Timeout(connect=10.0, read=600.0, write=60.0, pool=60.0)
"""Generous reads: a large model may think for minutes before its first token."""

INSIDE_PORTS = (20000, 60000)


class Relay:
    """An OpenAI-compatible relay for one run's Case, with one door.

    With `uds` (the sandbox on) that door is the Unix socket, bound into the sandbox and
    served there on 127.0.0.1:`port` by the sandbox's own forwarder: the host has no TCP
    listener for another local account to find (a port in the world-readable trace was
    such a door). Without it (the sandbox off, the Case on the host) the door is
    127.0.0.1:<ephemeral>, which every local account can reach: the per-run token is what
    tells the Case from them, so a request without it is recorded `foreign` and fails the
    run."""

    def __init__(
        self,
        *,
        upstream: SecretStr,
        api_key: SecretStr | None,
        model: str,
        token: str,
        ledger: Path,
        redact: Callable[[str], str],
        on_record: Callable[[RelayRecord], None] | None = None,
        timeout: httpx.Timeout = UPSTREAM_TIMEOUT,
        uds: Path | None = None,
        load: Load | None = None,
        rules: BodyRules | None = None,
        exchanges: Path | None = None,
        exchanges_max_bytes: int = DEFAULT_MAX_BYTES,
        streams: Callable[[], StreamRedactor] | None = None,
        verify: bool | ssl.SSLContext | None = None,
        identity: dict[str, str] | None = None,
        via_gateway: bool = False,
    ) -> None:
        self._upstream = upstream
        self._verify = verifies_tls(upstream) if verify is None else verify
        self._identity = dict(identity or {})
        """Headers sent upstream with every request: the trial's job and run, to a gateway."""
        self._via_gateway = via_gateway
        """The upstream is a `cto-harness gateway`: its refusal of the token is the
        gateway's (`gateway:` in the record), not the endpoint's API key."""
        self._api_key = api_key
        self.model = model
        self._expected_auth = f"Bearer {token}".encode()
        self._redact = redact
        self._timeout = timeout
        self._load = load or Load()
        self._rules = rules or BodyRules()
        self._streams = streams
        """A fresh streaming redactor per answer (`Redactor.stream`); without it each
        forwarded block of whole lines passes `redact` alone."""
        self._client: httpx.AsyncClient | None = None
        self._server = LoopbackServer(self._asgi, uds=uds, connection_limit=CONNECTION_LIMIT,
                                      tcp=uds is None)
        self._inside_port = 0 if uds is None else INSIDE_PORTS[0] + secrets.randbelow(
            INSIDE_PORTS[1] - INSIDE_PORTS[0])
        """The port the sandbox's forwarder serves the socket on, in the sandbox's own
        network namespace (any port is free there); random, as an ephemeral one looks."""
        recorder = Recorder(ExchangeStore(exchanges, redact, exchanges_max_bytes),
                            InFlightWriter(exchanges, redact, streams)
                            if inflight_enabled() else None) \
            if exchanges is not None else None
        self.ledger = Ledger(ledger, redact, on_record, recorder)

    @property
    def records(self) -> list[RelayRecord]:
        return self.ledger.records

    def __repr__(self) -> str:
        return f"Relay(model={self.model!r}, port={self.port})"

    @property
    def port(self) -> int:
        """The port in the Case's `base_url`: the host's listener, or (with a Unix socket)
        the one the sandbox's forwarder listens on inside the sandbox."""
        return self._inside_port or self._server.port

    @property
    def tcp(self) -> bool:
        """Whether the host has a TCP listener (the sandbox off)."""
        return self._inside_port == 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def start(self) -> None:
        """Bind its door and serve from the caller's running loop."""
        self.ledger.open()
        try:
            await self._server.start()
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        await self._server.stop()
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        self.ledger.close()

    # -- one request ----------------------------------------------------------------
    async def _asgi(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Every HTTP request, whatever its path or method, is answered and recorded.
        (The server never upgrades to WebSocket, `ws="none"`: an upgrade request arrives
        here as HTTP and is refused as such.)"""
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        pending = Pending(method=clip(request.method, 16),
                          path=clip(self._redact(request.url.path), 4 * NAME_CHARS))
        if not self._load.enter():
            reason = (f"{self._load.max_in_flight} requests are in flight already; "
                      "retry when one has ended")
            refusal = self.ledger.refuse(pending, 429, reason, "rate_limit_exceeded")
            await refusal(scope, receive, send)
            return
        try:
            response = await self._handle(request, pending)
            await response(scope, receive, send)
        finally:
            self._load.leave()
            self._load.release(pending.held)

    def _admit(self, request: Request, pending: Pending) -> Response | None:
        """The refusal of a request without the run's token, or None to go on."""
        auth = request.headers.get("authorization", "").encode()
        if not hmac.compare_digest(auth, self._expected_auth):
            # Over TCP any local account may be knocking; over the socket only the Case can.
            pending.foreign = self.tcp
            return self.ledger.refuse(pending, 401, "missing or wrong relay token",
                                      "invalid_api_key")
        return None

    async def _handle(self, request: Request, pending: Pending) -> Response:
        refused = self._admit(request, pending)
        if refused is not None:
            return refused
        if request.headers.get("upgrade", "").strip().lower() == "websocket":
            return self.ledger.refuse(pending, 426, "WebSocket is not relayed; use plain "
                                      "HTTP (streams come as server-sent events)",
                                      "invalid_request_error")
        if request.headers.get("content-encoding", "identity").strip().lower() != "identity":
            return self.ledger.refuse(pending, 415, "compressed request bodies are not "
                                      "relayed; send the JSON as it is", "invalid_request_error")
        matched = match_route(request.method, request.scope.get("raw_path") or b"")
        takes_body = isinstance(matched, Matched) and matched.route.body
        has_body = (request.headers.get("content-length", "0") not in ("", "0")
                    or "transfer-encoding" in request.headers)
        body = b""
        if takes_body or has_body:
            read = await self._read_body(request, pending)
            if isinstance(read, Response):
                return read
            body = read
        refusal = self._check(matched, body, pending)
        if refusal is not None:
            return refusal
        assert isinstance(matched, Matched), "_check refuses every unmatched request"
        return await self._forward(matched, body, pending)

    async def _read_body(self, request: Request, pending: Pending) -> bytes | Response:
        """The body, held within MAX_BODY (413) and the relay's buffer cap (503): a Case
        streaming gigabytes, or many Cases' bodies at once, must not make the harness hold
        them (it would die, and with it the run's report). A declared length is counted
        before a byte is read; an undeclared one as it grows."""
        declared = request.headers.get("content-length", "")
        if declared.isdigit():
            if int(declared) > MAX_BODY:
                return self._too_large(pending)
            if not self._hold(pending, int(declared)):
                return self._busy(pending)
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            chunks.append(chunk)
            size += len(chunk)
            if size > MAX_BODY:
                return self._too_large(pending)
            if size > pending.held and not self._hold(pending, size - pending.held):
                return self._busy(pending)
        return b"".join(chunks)

    def _hold(self, pending: Pending, size: int) -> bool:
        if not self._load.hold(size):
            return False
        pending.held += size
        return True

    def _too_large(self, pending: Pending) -> Response:
        return self.ledger.refuse(pending, 413, f"the request body is over "
                                  f"{MAX_BODY >> 20} MiB", "invalid_request_error")

    def _busy(self, pending: Pending) -> Response:
        held = self._load.buffered >> 20
        return self.ledger.refuse(pending, 503, f"the relay holds {held} MiB of request "
                                  "bodies already; retry when a request has ended",
                                  "server_error")

    def _check(self, matched: Matched | Unmatched, body: bytes,
               pending: Pending) -> Response | None:
        """The model, on every request that names one, and then the route and the body.
        A body where none belongs, or on a path that is not relayed, is refused too, but
        its model is still read and judged: a `GET` naming another model is a fallback
        attempt, recorded as one. A body naming `model` twice is judged on each name."""
        parsed = parse_body(body) if body or (
            isinstance(matched, Matched) and matched.route.body) else None
        named = parsed.models if parsed is not None else []
        if isinstance(matched, Matched) and matched.path_model is not None:
            named = [*named, matched.path_model]
        asked = next((m for m in named if m != self.model), named[0] if named else None)
        if asked is not None:
            pending.model_asked = clip(self._redact(str(asked)))
        if parsed is not None and parsed.data is not None:
            pending.stream = parsed.data.get("stream") is True
        if isinstance(matched, Unmatched):
            kind = "not_found" if matched.status == 404 else "invalid_request_error"
            return self.ledger.refuse(pending, matched.status, matched.reason, kind)
        if asked is not None and asked != self.model:
            reason = f"model {pending.model_asked!r} is not admitted; only {self.model!r} is"
            return self.ledger.refuse(pending, 403, reason, "model_not_admitted")
        route = matched.route
        problem = parsed.problem if parsed is not None else None
        if not route.body and body:
            problem = f"{route.method} /v1/{route.path} takes no body"
        elif route.body and problem is None and asked is None:
            problem = f"the body names no model; only {self.model!r} is admitted"
        elif route.body and problem is None and parsed is not None and parsed.data is not None:
            problem = judge_body(route.path, parsed.data, self._rules)
        if problem is not None:
            return self.ledger.refuse(pending, 400, problem, "invalid_request_error")
        return None

    def _upstream_client(self) -> httpx.AsyncClient:
        """Made at the first request, not at start: a Case that asks nothing costs no TLS
        set-up and no client to close. trust_env=False: no proxy variable or .netrc may
        reroute or annotate the secret URL."""
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self._timeout, trust_env=False,
                                             verify=self._verify)
        return self._client

    async def _forward(self, matched: Matched, body: bytes, pending: Pending) -> Response:
        """To the upstream base plus the matched route's own path (never the Case's path
        or query), with the relay's own headers."""
        client = self._upstream_client()
        url = upstream_url(self._upstream, matched.upstream_path)
        headers = {"accept-encoding": "identity", "accept": "application/json, text/event-stream"}
        if body:
            headers["content-type"] = "application/json"
        headers.update(self._identity)
        headers = upstream_headers(self._api_key, **headers)
        api: Api = "responses" if matched.route.path == "responses" else "chat"
        if self.ledger.recorder is not None and matched.route.body:
            pending.capture = self.ledger.recorder.capture(api, body, utcnow(),
                                                           pending.model_asked)
        try:
            upstream = await client.send(
                client.build_request(matched.route.method, url, content=body or None,
                                     headers=headers),
                stream=True,
            )
        except httpx.TimeoutException as exc:
            return self.ledger.fail(pending, 504, f"upstream timed out ({type(exc).__name__})")
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            said = self.ledger.describe(exc)
            return self.ledger.fail(pending, 502, f"upstream unreachable ({said})")
        if upstream.status_code >= 300:
            return await upstream_error(upstream, pending, self.ledger, self._via_gateway)
        content_type = upstream.headers.get("content-type", "")
        if content_type.startswith("text/event-stream"):
            pending.stream, pending.status = True, upstream.status_code
            return ClosingStream(
                pass_stream(upstream, pending, api, self.ledger, self._redact, self.model,
                            self._streams),
                status_code=upstream.status_code,
                media_type="text/event-stream",
                headers={"cache-control": "no-cache"},
            )
        return await self._pass_whole(upstream, pending, content_type)

    async def _pass_whole(
        self, upstream: httpx.Response, pending: Pending, content_type: str
    ) -> Response:
        chunks: list[bytes] = []
        size = 0
        try:
            async for chunk in upstream.aiter_bytes():
                chunks.append(chunk)
                size += len(chunk)
                # A whole answer is held until it is complete: counted like request bodies.
                if size > MAX_BODY or not self._hold(pending, len(chunk)):
                    return self.ledger.fail(pending, 502, f"upstream answered with more than "
                                            f"{MAX_BODY >> 20} MiB, or than the relay can "
                                            "hold beside the requests in flight")
        except httpx.HTTPError as exc:
            said = self.ledger.describe(exc)
            return self.ledger.fail(pending, 502, f"upstream broke off ({said})")
        finally:
            await upstream.aclose()
        raw = b"".join(chunks)
        try:
            data, repeated = parse_answer(raw)
        except (ValueError, RecursionError):
            return self.ledger.fail(
                pending, 502,
                f"upstream answered HTTP {upstream.status_code} with a body that is not JSON",
            )
        pending.seen.see(data, repeated)
        pending.status = upstream.status_code
        if pending.capture is not None:
            pending.capture.answer = raw
        pending.bytes_out = len(raw)
        self.ledger.finish(pending)
        # A success passes the redactor like an error: the upstream's host in `/models`'
        # `root`, a `system_fingerprint` or the text must not reach the Case.
        return Response(scrub(raw, self._redact), upstream.status_code,
                        media_type=content_type or None)
