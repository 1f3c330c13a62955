"""What the relay passes back to the Case from upstream: a stream chunk by chunk (whole
lines, redacted, the answering model and usage read on the way), an upstream failure as an
OpenAI-style error with its text redacted, and a body's secret forms masked. The relay
(core/relay/server.py) and the gateway share them through `Relay._forward`.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Callable
from functools import partial

import anyio
import httpx
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from core.relay.ledger import Ledger, Pending
from core.relay.passage import Api, SsePassage, error_message, sse_error
from core.secrets.stream import StreamRedactor

ERROR_BODY_LIMIT = 64 * 1024


class ClosingStream(StreamingResponse):
    """Closes its body iterator however the response ends (a Case that hangs up mid-stream
    included), so the generator's cleanup — writing the ledger line — always runs now."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self.body_iterator.aclose()  # type: ignore[attr-defined]


def scrub(raw: bytes, redact: Callable[[str], str]) -> bytes:
    """`raw` with every secret form masked; the same bytes when there was none."""
    text = raw.decode("utf-8", errors="replace")
    safe = redact(text)
    return raw if safe == text else safe.encode("utf-8")


async def pass_stream(
    upstream: httpx.Response, pending: Pending, api: Api, ledger: Ledger,
    redact: Callable[[str], str], model: str,
    streams: Callable[[], StreamRedactor] | None,
) -> AsyncIterator[bytes]:
    """Yield the complete lines of each read as it arrives; the ledger line is written
    when the stream ends, however it ends. A stream that carried no event becomes an
    error event to the Case, never an empty 200 its client cannot explain."""
    passage = SsePassage(redact, expected_model=model)
    pending.seen = passage.seen
    keep = pending.capture.chunk if pending.capture is not None else None
    # Every chunk passes the redactor too, a streaming one when given: the passage
    # hands it whole lines, so it holds back nothing but a suffix that could still
    # begin a secret form (a base64 form wrapped onto the next line).
    scrubber = streams() if streams is not None else None
    feed = scrubber.feed if scrubber is not None else partial(scrub, redact=redact)
    try:
        async for chunk in upstream.aiter_bytes():
            if keep is not None:
                keep(chunk)
            lines = passage.feed(chunk)
            if lines and (lines := feed(lines)):
                pending.bytes_out += len(lines)
                yield lines
        rest = feed(passage.flush()) + (scrubber.flush() if scrubber is not None else b"")
        if rest:
            pending.bytes_out += len(rest)
            yield rest
        if not passage.events:
            pending.error = "upstream stream carried no event"
            yield sse_error(pending.error, api)
    except httpx.HTTPError as exc:
        kind = "timed out" if isinstance(exc, httpx.TimeoutException) else "broke off"
        pending.error = f"upstream {kind} mid-stream ({ledger.describe(exc)})"
        if scrubber is not None and (held := scrubber.flush()):
            yield held
        yield sse_error(pending.error, api)
    except BaseException:
        pending.error = "the Case closed the stream before it ended"
        raise
    finally:
        if pending.error is None and passage.seen.error is not None:
            said = ledger.excerpt(passage.seen.error)
            pending.error = f"upstream error in stream: {said}"
        ledger.finish(pending)
        with anyio.CancelScope(shield=True):
            await upstream.aclose()


async def upstream_error(upstream: httpx.Response, pending: Pending, ledger: Ledger,
                         via_gateway: bool) -> Response:
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
    with contextlib.suppress(ValueError, RecursionError):  # not JSON: the text itself
        text = error_message(json.loads(text))
    status = upstream.status_code
    said = f": {ledger.excerpt(text)}" if text.strip() else ""
    message = f"upstream answered HTTP {status}{said}"
    if status in (401, 403) and via_gateway:
        # The gateway refused the run's token (wrong, expired, revoked): the run is
        # blocked by its setup, never failed for what the Case did.
        message = f"gateway: refused the run's token (HTTP {status}{said})"
    elif status in (401, 403):
        message += (f" (the {ledger.WHO}'s API key, CTO_HARNESS_CASE_LOCAL_API_KEY, "
                    "was refused)")
    # A client error passes through as itself; server errors, redirects and a refused
    # key are the upstream's fault, so the Case sees a gateway error.
    relayed = status if 400 <= status < 500 and status not in (401, 403) else 502
    return ledger.fail(pending, relayed, message)
