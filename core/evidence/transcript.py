"""A run's conversation, rebuilt from the exchanges the relay kept — for any agent, from the
wire, with nothing installed in the agent.

Reader API (what the dashboard's Conversation tab and `cto-harness transcript` build on):

    t = Transcript(run_dir)        # opens nothing yet
    t.refresh()                    # reads what the exchanges index grew by (a live run)
    t.exchanges                    # how many exchanges the index lists so far
    t.steps(offset, limit)         # steps [offset, offset+limit), rebuilt on demand
    t.known                        # steps rebuilt so far; t.complete: every exchange read
    t.all_steps()                  # everything (the exports)
    t.problems                     # what could not be read, folder-wide

`steps()` reads exchanges in order only as far as the asked window needs (plus one, so the
window's tool calls have their results bound), and each new message's blob once: the first
screen of a run with 5,000 exchanges reads a handful of files. A step is never half-built:
what could not be rebuilt is a step with `problems` (and `raw` when there was text).

How the steps are found:
- **Chat completions** resend the whole history each turn. A request whose items begin with
  an earlier request's items continues that conversation: only the items after that prefix
  are new; the first of them that came from the assistant is the agent resending the answer
  it got (already a step: skipped). Items are compared by their content address, so this
  costs no blob read.
- **Responses API**: the same on `input`; a request naming `previous_response_id` carries
  only new items, and continues the conversation that response ended (a map from response
  id to its conversation's items is kept).
- A request that continues nothing seen before — a compacted history, a second
  conversation, a sub-agent — starts a new **segment**, marked with the reason.
- Tool results are bound to the call that asked for them (`tool_call_id` / `call_id`) as
  observations of that agent step.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.evidence.exchanges import ExchangeFolder, Loaded
from core.evidence.steps import (
    AGENT_ITEM_TYPES,
    RESULT_TYPES,
    Observation,
    Source,
    Step,
    from_agent,
    result_text,
    text_of,
)

GENERATING = ("chat/completions", "responses", "completions")
THREADS_KEPT = 32


@dataclass(frozen=True)
class _Lazy:
    """An item not read yet: its blob's reference (and its descriptor: role, type, the call
    it answers)."""

    ref: Any
    desc: Any = None


@dataclass
class _Thread:
    keys: tuple[str, ...]
    answered: bool


class Transcript:
    """One run's conversation, rebuilt lazily (see the module docstring for the API)."""

    def __init__(self, run_dir: Path, folder: ExchangeFolder | None = None,
                 lazy: bool = False) -> None:
        self.run_dir = run_dir
        self.folder = folder or ExchangeFolder.of_run(run_dir)
        self.lazy = lazy
        """Tool results bound to a known call are not read while rebuilding, only their
        blob's reference kept: `fill(step)` reads them when the step is shown. A long run's
        results are most of its bytes (300 MB for 5,000 turns): a dashboard reading them
        all to reach the middle would take seconds and hold them all."""
        self._lazy: dict[int, str] = {}
        """id(observation) -> the blob holding its result (lazy mode)."""
        self._steps: list[Step] = []
        self._next = 0
        self._count = 0
        self._threads: list[_Thread] = []
        self._responses: dict[str, tuple[str, ...]] = {}
        self._calls: dict[str, Step] = {}
        self._segment = 0
        self._last_agent: Step | None = None
        self._pending_start: str | None = None
        self.problems: list[str] = []
        self.exchanges_read = 0
        self.skipped: list[int] = []
        """Exchanges that are not generations (embeddings): not steps."""

    # -- the API ---------------------------------------------------------------------
    def refresh(self) -> None:
        self._count = self.folder.refresh()
        for problem in self.folder.problems:
            if problem not in self.problems:
                self.problems.append(problem)

    @property
    def exchanges(self) -> int:
        if not self._count:
            self.refresh()
        return self._count

    @property
    def known(self) -> int:
        return len(self._steps)

    @property
    def complete(self) -> bool:
        return self._next >= self.exchanges

    def steps(self, offset: int = 0, limit: int = 50) -> list[Step]:
        if not self._count:
            self.refresh()
        want = offset + limit
        while self._next < self._count and len(self._steps) < want:
            self._read_next()
        if self._next < self._count:  # the window's calls get their results
            self._read_next()
        return self._steps[offset:want]

    def all_steps(self) -> list[Step]:
        self.refresh()
        while self._next < self._count:
            self._read_next()
        return self._steps

    def fill(self, step: Step) -> list[Observation]:
        """Read the step's tool results left unread (lazy mode); the ones it read. A blob
        that cannot be read becomes the step's problem, as when rebuilt eagerly."""
        filled = []
        for obs in step.observations:
            ref = self._lazy.get(id(obs))
            if ref is None or obs.content:
                continue
            value, problem = self.folder.blob(ref)
            if problem is not None:
                if problem not in step.problems:
                    step.problems.append(problem)
                continue
            obs.content = result_text(value)
            filled.append(obs)
        return filled

    def unfill(self, observations: list[Observation]) -> None:
        """Let results read by `fill` go again (a search reads them all, one at a time)."""
        for obs in observations:
            if id(obs) in self._lazy:
                obs.content = ""

    # -- rebuilding ------------------------------------------------------------------
    def _read_next(self) -> None:
        entry = self.folder.entry(self._next)
        self._next += 1
        self.exchanges_read += 1
        if entry.meta.get("route") and entry.meta["route"] not in GENERATING:
            self.skipped.append(entry.seq)
            return
        loaded = self.folder.load(entry, items=False)
        route = loaded.meta.get("route")
        if route is not None and route not in GENERATING:
            self.skipped.append(entry.seq)
            return
        api = loaded.meta.get("api") or ("responses" if route == "responses" else "chat")
        if loaded.request is None:
            self._unreadable(loaded)
            return
        if route == "completions":
            self._completion(loaded)
        elif api == "responses":
            self._responses_request(loaded)
        else:
            self._chat_request(loaded)

    def _add(self, step_source: Source, message: str, loaded: Loaded, **kw: Any) -> Step:
        step = Step(index=len(self._steps), source=step_source, message=message,
                    exchange=loaded.seq, segment=max(self._segment, 1),
                    ts=loaded.meta.get("started") or loaded.meta.get("ts"), **kw)
        if self._pending_start is not None:
            step.segment_start, self._pending_start = self._pending_start, None
        self._steps.append(step)
        return step

    def _unreadable(self, loaded: Loaded) -> None:
        if self._segment == 0:
            self._start_segment("the first request")
        why = loaded.problems or ["the exchange holds no request"]
        step = self._add("agent", "", loaded, raw=loaded.request_raw, problems=list(why))
        self._meta(step, loaded)
        if loaded.response is not None or loaded.response_raw is not None:
            self._answer(loaded, step)

    def _start_segment(self, why: str) -> None:
        self._segment += 1
        self._pending_start = why

    def _continue(self, keys: tuple[str, ...]) -> tuple[int, bool]:
        """How many leading items an earlier request already had (its conversation
        continues), and whether that request was answered; (-1, False) for none."""
        best, answered = -1, False
        for thread in self._threads:
            n = len(thread.keys)
            if n > best and n <= len(keys) and keys[:n] == thread.keys:
                best, answered = n, thread.answered
        return best, answered

    def _remember(self, keys: tuple[str, ...], answered: bool) -> None:
        self._threads = [t for t in self._threads if t.keys != keys]
        self._threads.append(_Thread(keys, answered))
        del self._threads[:-THREADS_KEPT]

    def _new_items(self, keys: tuple[str, ...], first_why: str) -> tuple[int, bool]:
        seen, answered = self._continue(keys)
        if seen < 0 or (seen == 0 and self._segment):
            why = first_why if self._segment == 0 else (
                "the history continues no earlier request (compacted, a new conversation "
                "or a sub-agent)")
            self._start_segment(why)
            return 0, False
        return seen, answered

    # chat ------------------------------------------------------------------------------
    def _chat_request(self, loaded: Loaded) -> None:
        descs = loaded.items.get("messages", [])
        keys = tuple(str(d.get("ref")) for d in descs)
        start, echo = self._new_items(keys, "the first request")
        for desc in descs[start:]:
            if echo and desc.get("role") == "assistant":
                continue
            echo = False
            if self.lazy and desc.get("role") == "tool" and \
                    desc.get("call_id") in self._calls and isinstance(desc.get("ref"), str):
                obs = self._observe(desc["call_id"], "", loaded)
                if obs is not None:
                    self._lazy[id(obs)] = desc["ref"]
                continue
            self._chat_message(self.folder.blob(desc.get("ref"))[0], desc, loaded)
        step = self._add("agent", "", loaded, answer=True)
        self._meta(step, loaded)
        self._answer(loaded, step)
        self._remember(keys, loaded.response is not None)

    def _chat_message(self, value: Any, desc: dict[str, Any], loaded: Loaded) -> None:
        if not isinstance(value, dict):
            self._add("user", json.dumps(value, ensure_ascii=False), loaded,
                      problems=["a message that is not a JSON object"])
            return
        if "cto_harness_unreadable" in value:
            self._add("user", "", loaded, problems=[str(value["cto_harness_unreadable"])])
            return
        role = value.get("role")
        text = text_of(value.get("content"))
        if role == "tool" or role == "function":
            self._observe(value.get("tool_call_id"), text, loaded)
        elif role == "assistant":
            step = self._add("agent", text, loaded)
            self._calls_of(step, value.get("tool_calls"))
        elif role in ("system", "developer"):
            self._add("system", text, loaded)
        else:
            problems = [] if role == "user" else [f"a message with role {str(role)[:40]!r}"]
            self._add("user", text, loaded, problems=problems)

    def _calls_of(self, step: Step, calls: Any) -> None:
        for n, call in enumerate(calls if isinstance(calls, list) else []):
            if not isinstance(call, dict):
                step.problems.append("a tool call that is not a JSON object")
                continue
            fn = f if isinstance(f := call.get("function"), dict) else {}
            self._call(step, call.get("id"), fn.get("name"), fn.get("arguments"), n)

    def _call(self, step: Step, call_id: Any, name: Any, arguments: Any, n: int) -> None:
        self._calls[step.add_call(call_id, name, arguments, n)] = step  # for its results

    def _observe(self, call_id: Any, text: str, loaded: Loaded) -> Observation | None:
        step = self._calls.get(call_id) if isinstance(call_id, str) else None
        if step is not None:
            obs = Observation(call_id, text, loaded.seq)
            step.observations.append(obs)
            return obs
        if self._last_agent is not None:
            self._last_agent.observations.append(Observation(None, text, loaded.seq))
            self._last_agent.problems.append(
                f"a tool result for call {str(call_id)[:60]!r}, which no answer made")
            return None
        self._add("user", text, loaded, problems=[
            f"a tool result for call {str(call_id)[:60]!r}, which no answer made"])
        return None

    def _meta(self, step: Step, loaded: Loaded) -> None:
        meta = loaded.meta
        step.model = meta.get("model_answered") or None
        step.prompt_tokens = meta.get("prompt_tokens")
        step.completion_tokens = meta.get("completion_tokens")
        step.latency_ms = meta.get("latency_ms")
        self._last_agent = step
        status = meta.get("status")
        if meta.get("error"):
            step.problems.append(f"HTTP {status}: {meta['error']}")
        elif isinstance(status, int) and status >= 400:
            step.problems.append(f"HTTP {status}")

    def _answer(self, loaded: Loaded, step: Step) -> None:
        step.problems.extend(p for p in loaded.problems if p not in step.problems)
        data = loaded.response
        if loaded.response_raw is not None:
            step.raw = loaded.response_raw
            return
        if not isinstance(data, dict):
            if data is not None:
                step.problems.append("the answer is not a JSON object")
            return
        if data.get("object") == "response" or "output" in data:
            self._responses_output(data, step)
            return
        choices = data.get("choices")
        if not isinstance(choices, list) or not choices:
            if data.get("error") is None:
                step.problems.append("the answer holds no choice")
            return
        choice = choices[0] if isinstance(choices[0], dict) else {}
        message = m if isinstance(m := choice.get("message"), dict) else {}
        if "text" in choice and not message:
            step.message = str(choice.get("text") or "")
            return
        step.message = text_of(message.get("content"))
        reasoning = message.get("reasoning_content") or message.get("reasoning")
        step.reasoning = reasoning if isinstance(reasoning, str) and reasoning else None
        self._calls_of(step, message.get("tool_calls"))

    # responses -------------------------------------------------------------------------
    def _responses_request(self, loaded: Loaded) -> None:
        request = loaded.request or {}
        descs = loaded.items.get("input", [])
        raw_input = request.get("input")
        values: list[Any] = [_Lazy(d.get("ref"), d) for d in descs]
        if isinstance(raw_input, str):
            values = [{"role": "user", "content": raw_input}]
            descs = [{"ref": f"text:{hash(raw_input)}"}]
        keys = tuple(str(d.get("ref")) for d in descs)
        instructions = request.get("instructions")
        if isinstance(instructions, str) and instructions:
            values = [{"role": "system", "content": instructions}, *values]
            keys = (f"instructions:{hash(instructions)}", *keys)
        previous = request.get("previous_response_id")
        if isinstance(previous, str) and previous:
            before = self._responses.get(previous)
            if before is None:
                self._start_segment(f"previous_response_id {previous[:60]!r} names a "
                                    "response the relay never saw")
                before = ()
            start, echo = 0, False
            if instructions and keys and keys[0] in before:  # resent, not new
                values, keys = values[1:], keys[1:]
            full = before + keys
        else:
            full = keys
            start, echo = self._new_items(full, "the first request")
        for value in values[start:]:
            if isinstance(value, _Lazy):
                desc = value.desc if isinstance(value.desc, dict) else {}
                if self.lazy and desc.get("type") in RESULT_TYPES and \
                        desc.get("call_id") in self._calls and isinstance(value.ref, str):
                    echo = False
                    obs = self._observe(desc["call_id"], "", loaded)
                    if obs is not None:
                        self._lazy[id(obs)] = value.ref
                    continue
                value = self.folder.blob(value.ref)[0]
            if echo and from_agent(value):
                continue
            echo = False
            self._input_item(value, loaded)
        step = self._add("agent", "", loaded, answer=True)
        self._meta(step, loaded)
        self._answer(loaded, step)
        self._remember(full, loaded.response is not None)
        response = loaded.response if isinstance(loaded.response, dict) else {}
        if isinstance(response.get("id"), str):
            out_keys = tuple(f"out:{response['id']}:{i}" for i in
                             range(len(response.get("output") or [])))
            self._responses[response["id"]] = full + out_keys

    def _input_item(self, value: Any, loaded: Loaded) -> None:
        if not isinstance(value, dict):
            self._add("user", json.dumps(value, ensure_ascii=False), loaded,
                      problems=["an input item that is not a JSON object"])
            return
        if "cto_harness_unreadable" in value:
            self._add("user", "", loaded, problems=[str(value["cto_harness_unreadable"])])
            return
        kind = value.get("type")
        if kind in RESULT_TYPES:
            output = value.get("output")
            self._observe(value.get("call_id"), text_of(output) if not isinstance(
                output, dict) else json.dumps(output, ensure_ascii=False), loaded)
        elif kind in AGENT_ITEM_TYPES:
            step = self._add("agent", "", loaded)
            self._output_item(value, step, 0)
        else:
            self._chat_message(value, {}, loaded)

    def _responses_output(self, data: dict[str, Any], step: Step) -> None:
        output = data.get("output")
        for n, item in enumerate(output if isinstance(output, list) else []):
            if isinstance(item, dict):
                self._output_item(item, step, n)
        if data.get("error"):
            step.problems.append(f"the response failed: {data['error']}")

    def _output_item(self, item: dict[str, Any], step: Step, n: int) -> None:
        kind = item.get("type")
        if kind == "message":
            text = text_of(item.get("content"))
            step.message = f"{step.message}\n{text}" if step.message else text
        elif kind == "reasoning":
            parts = [text_of(item.get(k)) for k in ("summary", "content") if item.get(k)]
            text = "\n".join(p for p in parts if p)
            if text:
                step.reasoning = f"{step.reasoning}\n{text}" if step.reasoning else text
        elif kind == "function_call":
            self._call(step, item.get("call_id"), item.get("name"), item.get("arguments"), n)
        elif kind == "custom_tool_call":
            self._call(step, item.get("call_id"), item.get("name"),
                       {"input": item.get("input")}, n)
        elif kind == "local_shell_call":
            self._call(step, item.get("call_id"), "local_shell",
                       item.get("action") if isinstance(item.get("action"), dict) else {}, n)
        else:
            step.problems.append(f"an output item of type {str(kind)[:40]!r}, shown raw")
            step.raw = json.dumps(item, ensure_ascii=False)

    # legacy completions ----------------------------------------------------------------
    def _completion(self, loaded: Loaded) -> None:
        if self._segment == 0:
            self._start_segment("the first request")
        prompt = (loaded.request or {}).get("prompt")
        self._add("user", text_of(prompt), loaded)
        step = self._add("agent", "", loaded, answer=True)
        self._meta(step, loaded)
        self._answer(loaded, step)
