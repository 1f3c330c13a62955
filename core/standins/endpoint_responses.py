"""The Responses API's wire shapes for the scripted endpoint, as vLLM (and OpenAI) emit them.

A whole answer is the response object itself. A stream is SSE with an `event:` line naming
each event's `type`: `response.created`, `response.in_progress`,
`response.output_item.added`, `response.content_part.added`, then one
`response.output_text.delta` per piece, `response.output_text.done`,
`response.content_part.done`, `response.output_item.done`, and `response.completed`, whose
`response` carries the output and the usage (`input_tokens` / `output_tokens`); every
event has a `sequence_number`. There is no `[DONE]` sentinel.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any


def responses_input_messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The request's `instructions` and `input` (a string, or a list of message items whose
    content is a string or `input_text` parts) as chat-style messages for a responder."""
    messages: list[dict[str, Any]] = []
    if isinstance(body.get("instructions"), str):
        messages.append({"role": "system", "content": body["instructions"]})
    given = body.get("input")
    if isinstance(given, str):
        return [*messages, {"role": "user", "content": given}]
    for item in given if isinstance(given, list) else []:
        if not isinstance(item, dict):
            continue
        if isinstance(item.get("role"), str):
            messages.append({"role": item["role"], "content": item.get("content")})
        elif item.get("type") == "function_call_output":
            messages.append({"role": "tool", "tool_call_id": item.get("call_id"),
                             "content": item.get("output")})
        elif item.get("type") == "function_call":
            messages.append({"role": "assistant", "content": None, "tool_calls": [
                {"id": item.get("call_id"), "type": "function", "function": {
                    "name": item.get("name"), "arguments": item.get("arguments")}}]})
    return messages


def responses_usage(prompt: int, completion: int) -> dict[str, Any]:
    return {"input_tokens": prompt, "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": completion, "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": prompt + completion}


@dataclass
class ResponseShape:
    """One response's ids and fields, and its events in order."""

    model: str | None
    usage: dict[str, Any] | None
    response_id: str = field(default_factory=lambda: f"resp_{uuid.uuid4().hex}")
    item_id: str = field(default_factory=lambda: f"msg_{uuid.uuid4().hex}")
    created_at: int = field(default_factory=lambda: int(time.time()))
    calls: list[tuple[str, str, str]] = field(default_factory=list)
    """Function calls after the message: (call_id, name, arguments as JSON text)."""
    reasoning: str | None = None
    _sequence: int = 0

    def response(self, status: str, text: str | None) -> dict[str, Any]:
        done = status == "completed"
        output = [self._item(text or "", "completed")] if done else []
        if done and self.reasoning:
            output.insert(0, self._reasoning_item())
        if done:
            output += [self._call_item(n, "completed") for n in range(len(self.calls))]
        return {
            "id": self.response_id, "object": "response", "created_at": self.created_at,
            "status": status, **({"model": self.model} if self.model is not None else {}),
            "output": output,
            "parallel_tool_calls": True, "tool_choice": "auto", "tools": [],
            "usage": self.usage if done else None,
        }

    def _item(self, text: str, status: str) -> dict[str, Any]:
        content = [self._part(text)] if status == "completed" else []
        return {"id": self.item_id, "type": "message", "role": "assistant", "status": status,
                "content": content}

    def _reasoning_item(self) -> dict[str, Any]:
        return {"id": f"rs_{self.response_id[5:]}", "type": "reasoning", "summary": [
            {"type": "summary_text", "text": self.reasoning}]}

    def _call_item(self, n: int, status: str) -> dict[str, Any]:
        call_id, name, args = self.calls[n]
        return {"id": f"fc_{call_id[5:]}", "type": "function_call", "call_id": call_id,
                "name": name, "arguments": args if status == "completed" else "",
                "status": status}

    def call_events(self, first_index: int) -> list[bytes]:
        """Each function call as vLLM streams one: added, its arguments' deltas, done."""
        out = []
        for n, (_, _, args) in enumerate(self.calls):
            at = first_index + n
            item = self._call_item(n, "in_progress")
            out.append(self._event("response.output_item.added", output_index=at, item=item))
            for piece in (args[i:i + 16] for i in range(0, len(args), 16)):
                out.append(self._event("response.function_call_arguments.delta",
                                       item_id=item["id"], output_index=at, delta=piece))
            out.append(self._event("response.function_call_arguments.done",
                                   item_id=item["id"], output_index=at, arguments=args))
            out.append(self._event("response.output_item.done", output_index=at,
                                   item=self._call_item(n, "completed")))
        return out

    @staticmethod
    def _part(text: str) -> dict[str, Any]:
        return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}

    def _event(self, kind: str, **fields: Any) -> bytes:
        event = {"type": kind, "sequence_number": self._sequence, **fields}
        self._sequence += 1
        return f"event: {kind}\ndata: {json.dumps(event)}\n\n".encode()

    def _text_at(self) -> dict[str, Any]:
        return {"item_id": self.item_id, "output_index": 0, "content_index": 0}

    def opening(self) -> list[bytes]:
        return [
            self._event("response.created", response=self.response("in_progress", None)),
            self._event("response.in_progress", response=self.response("in_progress", None)),
            self._event("response.output_item.added", output_index=0,
                        item=self._item("", "in_progress")),
            self._event("response.content_part.added", **self._text_at(), part=self._part("")),
        ]

    def delta(self, piece: str) -> bytes:
        return self._event("response.output_text.delta", **self._text_at(), delta=piece,
                           logprobs=[])

    def closing(self, text: str) -> list[bytes]:
        return [
            self._event("response.output_text.done", **self._text_at(), text=text,
                        logprobs=[]),
            self._event("response.content_part.done", **self._text_at(),
                        part=self._part(text)),
            self._event("response.output_item.done", output_index=0,
                        item=self._item(text, "completed")),
            *self.call_events(1),
            self._event("response.completed", response=self.response("completed", text)),
        ]
