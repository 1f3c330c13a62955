"""A scripted OpenAI-compatible endpoint on loopback: the tests' upstream, the demo's model.

It speaks the `/v1` HTTP that vLLM, SGLang and llama.cpp speak (`GET /v1/models`,
`POST /v1/chat/completions`, plain or streamed as SSE with a usage chunk), answering from a
deterministic `responder`. Knobs on the instance make it behave like a hostile upstream —
swap models, fail, send garbage, demand a key, hang — so the harness is tested against
the failures it must survive, over real HTTP.

It serves from its own thread and event loop, so sync tests, async tests and the CLI all
use it the same way: `with ScriptedEndpoint(...) as ep: ... ep.base_url`.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import re
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from core.loopback import LoopbackServer, openai_error

Responder = Callable[[list[dict[str, Any]]], str]
DEFAULT_MODEL = "qwen3.6-35b-a3b"
GARBAGE = b"<html><body><h1>It works!</h1> (this is not JSON)</body></html>\n"
_TOKEN = re.compile(r"\s*\S+|\s+")


def echo_responder(messages: list[dict[str, Any]]) -> str:
    """Answers with the last user message: enough to prove a round trip."""
    users = [m for m in messages if m.get("role") == "user"]
    return f"You said: {_text(users[-1].get('content')) if users else ''}"


def _text(content: Any) -> str:
    """A message's text, whether a string or OpenAI's list of content parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def tokens(text: str) -> list[str]:
    """Word-sized pieces with their leading space, the way a tokenizer streams them."""
    return _TOKEN.findall(text)


@dataclass(frozen=True)
class Received:
    """One request as the endpoint saw it, for tests to inspect what reached upstream."""

    method: str
    path: str
    authorization: str | None
    body: dict[str, Any] | None


class ScriptedEndpoint:
    """A real HTTP server on 127.0.0.1:<ephemeral> serving one model id from `responder`.

    Misbehaviour knobs, settable at any time (read on each request):
      answer_model  answer as this model id instead of the one asked (a swapping endpoint)
      fail_status   answer every request with this HTTP status and an error body that
                    echoes the URL it was called on, as some servers' error pages do
      garbage       answer 200 with a body that is not JSON
      token_delay   seconds before each streamed token (a realistic pace for the demo)
      api_key       require `Authorization: Bearer <api_key>`, else 401
      hang          accept requests and never answer (until the endpoint stops)
    """

    def __init__(
        self,
        responder: Responder = echo_responder,
        *,
        model_id: str = DEFAULT_MODEL,
        token_delay: float = 0.0,
        api_key: str | None = None,
    ) -> None:
        self.responder = responder
        self.model_id = model_id
        self.answer_model: str | None = None
        self.fail_status: int | None = None
        self.garbage = False
        self.token_delay = token_delay
        self.api_key = api_key
        self.hang = False
        self.received: list[Received] = []
        self.port = 0
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closing: asyncio.Event | None = None
        self._start_error: BaseException | None = None

    def __repr__(self) -> str:
        return f"ScriptedEndpoint(model_id={self.model_id!r}, port={self.port})"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    # -- lifecycle ------------------------------------------------------------------
    def start(self) -> ScriptedEndpoint:
        """Serve from a background thread; returns once the port accepts connections."""
        if self._thread is not None:
            raise RuntimeError("ScriptedEndpoint is already started")
        ready = threading.Event()
        self._thread = threading.Thread(
            target=asyncio.run, args=(self._serve(ready),), name="scripted-endpoint", daemon=True
        )
        self._thread.start()
        if not ready.wait(timeout=10):
            raise RuntimeError("ScriptedEndpoint did not start within 10 s")
        if self._start_error is not None:
            raise RuntimeError(f"ScriptedEndpoint could not start: {self._start_error}")
        return self

    def stop(self) -> None:
        """Stop serving; hanging and streaming requests are released, not waited for."""
        thread, loop, closing = self._thread, self._loop, self._closing
        if thread is None or loop is None or closing is None:
            return
        if thread.is_alive():
            loop.call_soon_threadsafe(closing.set)
            thread.join(timeout=5)
        self._thread = None

    def __enter__(self) -> ScriptedEndpoint:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def _serve(self, ready: threading.Event) -> None:
        self._loop = asyncio.get_running_loop()
        self._closing = asyncio.Event()
        server = LoopbackServer(self._app())
        try:
            await server.start()
        except (OSError, RuntimeError) as exc:
            self._start_error = exc
            ready.set()
            return
        self.port = server.port
        ready.set()
        await self._closing.wait()
        await server.stop()

    # -- HTTP -----------------------------------------------------------------------
    def _app(self) -> Starlette:
        return Starlette(routes=[
            Route("/v1/models", self._models, methods=["GET"]),
            Route("/v1/chat/completions", self._chat, methods=["POST"]),
        ])

    async def _receive(self, request: Request) -> Received:
        body = None
        if request.method == "POST":
            try:
                body = json.loads(await request.body())
            except ValueError:
                body = None
        seen = Received(request.method, request.url.path, request.headers.get("authorization"),
                        body if isinstance(body, dict) else None)
        self.received.append(seen)
        return seen

    async def _misbehave(self, request: Request, seen: Received) -> Response | None:
        """The knobs, in the order a real server would trip over them."""
        if self.api_key is not None and not hmac.compare_digest(
            (seen.authorization or "").encode(), f"Bearer {self.api_key}".encode()
        ):
            return openai_error(401, "invalid or missing API key", "invalid_api_key")
        if self.hang:
            assert self._closing is not None
            await self._closing.wait()
            return openai_error(503, "the endpoint is stopping", "server_error")
        if self.fail_status is not None:
            message = f"internal failure while serving {request.url}"
            return openai_error(self.fail_status, message, "server_error")
        if self.garbage:
            return Response(GARBAGE, 200, media_type="text/html")
        return None

    async def _models(self, request: Request) -> Response:
        trouble = await self._misbehave(request, await self._receive(request))
        if trouble is not None:
            return trouble
        model = {"id": self.model_id, "object": "model", "created": 0, "owned_by": "scripted"}
        return JSONResponse({"object": "list", "data": [model]})

    async def _chat(self, request: Request) -> Response:
        seen = await self._receive(request)
        trouble = await self._misbehave(request, seen)
        if trouble is not None:
            return trouble
        body = seen.body
        if body is None or not isinstance(body.get("messages"), list):
            return openai_error(400, "expected a JSON object with `messages`",
                                "invalid_request_error")
        if body.get("model") != self.model_id:
            return openai_error(404, f"The model `{body.get('model')}` does not exist.",
                                "NotFoundError")
        messages = body["messages"]
        answer = self.responder(messages)
        pieces = tokens(answer)
        prompt = sum(len(_text(m.get("content")).split()) for m in messages if isinstance(m, dict))
        usage = {"prompt_tokens": prompt, "completion_tokens": len(pieces),
                 "total_tokens": prompt + len(pieces)}
        model = self.answer_model or self.model_id
        completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        if body.get("stream") is True:
            options = body.get("stream_options")
            with_usage = isinstance(options, dict) and options.get("include_usage") is True
            chunks = self._chunks(completion_id, model, pieces, usage if with_usage else None)
            return StreamingResponse(chunks, media_type="text/event-stream")
        return JSONResponse({
            "id": completion_id,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": answer},
                         "finish_reason": "stop"}],
            "usage": usage,
        })

    async def _chunks(
        self, completion_id: str, model: str, pieces: list[str], usage: dict[str, int] | None
    ) -> AsyncIterator[bytes]:
        created = int(time.time())

        def chunk(choices: list[dict[str, Any]], **extra: Any) -> bytes:
            event = {"id": completion_id, "object": "chat.completion.chunk",
                     "created": created, "model": model, "choices": choices, **extra}
            return f"data: {json.dumps(event)}\n\n".encode()

        def delta(content: dict[str, str], finish: str | None = None) -> list[dict[str, Any]]:
            return [{"index": 0, "delta": content, "finish_reason": finish}]

        assert self._closing is not None
        yield chunk(delta({"role": "assistant", "content": ""}))
        for piece in pieces:
            if self.token_delay:
                await asyncio.sleep(self.token_delay)
            if self._closing.is_set():
                return
            yield chunk(delta({"content": piece}))
        yield chunk(delta({}, "stop"))
        if usage is not None:
            yield chunk([], usage=usage)
        yield b"data: [DONE]\n\n"
