"""The loopback relay: the only door from the Case to the model.

The Case gets `http://127.0.0.1:PORT/v1` and a per-run token; the harness alone knows the
secret endpoint and forwards to it. On the way the relay refuses any model but the admitted
one, passes streams through chunk by chunk while reading which model answered and the token
usage, turns upstream failures into OpenAI-style errors with their text redacted, and
appends one `RelayRecord` per request to the ledger (backend/relay.jsonl).

Neither the upstream URL nor the token is ever logged, recorded or returned: uvicorn's
loggers are silenced and every text that came from upstream passes `redact`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import os
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import anyio
import httpx
import uvicorn
from pydantic import SecretStr
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from core.models import RelayRecord
from core.rundir import utcnow
from core.settings import verifies_tls

UPSTREAM_TIMEOUT = httpx.Timeout(connect=10.0, read=600.0, write=60.0, pool=60.0)
"""Generous reads: a large model may think for minutes before its first token."""

ERROR_BODY_LIMIT = 64 * 1024
MAX_BODY = 64 << 20
"""A request body beyond this is refused (413): far above any chat request, even with
images inline, and far below what would starve the harness of memory."""
EXCERPT_CHARS = 500
SSE_LINE_LIMIT = 1 << 20

_SILENT_LOGGING: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"null": {"class": "logging.NullHandler"}},
    "loggers": {
        name: {"handlers": ["null"], "propagate": False}
        for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")
    },
}
"""uvicorn's error log would print exceptions whose text may hold the upstream: drop it all."""


class LoopbackServer:
    """An ASGI app served by uvicorn on 127.0.0.1:<ephemeral> (and on a Unix socket at
    `uds`, when given) inside the running loop: silent and signal-free (uvicorn's `serve()`
    would swap in its own SIGINT/SIGTERM handlers; the harness owns those), and stopped at
    once rather than on uvicorn's 100 ms ticks (`main_loop` polls `should_exit`, and its
    `shutdown` sleeps 0.1 s before waiting for connections in 0.1 s steps)."""

    GRACE_S = 1.0
    STEP_S = 0.005

    def __init__(self, app: ASGIApp, *, uds: Path | None = None) -> None:
        self._app = app
        self._uds = uds
        self._bound_uds = False
        self._server: uvicorn.Server | None = None
        self.port = 0

    async def start(self) -> None:
        # Binding here (not in uvicorn) makes a bind failure a plain OSError, never the
        # sys.exit() uvicorn calls, and gives the port before the first request.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        sockets = [sock]
        if self._uds is not None:  # the same app, for a Case jailed in its own namespace
            unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sockets.append(unix)
            try:
                unix.bind(str(self._uds))
                self._bound_uds = True
                os.chmod(self._uds, 0o600)
            except OSError:
                for each in sockets:
                    each.close()
                self._unlink()
                raise
        config = uvicorn.Config(
            self._app,
            log_config=_SILENT_LOGGING,
            access_log=False,
            interface="asgi3",
            lifespan="off",
            server_header=False,
        )
        config.load()
        server = uvicorn.Server(config)
        server.lifespan = config.lifespan_class(config)
        try:
            await server.startup(sockets=sockets)
        except BaseException:
            for each in sockets:
                each.close()
            self._unlink()
            raise
        self._server = server

    async def stop(self) -> None:
        """Stop listening, let requests in flight finish within the grace time, then cancel
        what remains."""
        server, self._server = self._server, None
        if server is None:
            return
        for listening in server.servers:
            listening.close()  # and its socket, which it owns since startup
        state = server.server_state
        for connection in list(state.connections):
            connection.shutdown()
        deadline = time.monotonic() + self.GRACE_S
        while (state.connections or state.tasks) and time.monotonic() < deadline:
            await asyncio.sleep(self.STEP_S)
        for task in list(state.tasks):
            task.cancel()
        for listening in server.servers:
            await listening.wait_closed()
        self._unlink()

    def _unlink(self) -> None:
        """Remove the socket file this server made (and only that)."""
        if self._uds is not None and self._bound_uds:
            self._bound_uds = False
            with contextlib.suppress(FileNotFoundError):
                self._uds.unlink()


def openai_error(status: int, message: str, kind: str) -> JSONResponse:
    """The error shape OpenAI clients parse: {"error": {"message", "type", "code"}}."""
    return JSONResponse({"error": {"message": message, "type": kind, "code": status}}, status)


class _ClosingStream(StreamingResponse):
    """Closes its body iterator however the response ends (a Case that hangs up mid-stream
    included), so the generator's cleanup — writing the ledger line — always runs now."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self.body_iterator.aclose()  # type: ignore[attr-defined]


class SsePassage:
    """An SSE stream on its way to the Case: forwarded a whole line at a time (an event is
    no use to a client before its line ends), reading the models, usage and errors as it
    goes. An error event passes `redact` first, as every upstream error text does; the
    model's tokens pass verbatim."""

    def __init__(self, redact: Callable[[str], str]) -> None:
        self._redact = redact
        self._partial = b""
        self.models: list[str] = []
        self.usage: dict[str, Any] | None = None
        self.error: str | None = None
        self.events = 0

    def feed(self, data: bytes) -> bytes:
        """The complete lines of what has arrived so far, ready to forward."""
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        out = b"".join(self._line(line) + b"\n" for line in lines)
        if len(self._partial) > SSE_LINE_LIMIT:  # not SSE; don't hold an unbounded line
            out, self._partial = out + self._partial, b""
        return out

    def flush(self) -> bytes:
        """What is left when the stream ends without a final newline."""
        rest, self._partial = self._partial, b""
        return self._line(rest) if rest else b""

    def _line(self, line: bytes) -> bytes:
        if not line.startswith(b"data:"):
            return line
        try:
            event = json.loads(line[5:])
        except ValueError:
            return line
        if not isinstance(event, dict):
            return line
        self.events += 1
        model = event.get("model")
        if isinstance(model, str) and model and model not in self.models:
            self.models.append(model)
        if isinstance(event.get("usage"), dict):
            self.usage = event["usage"]
        if event.get("error") is None:
            return line
        self.error = self._redact(_error_message(event))
        return self._redact(line.decode("utf-8", errors="replace")).encode()


def _error_message(data: Any) -> str:
    """The `error.message` of an OpenAI-style error body, else the body as text."""
    if isinstance(data, dict):
        error = data.get("error", data.get("detail", data.get("message")))
        if isinstance(error, dict):
            error = error.get("message", error)
        if isinstance(error, str):
            return error
    return json.dumps(data, ensure_ascii=False)


def answered_model(models: list[str], asked: str | None) -> str | None:
    """The model the upstream says answered; any name but the asked one wins, so a swap
    in the middle of a stream is never hidden behind a first chunk that looked right."""
    other = [m for m in models if m != asked]
    return other[0] if other else (models[0] if models else None)


def _tokens(usage: Any, key: str) -> int | None:
    value = usage.get(key) if isinstance(usage, dict) else None
    return value if isinstance(value, int) else None


@dataclass
class _Pending:
    """What the relay learns about one request while it handles it."""

    method: str
    path: str
    started: float = field(default_factory=time.monotonic)
    model_asked: str | None = None
    models: list[str] = field(default_factory=list)
    status: int = 0
    stream: bool = False
    refused: str | None = None
    error: str | None = None
    usage: dict[str, Any] | None = None


class Relay:
    """An OpenAI-compatible relay on 127.0.0.1:<ephemeral> for one run's Case; also on the
    Unix socket `uds` when given, the way in for a Case in its own network namespace."""

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
    ) -> None:
        self._upstream = upstream
        self._api_key = api_key
        self.model = model
        self._expected_auth = f"Bearer {token}".encode()
        self._ledger_path = ledger
        self._redact = redact
        self._on_record = on_record
        self._timeout = timeout
        self._ledger: TextIO | None = None
        self._client: httpx.AsyncClient | None = None
        self._server = LoopbackServer(self._asgi, uds=uds)
        self.records: list[RelayRecord] = []

    def __repr__(self) -> str:
        return f"Relay(model={self.model!r}, port={self.port})"

    @property
    def port(self) -> int:
        return self._server.port

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def start(self) -> None:
        """Bind 127.0.0.1:0 and serve from the caller's running loop."""
        self._ledger_path.parent.mkdir(parents=True, exist_ok=True)
        self._ledger = self._ledger_path.open("a", encoding="utf-8")
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
        if self._ledger is not None:
            self._ledger.close()
            self._ledger = None

    # -- one request ----------------------------------------------------------------
    async def _asgi(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Every HTTP request, whatever its path or method, is answered and recorded."""
        if scope["type"] != "http":
            return
        response = await self._handle(Request(scope, receive))
        await response(scope, receive, send)

    async def _handle(self, request: Request) -> Response:
        pending = _Pending(method=request.method, path=self._redact(request.url.path))
        auth = request.headers.get("authorization", "").encode()
        if not hmac.compare_digest(auth, self._expected_auth):
            return self._refuse(pending, 401, "missing or wrong relay token", "invalid_api_key")
        if not request.url.path.startswith("/v1/"):
            return self._refuse(pending, 404, "the relay serves only /v1/*", "not_found")
        if request.method not in ("GET", "POST"):
            return self._refuse(pending, 405, f"method {request.method} is not relayed",
                                "invalid_request_error")
        body = await self._read_body(request)
        if body is None:
            return self._refuse(pending, 413, f"the request body is over {MAX_BODY >> 20} MiB",
                                "invalid_request_error")
        if request.method == "POST":
            refusal = self._check_model(pending, body)
            if refusal is not None:
                return refusal
        return await self._forward(request, body, pending)

    @staticmethod
    async def _read_body(request: Request) -> bytes | None:
        """The body, or None past MAX_BODY: a Case streaming gigabytes must not make the
        harness hold them (it would die, and with it the run's report)."""
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_BODY:
            return None
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY:
                return None
        return bytes(body)

    def _check_model(self, pending: _Pending, body: bytes) -> Response | None:
        try:
            data = json.loads(body)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            return self._refuse(pending, 400, "the request body is not a JSON object",
                                "invalid_request_error")
        asked = data.get("model")
        pending.model_asked = self._redact(str(asked)) if asked is not None else None
        pending.stream = data.get("stream") is True
        if asked != self.model:
            reason = f"model {pending.model_asked!r} is not admitted; only {self.model!r} is"
            return self._refuse(pending, 403, reason, "model_not_admitted")
        return None

    def _upstream_client(self) -> httpx.AsyncClient:
        """Made at the first request, not at start: a Case that asks nothing costs no TLS
        set-up and no client to close. trust_env=False: no proxy variable or .netrc may
        reroute or annotate the secret URL."""
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self._timeout, trust_env=False,
                                             verify=verifies_tls(self._upstream))
        return self._client

    async def _forward(self, request: Request, body: bytes, pending: _Pending) -> Response:
        client = self._upstream_client()
        rest = request.url.path.removeprefix("/v1/")
        url = f"{self._upstream.get_secret_value().rstrip('/')}/{rest}"
        if request.url.query:
            url += f"?{request.url.query}"
        headers = {"accept-encoding": "identity"}
        for name in ("content-type", "accept"):
            if name in request.headers:
                headers[name] = request.headers[name]
        if self._api_key is not None:
            headers["authorization"] = f"Bearer {self._api_key.get_secret_value()}"
        try:
            upstream = await client.send(
                client.build_request(request.method, url, content=body, headers=headers),
                stream=True,
            )
        except httpx.TimeoutException as exc:
            return self._fail(pending, 504, f"upstream timed out ({type(exc).__name__})")
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            return self._fail(pending, 502, f"upstream unreachable ({self._describe(exc)})")
        if upstream.status_code >= 300:
            return await self._upstream_error(upstream, pending)
        content_type = upstream.headers.get("content-type", "")
        if content_type.startswith("text/event-stream"):
            pending.stream, pending.status = True, upstream.status_code
            return _ClosingStream(
                self._pass_stream(upstream, pending),
                status_code=upstream.status_code,
                media_type="text/event-stream",
                headers={"cache-control": "no-cache"},
            )
        return await self._pass_whole(upstream, pending, content_type)

    async def _pass_whole(
        self, upstream: httpx.Response, pending: _Pending, content_type: str
    ) -> Response:
        try:
            raw = await upstream.aread()
        except httpx.HTTPError as exc:
            return self._fail(pending, 502, f"upstream broke off ({self._describe(exc)})")
        finally:
            await upstream.aclose()
        try:
            data = json.loads(raw)
        except ValueError:
            return self._fail(
                pending, 502,
                f"upstream answered HTTP {upstream.status_code} with a body that is not JSON",
            )
        if isinstance(data, dict):
            if isinstance(data.get("model"), str):
                pending.models.append(data["model"])
            pending.usage = data.get("usage") if isinstance(data.get("usage"), dict) else None
        pending.status = upstream.status_code
        self._finish(pending)
        return Response(raw, upstream.status_code, media_type=content_type or None)

    async def _pass_stream(
        self, upstream: httpx.Response, pending: _Pending
    ) -> AsyncIterator[bytes]:
        """Yield each line as it arrives; the ledger line is written when the stream ends,
        however it ends."""
        passage = SsePassage(self._redact)
        try:
            async for chunk in upstream.aiter_bytes():
                lines = passage.feed(chunk)
                if lines:
                    yield lines
            if rest := passage.flush():
                yield rest
        except httpx.HTTPError as exc:
            kind = "timed out" if isinstance(exc, httpx.TimeoutException) else "broke off"
            pending.error = f"upstream {kind} mid-stream ({self._describe(exc)})"
            yield _sse_error(pending.error)
        except BaseException:
            pending.error = "the Case closed the stream before it ended"
            raise
        finally:
            pending.models, pending.usage = passage.models, passage.usage
            if pending.error is None and passage.error is not None:
                pending.error = f"upstream error in stream: {self._excerpt(passage.error)}"
            if pending.error is None and not passage.events:
                pending.error = "upstream stream carried no parseable event"
            self._finish(pending)
            with anyio.CancelScope(shield=True):
                await upstream.aclose()

    async def _upstream_error(self, upstream: httpx.Response, pending: _Pending) -> Response:
        raw = b""
        try:
            async for chunk in upstream.aiter_bytes():
                raw += chunk
                if len(raw) >= ERROR_BODY_LIMIT:
                    break
        except httpx.HTTPError:
            pass  # the status alone is the news; a body cut short adds nothing
        finally:
            await upstream.aclose()
        text = raw.decode("utf-8", errors="replace")
        with contextlib.suppress(ValueError):
            text = _error_message(json.loads(text))
        status = upstream.status_code
        said = f": {self._excerpt(text)}" if text.strip() else ""
        message = f"upstream answered HTTP {status}{said}"
        if status in (401, 403):
            message += " (the relay's API key, CTO_HARNESS_CASE_LOCAL_API_KEY, was refused)"
        # A client error passes through as itself; server errors, redirects and a refused
        # key are the upstream's fault, so the Case sees a gateway error.
        relayed = status if 400 <= status < 500 and status not in (401, 403) else 502
        return self._fail(pending, relayed, message)

    # -- outcomes -------------------------------------------------------------------
    def _refuse(self, pending: _Pending, status: int, reason: str, kind: str) -> Response:
        pending.status, pending.refused = status, reason
        self._finish(pending)
        return openai_error(status, f"cto-harness relay refused: {reason}", kind)

    def _fail(self, pending: _Pending, status: int, message: str) -> Response:
        pending.status, pending.error = status, message
        self._finish(pending)
        return openai_error(status, f"cto-harness relay: {message}", "upstream_error")

    def _finish(self, pending: _Pending) -> None:
        record = RelayRecord(
            ts=utcnow(),
            method=pending.method,
            path=pending.path,
            model_asked=pending.model_asked,
            model_answered=self._redact_opt(answered_model(pending.models, pending.model_asked)),
            status=pending.status,
            latency_ms=round((time.monotonic() - pending.started) * 1000, 1),
            stream=pending.stream,
            refused=pending.refused,
            error=self._redact_opt(pending.error),
            prompt_tokens=_tokens(pending.usage, "prompt_tokens"),
            completion_tokens=_tokens(pending.usage, "completion_tokens"),
        )
        self.records.append(record)
        if self._ledger is not None:
            self._ledger.write(record.model_dump_json() + "\n")
            self._ledger.flush()
        if self._on_record is not None:
            self._on_record(record)

    def _redact_opt(self, text: str | None) -> str | None:
        return None if text is None else self._redact(text)

    def _excerpt(self, text: str) -> str:
        """Redact the whole text first, then cut: a cut could split a secret in two."""
        clean = " ".join(self._redact(text).split())
        return clean if len(clean) <= EXCERPT_CHARS else clean[:EXCERPT_CHARS] + "…"

    def _describe(self, exc: Exception) -> str:
        """An httpx error's class and redacted text; never its request (which holds the URL)."""
        text = self._excerpt(str(exc))
        return f"{type(exc).__name__}: {text}" if text else type(exc).__name__



def _sse_error(message: str) -> bytes:
    payload = {"error": {"message": f"cto-harness relay: {message}", "type": "upstream_error"}}
    return f"data: {json.dumps(payload)}\n\n".encode()
