"""How one step of a rebuilt conversation is drawn (the Conversation tab's rows and its
step view, the Live relay panel's answer in flight): everything from a model or an agent
through `safe()`/`inert()` and the display redactor, never as markup."""

from __future__ import annotations

import json
from collections.abc import Callable

from rich.console import Group, RenderableType
from rich.json import JSON as RichJSON
from rich.text import Text

from core.evidence.inflight import InFlight
from core.evidence.steps import Step
from tui.terminal_text import inert, safe

SHOWN_CHARS = 200_000
"""Of one message or tool result, this much is shown (the transcript export has it all)."""
FIRST_LINE = 160
MODEL_W = 24
MODEL_W_NARROW = 12
"""The model column's width from 120 columns on, and below."""
WHO_STYLE = {"system": "magenta", "user": "cyan", "agent": "green"}


def _cut(text: str, limit: int = SHOWN_CHARS) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}\n… [cut: {len(text) - limit:,} more characters; " \
           "`cto-harness transcript` has them all]"


def step_text(step: Step) -> str:
    """Everything of a step a search can find."""
    parts = [step.message, step.reasoning or "", *step.problems, step.raw or ""]
    for call in step.tool_calls:
        parts += [call.name, json.dumps(call.arguments, ensure_ascii=False),
                  call.arguments_raw or ""]
    parts += [o.content for o in step.observations]
    return "\n".join(parts)


def step_row(step: Step, redact: Callable[[str], str], width: int = 160
             ) -> tuple[Text, ...]:
    """One table row: #, who, tokens in/out, latency, model, first line (last: it takes
    what width is left, and the figures stay in view at 80 columns)."""
    model_w = MODEL_W if width >= 120 else MODEL_W_NARROW
    room = max(12, min(FIRST_LINE, width - model_w - 40))
    """What the other columns and the cells' padding leave: no horizontal scrollbar."""
    first = redact(step.first_line)
    if len(first) > room:
        first = first[:room - 1] + "…"
    style = "red" if step.problems else ""
    who = step.source + (" ⚙" if step.tool_calls else "")
    if step.problems:
        who += " !"
    tokens, latency = figures(step)
    model = redact(step.model or "")
    return (Text(str(step.index + 1)), inert(who, WHO_STYLE.get(step.source, "")),
            Text(tokens), Text(latency),
            inert(model if len(model) <= model_w else model[:model_w - 1] + "…"),
            inert(first, style))


def figures(step: Step) -> tuple[str, str]:
    """A row's tokens (in/out) and latency cells."""
    tokens = "" if step.prompt_tokens is None and step.completion_tokens is None else \
        f"{_n(step.prompt_tokens)}/{_n(step.completion_tokens)}"
    return tokens, "" if step.latency_ms is None else f"{step.latency_ms:.0f} ms"


def _n(value: int | None) -> str:
    return "?" if value is None else f"{value:,}"


def pretty_json(value: object, redact: Callable[[str], str]) -> RenderableType:
    """Indented, highlighted JSON, every string made inert first (a model's arguments may
    carry escape sequences)."""
    text = safe(redact(json.dumps(value, indent=2, ensure_ascii=False, default=str)))
    try:
        return RichJSON(_cut(text), indent=2, ensure_ascii=False)
    except (ValueError, RecursionError):  # a redaction or cut broke the JSON
        return Text(_cut(text))


UNFOLD_LINES = 3
"""A string argument of at least this many lines (a file's content, a patch, a script) is
shown as its text below the JSON, not as one line of `\\n` escapes."""


def unfold_strings(args: dict[str, object]) -> tuple[dict[str, object], list[tuple[str, str]]]:
    """The arguments with each long multi-line top-level string replaced by a note, and
    those strings, to be shown as text."""
    out: dict[str, object] = {}
    blocks: list[tuple[str, str]] = []
    for key, value in args.items():
        if isinstance(value, str) and value.count("\n") >= UNFOLD_LINES - 1:
            out[key] = f"({value.count(chr(10)) + 1} lines, below)"
            blocks.append((key, value))
        else:
            out[key] = value
    return out, blocks


def step_view(step: Step, redact: Callable[[str], str], reasoning: bool) -> Group:
    """A step whole: its header, why a segment starts here, its problems, the message, the
    reasoning (folded unless `reasoning`), each tool call with its arguments and results."""
    parts: list[RenderableType] = []
    head = Text(f"step {step.index + 1} · ", style="bold")
    head.append(safe(step.source), style=f"bold {WHO_STYLE.get(step.source, '')}")
    head.append(f" · exchange {step.exchange} · segment {step.segment}")
    if step.model:
        head.append(" · ")
        head.append(safe(redact(step.model)), style="cyan")
    if step.answer:
        head.append(f" · {_n(step.prompt_tokens)} in / {_n(step.completion_tokens)} out")
        if step.latency_ms is not None:
            head.append(f" · {step.latency_ms:.0f} ms")
    parts.append(head)
    if step.segment_start:
        parts.append(inert(f"new segment: {step.segment_start}", "yellow"))
    for problem in step.problems:
        parts.append(inert(f"! {redact(problem)}", "bold red"))
    if step.message:
        parts.append(inert(_cut(redact(step.message))))
    if step.reasoning:
        lines = step.reasoning.count("\n") + 1
        if reasoning:
            parts.append(Text("▾ reasoning (z folds)", style="dim bold"))
            parts.append(inert(_cut(redact(step.reasoning)), "dim italic"))
        else:
            parts.append(Text(f"▸ reasoning, {lines} line{'s' * (lines != 1)} "
                              f"({len(step.reasoning):,} characters): z unfolds",
                              style="dim"))
    bound = {o.call_id for o in step.observations}
    for call in step.tool_calls:
        title = Text("→ tool call ", style="bold yellow")
        title.append(safe(redact(call.name)), style="bold")
        title.append(f"  {safe(redact(call.id))}", style="dim")
        parts.append(title)
        if call.problem:
            parts.append(inert(f"! {call.problem}; as sent:", "red"))
            parts.append(inert(_cut(redact(call.arguments_raw or "")), "red"))
        else:
            args, blocks = unfold_strings(call.arguments)
            parts.append(pretty_json(args, redact))
            for key, value in blocks:
                parts.append(Text(f"  {safe(key)}:", style="bold"))
                parts.append(inert(_cut(redact(value))))
        for obs in step.observations:
            if obs.call_id == call.id:
                parts.append(Text(f"← result (sent back in exchange {obs.exchange})",
                                  style="bold blue"))
                parts.append(inert(_cut(redact(obs.content))))
        if call.id not in bound:
            parts.append(Text("← no result seen (yet)", style="dim"))
    for obs in step.observations:
        if obs.call_id is None or obs.call_id not in {c.id for c in step.tool_calls}:
            parts.append(Text(f"← a result bound to no call of this step (exchange "
                              f"{obs.exchange})", style="bold red"))
            parts.append(inert(_cut(redact(obs.content))))
    if step.raw is not None:
        parts.append(Text("as it came (raw):", style="bold red"))
        parts.append(inert(_cut(redact(step.raw))))
    if len(parts) == 1:
        parts.append(Text("(empty)", style="dim"))
    return Group(*parts)


def inflight_line(now: list[InFlight], redact: Callable[[str], str], tail: bool = True
                  ) -> Text:
    """The requests in flight: model, tokens so far, tokens/s, the answer's last line
    (unless not `tail`: shown whole below it)."""
    text = Text()
    for n, req in enumerate(now):
        if n:
            text.append("\n")
        text.append("⟳ in flight ", style="bold yellow")
        text.append(safe(redact(req.model or req.model_asked or "?")), style="cyan")
        text.append(f" · {req.elapsed_s:.1f} s")
        if req.stream:
            rate = f" · {req.tokens_per_s:.1f} tokens/s" if req.tokens_per_s else ""
            text.append(f" · {req.tokens:,} tokens so far{rate}")
        else:
            text.append(" · waiting for a whole answer")
        if req.tool_calls:
            text.append(f" · calling {', '.join(safe(redact(c)) for c in req.tool_calls)}")
        last = (req.text or req.reasoning or "").rstrip().rsplit("\n", 1)[-1] if tail else ""
        if last:
            text.append(" · ")
            text.append(safe(redact(last[-200:])), style="italic")
    return text


def inflight_view(now: list[InFlight], redact: Callable[[str], str]) -> Group:
    """The answers streaming now, whole as far as the relay's record keeps them (the
    tail of the text and reasoning): Live shows the step being born, not only its last
    line."""
    parts: list[RenderableType] = [inflight_line(now, redact, tail=False)]
    for req in now:
        if req.reasoning:
            parts.append(Text("▾ reasoning so far", style="dim bold"))
            parts.append(inert(redact(req.reasoning), "dim italic"))
        if req.text:
            parts.append(inert(redact(req.text)))
        if req.tool_calls:
            parts.append(inert("→ calling " + ", ".join(redact(c) for c in req.tool_calls),
                               "bold yellow"))
    return Group(*parts)
