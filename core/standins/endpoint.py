"""A scripted OpenAI-compatible endpoint on loopback: the tests' upstream, the demo's model.

It speaks the `/v1` HTTP that vLLM, SGLang and llama.cpp speak (`GET /v1/models[/{id}]`,
`POST /v1/chat/completions` and `POST /v1/responses`, whole or streamed as SSE — chat chunks
with a usage chunk, Responses events as vLLM emits them), answering from a deterministic
`responder`. Knobs on the instance make it behave like a hostile upstream — swap models,
omit the model or the usage, end a stream with no event, fail, send garbage, demand a key,
hang — so the harness is tested against the failures it must survive, over real HTTP.
Every request is recorded, on any path and method, so a test sees what reached upstream.

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

from core.relay.loopback import LoopbackServer, openai_error
from core.standins.endpoint_responses import (
    ResponseShape,
    responses_input_messages,
    responses_usage,
)


@dataclass(frozen=True)
class ScriptedCall:
    """A tool call the scripted model makes: `arguments` an object, or a string sent as it
    is (a model that writes arguments which are not JSON)."""

    name: str
    arguments: dict[str, Any] | str


@dataclass(frozen=True)
class Scripted:
    """An answer with more than text: reasoning, and tool calls (chat `tool_calls`,
    Responses `function_call` items), streamed as their deltas the way vLLM streams them."""

    text: str = ""
    calls: tuple[ScriptedCall, ...] = ()
    reasoning: str | None = None


Responder = Callable[[list[dict[str, Any]]], str | Scripted]
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
      omit_model    answer without naming a model (an answer the relay cannot attribute)
      omit_usage    answer without usage, as llama-cpp-python's streams do
      empty_stream  answer a streamed request 200 text/event-stream with no event at all
      responses_api serve POST /v1/responses (True); False answers it 404, as a server
                    without the Responses API does
      card_extra    fields added to each `/v1/models` card (vLLM's `root` names the
                    weights' path, which a hostile or careless upstream sets to its URL)
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
        self.omit_model = False
        self.omit_usage = False
        self.empty_stream = False
        self.responses_api = True
        self.card_extra: dict[str, Any] = {}
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
        everything = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
        return Starlette(routes=[
            Route("/v1/models", self._models, methods=["GET"]),
            Route("/v1/models/{model_id:path}", self._model, methods=["GET"]),
            Route("/v1/chat/completions", self._chat, methods=["POST"]),
            Route("/v1/responses", self._responses, methods=["POST"]),
            Route("/{anything:path}", self._elsewhere, methods=everything),
        ])

    async def _receive(self, request: Request) -> Received:
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        path = request.scope.get("raw_path", b"").decode("latin-1") or request.url.path
        seen = Received(request.method, path, request.headers.get("authorization"),
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
        return JSONResponse({"object": "list", "data": [self._model_card()]})

    def _model_card(self) -> dict[str, Any]:
        return {"id": self.model_id, "object": "model", "created": 0, "owned_by": "scripted",
                **self.card_extra}

    async def _model(self, request: Request) -> Response:
        trouble = await self._misbehave(request, await self._receive(request))
        if trouble is not None:
            return trouble
        if request.path_params["model_id"] != self.model_id:
            return openai_error(404, "no such model", "NotFoundError")
        return JSONResponse(self._model_card())

    async def _elsewhere(self, request: Request) -> Response:
        """Any other path or method: recorded (a test asserts nothing got here), then a 404
        as vLLM answers one."""
        await self._receive(request)
        return openai_error(404, "Not Found", "NotFoundError")

    async def _accept(self, request: Request, field: str, kinds: tuple[type, ...]
                      ) -> tuple[dict[str, Any], Response | None]:
        """The request's body, or the error a real server would give: knobs first, then
        the body's shape (`field` missing or of another type is a 400, as vLLM's request
        validation answers before any generation), then the model (404)."""
        seen = await self._receive(request)
        trouble = await self._misbehave(request, seen)
        body = seen.body or {}
        if trouble is None and not isinstance(body.get(field), kinds):
            trouble = openai_error(400, f"expected a JSON object with `{field}`",
                                   "invalid_request_error")
        if trouble is None and body.get("model") != self.model_id:
            trouble = openai_error(404, f"The model `{body.get('model')}` does not exist.",
                                   "NotFoundError")
        return body, trouble

    def _answering(self) -> dict[str, str]:
        """The `model` field of an answer: the swapped one, or none at all."""
        return {} if self.omit_model else {"model": self.answer_model or self.model_id}

    async def _chat(self, request: Request) -> Response:
        body, trouble = await self._accept(request, "messages", (list,))
        if trouble is not None:
            return trouble
        messages = body["messages"]
        said = _scripted(self.responder(messages))
        answer = said.text
        pieces = tokens(answer)
        prompt = _prompt_words(messages)
        calls = [_call_id_and_args(call) for call in said.calls]
        used = len(pieces) + len(tokens(said.reasoning or "")) + sum(
            len(tokens(args)) for _, _, args in calls)
        usage = {"prompt_tokens": prompt, "completion_tokens": used,
                 "total_tokens": prompt + used}
        completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        if body.get("stream") is True:
            options = body.get("stream_options")
            with_usage = isinstance(options, dict) and options.get("include_usage") is True
            usage_chunk = usage if with_usage and not self.omit_usage else None
            return self._sse(self._chunks(completion_id, pieces, usage_chunk, said, calls))
        message: dict[str, Any] = {"role": "assistant",
                                   "content": answer if answer or not calls else None}
        if said.reasoning:
            message["reasoning_content"] = said.reasoning
        if calls:
            message["tool_calls"] = [{"id": cid, "type": "function", "function": {
                "name": name, "arguments": args}} for cid, name, args in calls]
        return JSONResponse({
            "id": completion_id,
            "object": "chat.completion",
            "created": int(time.time()),
            **self._answering(),
            "choices": [{"index": 0, "message": message,
                         "finish_reason": "tool_calls" if calls else "stop"}],
            **({} if self.omit_usage else {"usage": usage}),
        })

    async def _responses(self, request: Request) -> Response:
        """`POST /v1/responses`, stateless (`store` ignored, as vLLM does by default)."""
        if not self.responses_api:
            return await self._elsewhere(request)
        body, trouble = await self._accept(request, "input", (str, list))
        if trouble is not None:
            return trouble
        messages = responses_input_messages(body)
        said = _scripted(self.responder(messages))
        answer = said.text
        pieces = tokens(answer)
        prompt = _prompt_words(messages)
        usage = None if self.omit_usage else responses_usage(prompt, len(pieces))
        shape = ResponseShape(model=self._answering().get("model"), usage=usage,
                              calls=[_call_id_and_args(c) for c in said.calls],
                              reasoning=said.reasoning)
        if body.get("stream") is True:
            return self._sse(self._response_events(shape, pieces))
        return JSONResponse(shape.response("completed", answer))

    def _sse(self, events: AsyncIterator[bytes]) -> Response:
        if self.empty_stream:
            return StreamingResponse(iter(()), media_type="text/event-stream")
        return StreamingResponse(events, media_type="text/event-stream")

    async def _paced(self, pieces: list[str]) -> AsyncIterator[str]:
        """The answer's pieces at the endpoint's pace, until it stops."""
        assert self._closing is not None
        for piece in pieces:
            if self.token_delay:
                await asyncio.sleep(self.token_delay)
            if self._closing.is_set():
                return
            yield piece

    async def _chunks(
        self, completion_id: str, pieces: list[str], usage: dict[str, int] | None,
        said: Scripted | None = None, calls: list[tuple[str, str, str]] | None = None,
    ) -> AsyncIterator[bytes]:
        created = int(time.time())
        answering = self._answering()

        def chunk(choices: list[dict[str, Any]], **extra: Any) -> bytes:
            event = {"id": completion_id, "object": "chat.completion.chunk",
                     "created": created, **answering, "choices": choices, **extra}
            return f"data: {json.dumps(event)}\n\n".encode()

        def delta(content: dict[str, str], finish: str | None = None) -> list[dict[str, Any]]:
            return [{"index": 0, "delta": content, "finish_reason": finish}]

        yield chunk(delta({"role": "assistant", "content": ""}))
        if said is not None and said.reasoning:
            async for piece in self._paced(tokens(said.reasoning)):
                yield chunk(delta({"reasoning_content": piece}))
        async for piece in self._paced(pieces):
            yield chunk(delta({"content": piece}))
        for at, (cid, name, args) in enumerate(calls or []):
            head = {"index": at, "id": cid, "type": "function",
                    "function": {"name": name, "arguments": ""}}
            yield chunk(delta({"tool_calls": [head]}))  # type: ignore[dict-item]
            async for piece in self._paced(tokens(args) or [args]):
                part = {"index": at, "function": {"arguments": piece}}
                yield chunk(delta({"tool_calls": [part]}))  # type: ignore[dict-item]
        yield chunk(delta({}, "tool_calls" if calls else "stop"))
        if usage is not None:
            yield chunk([], usage=usage)
        yield b"data: [DONE]\n\n"

    async def _response_events(self, shape: ResponseShape, pieces: list[str]
                               ) -> AsyncIterator[bytes]:
        for event in shape.opening():
            yield event
        text = ""
        async for piece in self._paced(pieces):
            text += piece
            yield shape.delta(piece)
        for event in shape.closing(text):
            yield event


def _scripted(said: str | Scripted) -> Scripted:
    return said if isinstance(said, Scripted) else Scripted(text=said)


def _call_id_and_args(call: ScriptedCall) -> tuple[str, str, str]:
    args = call.arguments if isinstance(call.arguments, str) else json.dumps(call.arguments)
    return f"call_{uuid.uuid4().hex[:20]}", call.name, args


def tool_then_answer(name: str, arguments: dict[str, Any] | str, final: str
                     ) -> Responder:
    """A responder that calls one tool, then — once a tool result is in the history —
    answers `final`: the smallest agent loop with a tool call and its result."""
    def respond(messages: list[dict[str, Any]]) -> str | Scripted:
        if any(m.get("role") == "tool" for m in messages if isinstance(m, dict)):
            return final
        return Scripted(text="", calls=(ScriptedCall(name, arguments),),
                        reasoning=f"I should call {name} first.")
    return respond


def _prompt_words(messages: list[Any]) -> int:
    return sum(len(_text(m.get("content")).split()) for m in messages if isinstance(m, dict))
