"""The relay's recording hook: each forwarded request and its answer, whole, handed to the
run's `ExchangeStore` (core/evidence/exchanges.py).

Cost on the stream's path is one list append per forwarded read (the bench's budget is
2 µs a chunk); the rest — joining the reads, parsing every event, reassembling the answer
from its deltas (chat chunks, Responses events), redacting, hashing, writing — happens once
the answer has ended, on the recorder's own thread, and only when the relay is idle (see
`Recorder`), so neither the Case's stream nor its next request waits on it. `close()`
writes what is queued: the run's report hashes the files only after the relay stopped.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from typing import Any

from core.evidence.exchange_store import ExchangeStore, Recorded
from core.evidence.models import RelayRecord
from core.relay.inflight import InFlightWriter

STREAM_KEEP = 64 << 20
"""The most of one stream kept for its reassembly; past it the rest is cut, and said."""


class Capture:
    """What one request's recording holds while the relay handles it."""

    __slots__ = ("answer", "api", "body", "chunks", "overflow", "size", "started")

    def __init__(self, api: str, body: bytes, started: str) -> None:
        self.api = api
        self.body = body
        self.started = started
        self.answer: bytes | None = None
        self.chunks: list[bytes] = []
        self.size = 0
        self.overflow = False

    def chunk(self, data: bytes) -> None:
        """One forwarded read of a stream (the per-chunk hook: an append and a sum)."""
        if self.size < STREAM_KEEP:
            self.chunks.append(data)
            self.size += len(data)
        else:
            self.overflow = True


IDLE_S = 0.05
"""The relay counts as idle when no forwarded request has been in flight this long."""
MAX_DEFER_S = 10.0
MAX_QUEUED = 256 << 20


class Recorder:
    """Numbers exchanges in the order they end and writes them on its own thread — when
    the relay is idle: the work of one exchange (parsing every event, redacting, hashing)
    would otherwise compete, for the interpreter's lock, with the streams still flowing
    (the next request of an agent that asks again at once). An agent's turn ends with its
    tools running, so exchanges land within IDLE_S of that; a relay never idle still
    writes each within MAX_DEFER_S, or once MAX_QUEUED bytes wait. `close()` writes what is
    left: the run's report hashes the files only after the relay stopped."""

    def __init__(self, store: ExchangeStore, inflight: InFlightWriter | None = None) -> None:
        self.store = store
        self.inflight = inflight
        """Told when a request begins and ends; it reads the captures' reads on its own
        thread (the in-flight view of a dashboard), never on the stream's path."""
        self._seq = 0
        self._cond = threading.Condition()
        self._queue: deque[tuple[float, int, Capture, RelayRecord, bool]] = deque()
        self._queued = 0
        self._active = 0
        self._idle_since = time.monotonic()
        self._closing = False
        self._thread: threading.Thread | None = None
        self.failures: list[str] = []

    def capture(self, api: str, body: bytes, started: str,
                model_asked: str | None = None) -> Capture:
        """A forwarded request begins: what it sends and gets is kept from now."""
        with self._cond:
            self._active += 1
        capture = Capture(api, body, started)
        if self.inflight is not None:
            self.inflight.begin(capture, model_asked)
        return capture

    def record(self, capture: Capture, record: RelayRecord, stream: bool) -> None:
        if self.inflight is not None:
            self.inflight.end(capture)
        with self._cond:
            self._seq += 1
            now = time.monotonic()
            self._queue.append((now, self._seq, capture, record, stream))
            self._queued += capture.size + len(capture.body) + len(capture.answer or b"")
            self._active = max(self._active - 1, 0)
            if self._active == 0:
                self._idle_since = now
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="exchanges",
                                                daemon=True)
                self._thread.start()
            self._cond.notify()

    def _next(self) -> tuple[float, int, Capture, RelayRecord, bool] | None:
        with self._cond:
            while True:
                if not self._queue:
                    if self._closing:
                        return None
                    self._cond.wait()
                    continue
                now = time.monotonic()
                if (self._closing or self._queued > MAX_QUEUED
                        or now - self._queue[0][0] >= MAX_DEFER_S
                        or (self._active == 0 and now - self._idle_since >= IDLE_S)):
                    item = self._queue.popleft()
                    capture = item[2]
                    self._queued -= capture.size + len(capture.body) + len(
                        capture.answer or b"")
                    return item
                self._cond.wait(timeout=IDLE_S)

    def _run(self) -> None:
        while (item := self._next()) is not None:
            _, seq, capture, record, stream = item
            self._write(seq, capture, record, stream)

    def _write(self, seq: int, capture: Capture, record: RelayRecord, stream: bool) -> None:
        try:
            rec = Recorded(
                seq=seq, started=capture.started, ended=record.ts, method=record.method,
                route=record.path.removeprefix("/v1/"), api=capture.api,
                status=record.status, stream=stream, model_asked=record.model_asked,
                model_answered=record.model_answered, latency_ms=record.latency_ms,
                prompt_tokens=record.prompt_tokens,
                completion_tokens=record.completion_tokens, error=record.error,
                request=capture.body)
            if stream and capture.chunks:
                rec.response, rec.problems, rec.events = reassemble(
                    b"".join(capture.chunks), capture.api)
                if capture.overflow:
                    rec.problems.append(f"the stream was kept up to {STREAM_KEEP >> 20} MiB "
                                        "only; the rest was cut")
            elif capture.answer is not None:
                try:
                    rec.response = json.loads(capture.answer)
                except (ValueError, RecursionError):
                    rec.response_raw = capture.answer.decode("utf-8", "replace")
            self.store.write(rec)
        except Exception as exc:
            self.failures.append(f"exchange {seq}: {type(exc).__name__}")

    def close(self) -> None:
        with self._cond:
            self._closing = True
            self._cond.notify()
            thread = self._thread
        if thread is not None:
            thread.join()
        if self.inflight is not None:
            self.inflight.close()
        self.store.close()


# -- reassembly -------------------------------------------------------------------------
def sse_events(text: str) -> tuple[list[tuple[str | None, str]], list[str]]:
    """(event name, data) of each event of an SSE text, and what could not be read."""
    events: list[tuple[str | None, str]] = []
    problems: list[str] = []
    name: str | None = None
    data: list[str] = []
    lines = text.split("\n")
    ended = text.endswith("\n\n") or text.endswith("\r\n\r\n")
    for line in lines:
        line = line.rstrip("\r")
        if not line:
            if data:
                events.append((name, "\n".join(data)))
            name, data = None, []
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
        elif line.startswith("event:"):
            name = line[6:].strip()
    if data:
        events.append((name, "\n".join(data)))
        if not ended:
            problems.append("the stream was cut mid-event (its last event has no end)")
    return events, problems


def reassemble(raw: bytes, api: str) -> tuple[Any, list[str], int]:
    """The whole answer a stream carried, as the same API answers without streaming, what
    could not be read, and how many events there were."""
    events, problems = sse_events(raw.decode("utf-8", "replace"))
    parsed: list[tuple[str | None, Any]] = []
    for name, data in events:
        if data.strip() == "[DONE]":
            continue
        try:
            parsed.append((name, json.loads(data)))
        except (ValueError, RecursionError):
            short = data if len(data) <= 200 else data[:200] + "…"
            problems.append(f"an event that is not JSON: {short!r}")
    objects = [(n, e) for n, e in parsed if isinstance(e, dict)]
    if api == "responses":
        return responses_answer(objects, problems), problems, len(events)
    return chat_answer([e for _, e in objects], problems), problems, len(events)


def chat_answer(chunks: list[dict[str, Any]], problems: list[str]) -> dict[str, Any]:
    """A `chat.completion` from its `chat.completion.chunk`s: content, reasoning and each
    tool call's arguments joined from their deltas, by choice and tool-call index."""
    out: dict[str, Any] = {"object": "chat.completion"}
    choices: dict[int, dict[str, Any]] = {}
    for chunk in chunks:
        for key in ("id", "model", "created", "system_fingerprint"):
            if key in chunk and key not in out:
                out[key] = chunk[key]
        if isinstance(chunk.get("usage"), dict):
            out["usage"] = chunk["usage"]
        if chunk.get("error") is not None:
            out["error"] = chunk["error"]
        for choice in chunk.get("choices") or []:
            if not isinstance(choice, dict):
                continue
            index = i if isinstance(i := choice.get("index"), int) else 0
            slot = choices.setdefault(index, {"index": index, "parts": {}, "calls": {},
                                              "finish_reason": None, "role": "assistant"})
            if choice.get("finish_reason"):
                slot["finish_reason"] = choice["finish_reason"]
            delta = choice.get("delta") or choice.get("message") or {}
            if not isinstance(delta, dict):
                continue
            if isinstance(delta.get("role"), str):
                slot["role"] = delta["role"]
            for key in ("content", "reasoning_content", "reasoning", "refusal"):
                if isinstance(delta.get(key), str):
                    slot["parts"].setdefault(key, []).append(delta[key])
            for call in delta.get("tool_calls") or []:
                if not isinstance(call, dict):
                    continue
                at = call.get("index") if isinstance(call.get("index"), int) \
                    else len(slot["calls"])
                held = slot["calls"].setdefault(at, {"id": None, "type": "function",
                                                     "name": [], "arguments": []})
                if call.get("id"):
                    held["id"] = call["id"]
                fn = call.get("function") or {}
                if isinstance(fn.get("name"), str):
                    held["name"].append(fn["name"])
                if isinstance(fn.get("arguments"), str):
                    held["arguments"].append(fn["arguments"])
    out["choices"] = []
    for index in sorted(choices):
        slot = choices[index]
        message: dict[str, Any] = {"role": slot["role"]}
        parts = slot["parts"]
        message["content"] = "".join(parts["content"]) if "content" in parts else None
        reasoning = "".join(parts.get("reasoning_content", []) + parts.get("reasoning", []))
        if reasoning:
            message["reasoning_content"] = reasoning
        if "refusal" in parts:
            message["refusal"] = "".join(parts["refusal"])
        if slot["calls"]:
            message["tool_calls"] = [
                {"id": c["id"], "type": c["type"], "function": {
                    "name": "".join(c["name"]), "arguments": "".join(c["arguments"])}}
                for _, c in sorted(slot["calls"].items())]
        out["choices"].append({"index": index, "message": message,
                               "finish_reason": slot["finish_reason"]})
    if not chunks:
        problems.append("the stream carried no chunk")
    return out


def responses_answer(events: list[tuple[str | None, dict[str, Any]]],
                     problems: list[str]) -> dict[str, Any]:
    """A Responses `response` from its events: the final `response.completed` (or
    `.incomplete`/`.failed`) when the stream has one, else the output items rebuilt from
    `output_item.added/done` and their text and arguments deltas."""
    final = None
    base: dict[str, Any] = {"object": "response", "output": []}
    items: dict[int, dict[str, Any]] = {}
    texts: dict[tuple[int, int], list[str]] = {}
    args: dict[int, list[str]] = {}
    for name, event in events:
        kind = event.get("type") or name
        response = event.get("response")
        if kind in ("response.completed", "response.incomplete", "response.failed") \
                and isinstance(response, dict):
            final = response
        elif kind in ("response.created", "response.in_progress") and isinstance(response,
                                                                                  dict):
            base = {**response, "output": []}
        elif kind in ("response.output_item.added", "response.output_item.done"):
            at = event.get("output_index")
            if isinstance(at, int) and isinstance(event.get("item"), dict):
                items[at] = event["item"]
        elif kind == "response.output_text.delta":
            key = (event.get("output_index") or 0, event.get("content_index") or 0)
            texts.setdefault(key, []).append(str(event.get("delta") or ""))
        elif kind == "response.function_call_arguments.delta":
            args.setdefault(event.get("output_index") or 0, []).append(
                str(event.get("delta") or ""))
        elif kind == "error":
            base["error"] = {"message": event.get("message"), "code": event.get("code")}
    if final is not None:
        return final
    if events:
        problems.append("the stream ended without response.completed; the answer is "
                        "rebuilt from its item events")
    for at, item in sorted(items.items()):
        item = dict(item)
        if at in args and not item.get("arguments"):
            item["arguments"] = "".join(args[at])
        if item.get("type") == "message":
            content = list(item.get("content") or [])
            for (o, _c), parts in texts.items():
                if o == at and not any(p.get("text") for p in content if isinstance(p, dict)):
                    content.append({"type": "output_text", "text": "".join(parts)})
            item["content"] = content
        base["output"].append(item)
    return base
