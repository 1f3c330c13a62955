"""The relay's in-flight record: what each forwarded request has streamed so far, written to
`backend/exchanges/inflight.json` (format and reader: core/evidence/inflight.py) so a
dashboard shows a long answer as it arrives instead of "no request finished yet".

Nothing here runs on the stream's path: the relay already appends each forwarded read to
its `Capture` (the exchange recording's hook), and this writer's own thread reads the reads
appended since its last look, at most every PERIOD_S while a request is in flight — parsing
only the new events (incrementally: a long answer is not parsed again each time), passing
the answer's text through a streaming redactor (a secret form split across two looks is
still caught, and a suffix that could begin one is held back), and replacing the file
atomically. Idle, the thread waits on a condition and costs nothing.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from core.evidence.inflight import NAME, PERIOD_S, TAIL_CHARS, InFlight, document


class _Streamer(Protocol):
    def feed(self, data: bytes) -> bytes: ...


class _Capture(Protocol):
    api: str
    started: str
    chunks: list[bytes]
    answer: bytes | None


class _Live:
    """One request's state between looks: how far its reads were parsed, what they said."""

    def __init__(self, capture: _Capture, model_asked: str | None,
                 streamer: _Streamer | None) -> None:
        self.capture = capture
        self.model_asked = model_asked
        self.begun = time.monotonic()
        self.first: float | None = None
        self.read = 0
        self.partial = b""
        self.model: str | None = None
        self.deltas = 0
        self.usage: int | None = None
        self.text = ""
        self.reasoning = ""
        self.calls: list[str] = []
        self._text_scrub = streamer
        self._reason_scrub: _Streamer | None = None

    def absorb(self, redact: Callable[[str], str],
               streams: Callable[[], _Streamer] | None) -> None:
        """Parse the reads appended since the last look."""
        chunks = self.capture.chunks
        end = len(chunks)
        if end == self.read:
            return
        data = self.partial + b"".join(chunks[self.read:end])
        self.read = end
        cut = data.rfind(b"\n") + 1
        self.partial = data[cut:]
        text: list[str] = []
        reasoning: list[str] = []
        for line in data[:cut].split(b"\n"):
            if not line.startswith(b"data:"):
                continue
            try:
                event = json.loads(line[5:])
            except (ValueError, RecursionError):
                continue
            if isinstance(event, dict):
                self._event(event, text, reasoning)
        if self.deltas and self.first is None:
            self.first = time.monotonic()
        if text:
            self.text = self._tail(self.text, "".join(text), redact, "_text_scrub", streams)
        if reasoning:
            self.reasoning = self._tail(self.reasoning, "".join(reasoning), redact,
                                        "_reason_scrub", streams)

    def _tail(self, have: str, more: str, redact: Callable[[str], str], slot: str,
              streams: Callable[[], _Streamer] | None) -> str:
        scrub = getattr(self, slot)
        if scrub is None and streams is not None:
            scrub = streams()
            setattr(self, slot, scrub)
        if scrub is not None:
            safe = scrub.feed(more.encode("utf-8", "replace")).decode("utf-8", "replace")
        else:
            safe = redact(more)
        return (have + safe)[-TAIL_CHARS:]

    def _event(self, event: dict[str, Any], text: list[str], reasoning: list[str]) -> None:
        if isinstance(event.get("model"), str):
            self.model = event["model"]
        usage = event.get("usage")
        if isinstance(usage, dict):
            got = usage.get("completion_tokens", usage.get("output_tokens"))
            if isinstance(got, int):
                self.usage = got
        kind = event.get("type")
        if isinstance(kind, str):  # the Responses API
            self._responses(kind, event, text, reasoning)
            return
        for choice in event.get("choices") or []:
            delta = choice.get("delta") if isinstance(choice, dict) else None
            if not isinstance(delta, dict):
                continue
            for key, into in (("content", text), ("reasoning_content", reasoning),
                              ("reasoning", reasoning)):
                if isinstance(delta.get(key), str) and delta[key]:
                    into.append(delta[key])
                    self.deltas += 1
            for call in delta.get("tool_calls") or []:
                fn = call.get("function") if isinstance(call, dict) else None
                if isinstance(fn, dict):
                    if isinstance(fn.get("name"), str) and fn["name"]:
                        self.calls.append(redact_name(fn["name"]))
                    self.deltas += 1

    def _responses(self, kind: str, event: dict[str, Any], text: list[str],
                   reasoning: list[str]) -> None:
        response = event.get("response")
        if isinstance(response, dict):
            if isinstance(response.get("model"), str):
                self.model = response["model"]
            usage = response.get("usage")
            if isinstance(usage, dict) and isinstance(usage.get("output_tokens"), int):
                self.usage = usage["output_tokens"]
        delta = event.get("delta")
        if kind == "response.output_text.delta" and isinstance(delta, str):
            text.append(delta)
            self.deltas += 1
        elif kind.startswith("response.reasoning") and kind.endswith(".delta") and \
                isinstance(delta, str):
            reasoning.append(delta)
            self.deltas += 1
        elif kind == "response.function_call_arguments.delta":
            self.deltas += 1
        elif kind == "response.output_item.added":
            item = event.get("item")
            if isinstance(item, dict) and isinstance(item.get("name"), str):
                self.calls.append(redact_name(item["name"]))

    def view(self, redact: Callable[[str], str]) -> InFlight:
        now = time.monotonic()
        tokens = self.usage if self.usage is not None else self.deltas
        rate = None
        if self.first is not None and now - self.first > 0.2 and tokens:
            rate = round(tokens / (now - self.first), 1)
        stream = bool(self.capture.chunks)
        return InFlight(
            started=self.capture.started, api=self.capture.api, stream=stream,
            model_asked=redact(self.model_asked) if self.model_asked else None,
            model=redact(self.model) if self.model else None,
            elapsed_s=round(now - self.begun, 2), tokens=tokens, tokens_per_s=rate,
            text=self.text, reasoning=self.reasoning,
            tool_calls=[redact(c) for c in self.calls[:32]])


def redact_name(name: str) -> str:
    return name[:200]


SWITCH_VAR = "CTO_HARNESS_EXCHANGES_INFLIGHT"


def enabled(environ: dict[str, str] | None = None) -> bool:
    """Whether the relay keeps the in-flight record: on unless CTO_HARNESS_EXCHANGES_INFLIGHT
    is `off` (the relay bench's "before", measured in the same run)."""
    env = os.environ if environ is None else environ
    return env.get(SWITCH_VAR, "").strip().lower() != "off"


class InFlightWriter:
    """Keeps `inflight.json` up to date while requests are in flight (see the module
    docstring); `begin`/`end` are called from the relay's event loop, cheaply."""

    def __init__(self, folder: Path, redact: Callable[[str], str],
                 streams: Callable[[], _Streamer] | None = None,
                 period: float = PERIOD_S) -> None:
        self.path = folder / NAME
        self._redact = redact
        self._streams = streams
        self.period = period
        self._live: dict[int, _Live] = {}
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closing = False
        self._dirty = False
        self._shown = False
        """Whether the file lists a request now (its end must then be written)."""
        self.writes = 0

    def begin(self, capture: _Capture, model_asked: str | None) -> None:
        with self._cond:
            self._live[id(capture)] = _Live(capture, model_asked, None)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="inflight",
                                                daemon=True)
                self._thread.start()
            self._cond.notify()

    def end(self, capture: _Capture) -> None:
        with self._cond:
            if self._live.pop(id(capture), None) is not None and self._shown:
                self._dirty = True
                self._cond.notify()

    def _run(self) -> None:
        """Wait for a request; look PERIOD_S later (a request shorter than that is never
        written: an agent's quick calls cost no write), then every PERIOD_S while any is in
        flight; once the last ends, write the empty list once."""
        while True:
            with self._cond:
                while not self._live and not self._dirty and not self._closing:
                    self._cond.wait()
                if self._live and not self._closing:
                    self._cond.wait(timeout=self.period)
                if self._closing and not self._dirty:
                    return
                live = list(self._live.values())
                dirty, self._dirty = self._dirty, False
                if not live and not dirty:
                    continue
                self._shown = bool(live)
            try:
                for one in live:
                    one.absorb(self._redact, self._streams)
                self._write([one.view(self._redact) for one in live])
            except Exception:  # a view of the moment: never worth the relay's health
                pass

    def _write(self, requests: list[InFlight]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".inflight-", suffix=".tmp", dir=self.path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(document(requests))
            os.replace(tmp, self.path)
            self.writes += 1
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def close(self) -> None:
        """Stop, leaving the file with no request in flight."""
        with self._cond:
            self._live.clear()
            self._dirty = self._shown
            self._closing = True
            self._cond.notify()
            thread = self._thread
        if thread is not None:
            thread.join()
