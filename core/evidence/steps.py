"""The steps of a rebuilt conversation (core/evidence/transcript.py makes them; the
Conversation tab, `cto-harness transcript` and the ATIF export read them): who spoke, what
was said, the tool calls and the results bound to them, and what could not be rebuilt.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Source = Literal["system", "user", "agent"]
RESULT_TYPES = {"function_call_output", "custom_tool_call_output",
                "local_shell_call_output", "computer_call_output"}
"""Responses API input items that carry a tool's result back to the model."""
AGENT_ITEM_TYPES = {"function_call", "reasoning", "custom_tool_call", "local_shell_call",
                    "web_search_call", "file_search_call", "computer_call"}
"""Responses API items the model produced (resent by the agent as history)."""


@dataclass
class ToolCall:
    id: str
    name: str
    arguments: dict[str, Any]
    """The call's arguments as an object; `{}` (and `arguments_raw`, `problem`) when they
    were not a JSON object."""
    arguments_raw: str | None = None
    problem: str | None = None


@dataclass
class Observation:
    """A tool's result, bound to the call it answers (`call_id` None when unbound)."""

    call_id: str | None
    content: str
    exchange: int
    """The exchange whose request carried it back to the model."""


@dataclass
class Step:
    index: int
    """0-based position in the transcript."""
    source: Source
    message: str
    exchange: int
    """The exchange it came from: an answer's, or the request that carried the message."""
    segment: int
    reasoning: str | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    observations: list[Observation] = field(default_factory=list)
    model: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    latency_ms: float | None = None
    ts: str | None = None
    answer: bool = False
    """An answer the relay saw (with its model, tokens, latency), not a message that only
    appeared in a request."""
    segment_start: str | None = None
    """Set on the first step of a segment: why one starts here."""
    problems: list[str] = field(default_factory=list)
    raw: str | None = None
    """The text as it came, when it could not be read as JSON."""

    def add_call(self, call_id: Any, name: Any, arguments: Any, n: int) -> str:
        """A tool call this step made, its arguments parsed (a problem noted when they are
        not a JSON object); returns its id (made up from the exchange and `n` when the
        wire had none), which its result will name."""
        args, raw, problem = parse_arguments(arguments)
        cid = call_id if isinstance(call_id, str) and call_id else f"call-{self.exchange}-{n}"
        self.tool_calls.append(ToolCall(cid, name if isinstance(name, str) else "?", args,
                                        raw, problem))
        if problem:
            self.problems.append(f"tool call {cid}: {problem}")
        return cid

    @property
    def first_line(self) -> str:
        text = self.message.strip() or (f"{len(self.tool_calls)} tool call(s): " + ", ".join(
            c.name for c in self.tool_calls) if self.tool_calls else "")
        return text.splitlines()[0] if text else (self.problems[0] if self.problems else "")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def text_of(content: Any) -> str:
    """The text of a message's content: a string, or a list of parts (`text`,
    `input_text`, `output_text`, `refusal`; other parts named in brackets)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        out = []
        for part in content:
            if isinstance(part, str):
                out.append(part)
            elif isinstance(part, dict):
                got = part.get("text", part.get("refusal"))
                out.append(got if isinstance(got, str) else f"[{part.get('type', 'part')}]")
        return "\n".join(out)
    return json.dumps(content, ensure_ascii=False)


def parse_arguments(raw: Any) -> tuple[dict[str, Any], str | None, str | None]:
    """(arguments as an object, the raw text when not one, the reason)."""
    if isinstance(raw, dict):
        return raw, None, None
    if not isinstance(raw, str):
        return {}, json.dumps(raw), "the arguments are not a JSON string"
    if not raw.strip():
        return {}, None, None
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        return {}, raw, "the arguments are not valid JSON"
    if isinstance(value, dict):
        return value, None, None
    return {"value": value}, raw, "the arguments are JSON but not an object"


def result_text(value: Any) -> str:
    """A tool result's text: a chat `tool` message's content, a Responses item's output."""
    if not isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False)
    if value.get("type") in RESULT_TYPES:
        output = value.get("output")
        return json.dumps(output, ensure_ascii=False) if isinstance(output, dict) \
            else text_of(output)
    return text_of(value.get("content"))


def from_agent(value: Any) -> bool:
    """An item the model produced: an assistant message or one of AGENT_ITEM_TYPES."""
    if not isinstance(value, dict):
        return False
    return value.get("role") == "assistant" or value.get("type") in AGENT_ITEM_TYPES
