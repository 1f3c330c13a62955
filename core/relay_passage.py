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


def error_message(data: Any) -> str:
    """The `error.message` of an OpenAI-style error body, else the body as text."""
    if isinstance(data, dict):
        error = data.get("error", data.get("detail", data.get("message")))
        if isinstance(error, dict):
            error = error.get("message", error)
        if isinstance(error, str):
            return error
    return json.dumps(data, ensure_ascii=False)


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


@dataclass
class Observed:
    """What one answer said about itself."""

    models: list[str] = field(default_factory=list)
    usage: dict[str, Any] | None = None
    error: str | None = None

    def see(self, data: Any) -> None:
        """Read one JSON value: a whole answer or one stream event, of either API."""
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

    def feed(self, data: bytes) -> bytes:
        """The complete lines of what has arrived so far, ready to forward."""
        buf = self._partial + data if self._partial else data
        cut = buf.rfind(b"\n") + 1
        complete, self._partial = buf[:cut], buf[cut:]
        if len(self._partial) > SSE_LINE_LIMIT:  # not SSE; don't hold an unbounded line
            complete, self._partial = buf, b""
        if b"data:" not in complete:
            return complete
        if self.events and self._all_plain(complete):
            self.events += complete.count(b"\ndata:") + complete.startswith(b"data:")
            return complete
        lines = complete.split(b"\n")
        changed = False
        for index, line in enumerate(lines):
            if line.startswith(b"data:"):
                replaced = self._line(line)
                if replaced is not None:
                    lines[index], changed = replaced, True
        return b"\n".join(lines) if changed else complete

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
            event = json.loads(line[5:])
        except ValueError:
            return None
        if not isinstance(event, dict):
            return None
        self.events += 1
        had_error = self.seen.error
        self.seen.see(event)
        if self.seen.error is had_error:
            return None
        self.seen.error = self._redact(self.seen.error or "")
        return self._redact(line.decode("utf-8", errors="replace")).encode()

    def _all_plain(self, block: bytes) -> bool:
        """`_plain` for every line of `block` at once, in a few C-speed scans: nothing
        telling anywhere, no `[DONE]` (not an event), and every `"model"` in it followed by
        the expected model."""
        if any(word in block for word in _TELLING) or b"[DONE]" in block:
            return False
        models = block.count(b'"model"')
        return models == 0 or (self._as_expected is not None
                               and len(self._as_expected.findall(block)) == models)

    def _plain(self, line: bytes) -> bool:
        """True when parsing `line` could tell nothing new (see the module's docstring)."""
        if any(word in line for word in _TELLING):
            return False
        models = line.count(b'"model"')
        if models == 0:
            return True
        return models == 1 and self._as_expected is not None and (
            self._as_expected.search(line) is not None)


def sse_error(message: str, api: Api) -> bytes:
    """An error event as the Case's client expects it on its API's stream."""
    if api == "responses":
        payload = {"type": "error", "code": "upstream_error", "param": None,
                   "message": f"cto-harness relay: {message}", "sequence_number": 0}
        return f"event: error\ndata: {json.dumps(payload)}\n\n".encode()
    error = {"message": f"cto-harness relay: {message}", "type": "upstream_error", "code": 502}
    return f"data: {json.dumps({'error': error})}\n\n".encode()


def answered_model(models: list[str], asked: str | None) -> str | None:
    """The model the upstream says answered; any name but the asked one wins, so a swap
    in the middle of a stream is never hidden behind a first chunk that looked right."""
    other = [m for m in models if m != asked]
    return other[0] if other else (models[0] if models else None)
