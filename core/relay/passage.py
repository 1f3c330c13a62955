"""What the relay reads from the upstream's answers on their way to the Case: which model
answered, the token counts, and errors, from every shape the OpenAI-compatible routes use.

- Chat and legacy completions (and embeddings): a top-level `model` and `usage`
  (`prompt_tokens` / `completion_tokens`), in a whole JSON body or in each SSE chunk.
- The Responses API: a whole JSON body is the response object itself (top-level `model`,
  `usage.input_tokens` / `output_tokens`); a stream's `response.created`,
  `response.in_progress`, `response.completed`, `response.incomplete` and `response.failed`
  events nest them under `response`; deltas carry neither. Errors come as an `error` event
  (`{"type": "error", "message": ...}`) or in `response.failed`'s `response.error`.

Streams are passed on as they arrive, a whole line at a time, and untouched but for error
events (redacted). To keep the relay's cost per chunk low, a `data:` line is parsed only
when it can tell something new: the first event always is; after it, a line whose only
`"model"` is the expected model and that names no usage, error or nested response (and
holds no `\\u` escape that could spell one) is counted by byte search alone — and a whole
read of such lines at once, by a few scans of the read.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

Api = Literal["chat", "responses"]
SSE_LINE_LIMIT = 1 << 20
_TELLING = (b'"usage"', b'"error"', b'"response"', b"\\u")
_STOPS = (*_TELLING, b"[DONE]")


def error_message(data: Any) -> str:
    """The `error.message` of an OpenAI-style error body, else the body as text."""
    if isinstance(data, dict):
        error = data.get("error", data.get("detail", data.get("message")))
        if isinstance(error, dict):
            error = error.get("message", error)
        if isinstance(error, str):
            return error
    return json.dumps(data, ensure_ascii=False)


def parse_answer(raw: bytes | str) -> tuple[Any, list[Any]]:
    """JSON from the upstream, and every value of a `model` key named twice in one object:
    which one a client honours is its parser's choice, so each is judged."""
    repeated: list[Any] = []

    def pairs_hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        obj = dict(pairs)
        if len(obj) != len(pairs):
            models = [value for key, value in pairs if key == "model"]
            if len(models) > 1:
                repeated.extend(models)
        return obj

    return json.loads(raw, object_pairs_hook=pairs_hook), repeated


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


@dataclass
class Observed:
    """What one answer said about itself."""

    models: list[str] = field(default_factory=list)
    usage: dict[str, Any] | None = None
    error: str | None = None

    def see(self, data: Any, repeated: list[Any] | None = None) -> None:
        """Read one JSON value (a whole answer or one stream event, of either API) and the
        models its objects named twice (`parse_answer`)."""
        for model in repeated or ():
            if isinstance(model, str) and model and model not in self.models:
                self.models.append(model)
        if not isinstance(data, dict):
            return
        inner = data.get("response")
        for holder in (data, inner):
            if not isinstance(holder, dict):
                continue
            model = holder.get("model")
            if isinstance(model, str) and model and model not in self.models:
                self.models.append(model)
            if isinstance(holder.get("usage"), dict):
                self.usage = holder["usage"]
        if data.get("error") is not None:
            self.error = error_message(data)
        elif data.get("type") == "error":
            self.error = str(data.get("message") or error_message(data))
        elif isinstance(inner, dict) and inner.get("error") is not None:
            self.error = error_message(inner)

    @property
    def prompt_tokens(self) -> int | None:
        return self._tokens("prompt_tokens", "input_tokens")

    @property
    def completion_tokens(self) -> int | None:
        return self._tokens("completion_tokens", "output_tokens")

    def _tokens(self, chat_key: str, responses_key: str) -> int | None:
        """None when the upstream did not say (llama-cpp-python streams carry no usage):
        an unknown count is never reported as 0."""
        if self.usage is None:
            return None
        found = _count(self.usage.get(chat_key))
        return found if found is not None else _count(self.usage.get(responses_key))


class SsePassage:
    """An SSE stream on its way to the Case: forwarded a whole line at a time (an event is
    no use to a client before its line ends), reading models, usage and errors as it goes.
    An error event passes `redact` first, as every upstream error text does; the model's
    tokens pass verbatim."""

    def __init__(self, redact: Callable[[str], str], expected_model: str | None = None) -> None:
        self._redact = redact
        self._partial = b""
        self.seen = Observed()
        self.events = 0
        self._as_expected = (
            re.compile(rb'"model"\s*:\s*"' + re.escape(expected_model.encode()) + rb'"')
            if expected_model else None)
        self._expected_spellings = tuple(
            f'"model"{sep}"{expected_model}"'.encode() for sep in (":", ": ")
        ) if expected_model else ()

    def feed(self, data: bytes) -> bytes:
        """The complete lines of what has arrived so far, ready to forward."""
        buf = self._partial + data if self._partial else data
        cut = buf.rfind(b"\n") + 1
        complete, self._partial = buf[:cut], buf[cut:]
        if len(self._partial) > SSE_LINE_LIMIT:  # not SSE; don't hold an unbounded line
            complete, self._partial = buf, b""
        if b"data:" not in complete:
            return complete
        if self.events:
            return self._pass(complete)
        # The first event is always parsed; what follows it in this read may go faster.
        first = complete.find(b"\n", complete.find(b"data:")) + 1 or len(complete)
        head = self._by_line(complete[:first])
        rest = complete[first:]
        return head + (self._pass(rest) if self.events else self._by_line(rest))

    def _pass(self, text: bytes) -> bytes:
        """`text` (whole lines) as it must be forwarded: its plain prefix counted by scans,
        the lines from the first that could tell something read one by one."""
        plain = self._plain_prefix(text)
        if plain:
            self.events += text.count(b"\ndata:", 0, plain) + text.startswith(b"data:")
        if plain == len(text):
            return text
        return text[:plain] + self._by_line(text[plain:]) if plain else self._by_line(text)

    def _by_line(self, text: bytes) -> bytes:
        """Read each `data:` line of `text`; the text to forward (itself when unchanged)."""
        lines = text.split(b"\n")
        changed = False
        for index, line in enumerate(lines):
            if line.startswith(b"data:"):
                replaced = self._line(line)
                if replaced is not None:
                    lines[index], changed = replaced, True
        return b"\n".join(lines) if changed else text

    def flush(self) -> bytes:
        """What is left when the stream ends without a final newline."""
        rest, self._partial = self._partial, b""
        if rest.startswith(b"data:"):
            replaced = self._line(rest)
            return rest if replaced is None else replaced
        return rest

    def _line(self, line: bytes) -> bytes | None:
        """Read one `data:` line; its replacement when it must not pass as it came."""
        if line.rstrip().endswith(b"[DONE]"):
            return None
        if self.events and self._plain(line):
            self.events += 1
            return None
        try:
            event, repeated = parse_answer(line[5:])
        except (ValueError, RecursionError):
            return None
        if not isinstance(event, dict):
            return None
        self.events += 1
        had_error = self.seen.error
        self.seen.see(event, repeated)
        if self.seen.error is had_error:
            return None
        self.seen.error = self._redact(self.seen.error or "")
        return self._redact(line.decode("utf-8", errors="replace")).encode()

    def _plain_prefix(self, block: bytes) -> int:
        """How much of `block` (whole lines) `_plain` would pass line by line, found in a few
        C-speed scans of the block: up to the line holding the first telling word or
        `[DONE]`, provided every `"model"` before it is followed by the expected model."""
        end = len(block)
        for word in _STOPS:
            at = block.find(word, 0, end)
            if at != -1:
                end = at
        if end < len(block):
            end = block.rfind(b"\n", 0, end) + 1
        return end if self._only_expected(block, end) else 0

    def _only_expected(self, text: bytes, end: int) -> bool:
        """Whether every `"model"` in text[:end] is followed by the expected model: counted
        in the two spellings servers use (compact, and json.dumps's), the regex only when
        those fall short."""
        models = text.count(b'"model"', 0, end)
        if models == 0:
            return True
        if not self._expected_spellings:
            return False
        spelled = sum(text.count(form, 0, end) for form in self._expected_spellings)
        return spelled == models or (
            self._as_expected is not None
            and len(self._as_expected.findall(text, 0, end)) == models)

    def _plain(self, line: bytes) -> bool:
        """True when parsing `line` could tell nothing new (see the module's docstring)."""
        if any(word in line for word in _TELLING):
            return False
        return line.count(b'"model"') <= 1 and self._only_expected(line, len(line))


def sse_error(message: str, api: Api) -> bytes:
    """An error event as the Case's client expects it on its API's stream. On the Responses
    API both an `error` event and a `response.failed` (whose `response.error` is what Codex
    reads), so a client that knows either stops with the message."""
    text = f"cto-harness relay: {message}"
    if api == "responses":
        error = {"type": "error", "code": "upstream_error", "param": None, "message": text,
                 "sequence_number": 0}
        failed = {"type": "response.failed", "sequence_number": 1, "response": {
            "id": "resp_relay_error", "object": "response", "created_at": 0,
            "status": "failed", "output": [], "parallel_tool_calls": False,
            "tool_choice": "auto", "tools": [],
            "error": {"code": "server_error", "message": text}}}
        return (f"event: error\ndata: {json.dumps(error)}\n\n"
                f"event: response.failed\ndata: {json.dumps(failed)}\n\n").encode()
    error = {"message": text, "type": "upstream_error", "code": 502}
    return f"data: {json.dumps({'error': error})}\n\n".encode()


def answered_model(models: list[str], asked: str | None) -> str | None:
    """The model the upstream says answered; any name but the asked one wins, so a swap
    in the middle of a stream is never hidden behind a first chunk that looked right."""
    other = [m for m in models if m != asked]
    return other[0] if other else (models[0] if models else None)
