"""A run's transcript as others read it: ATIF (Harbor's Agent Trajectory Interchange
Format, so a trial of ours opens in `harbor view`), our own JSON (the steps as rebuilt), and
Markdown for a person.

ATIF as harbor writes it (`ATIF-v1.8`): steps numbered from 1, each with `source` (system,
user, agent), `message`, and on agent steps `model_name`, `reasoning_content`, `tool_calls`
(`arguments` an object), `observation.results` bound to their call by `source_call_id`,
`metrics` (tokens; latency in `metrics.extra`); `final_metrics` sums them. What ATIF has no
field for (the exchange a step came from, its segment, what could not be rebuilt) goes in
`extra`, and the trajectory's `extra.unrebuilt` lists the steps that could not be rebuilt,
with why — an export never hides a gap.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from core.evidence.exchanges import read_bounded
from core.evidence.models import Manifest
from core.evidence.steps import Step
from core.evidence.transcript import Transcript

ATIF_VERSION = "ATIF-v1.8"
MANIFEST_LIMIT = 1 << 20


def manifest_of(run_dir: Path) -> Manifest | None:
    try:
        return Manifest.model_validate_json(read_bounded(run_dir / "manifest.json",
                                                         MANIFEST_LIMIT))
    except (OSError, ValueError, ValidationError):
        return None


def _step(step: Step, n: int) -> dict[str, Any]:
    out: dict[str, Any] = {"step_id": n, "source": step.source, "message": step.message}
    if step.ts:
        out["timestamp"] = step.ts
    extra: dict[str, Any] = {"exchange": step.exchange, "segment": step.segment}
    if step.segment_start:
        extra["segment_start"] = step.segment_start
    if step.problems:
        extra["problems"] = step.problems
    if step.raw is not None:
        extra["raw"] = step.raw
    if step.source == "agent":
        extra["answer"] = step.answer
        if step.model:
            out["model_name"] = step.model
        if step.reasoning:
            out["reasoning_content"] = step.reasoning
        if step.tool_calls:
            out["tool_calls"] = []
            for call in step.tool_calls:
                tc: dict[str, Any] = {"tool_call_id": call.id, "function_name": call.name,
                                      "arguments": call.arguments}
                if call.problem:
                    tc["extra"] = {"problem": call.problem, "arguments_raw": call.arguments_raw}
                out["tool_calls"].append(tc)
        if step.answer:
            metrics: dict[str, Any] = {}
            if step.prompt_tokens is not None:
                metrics["prompt_tokens"] = step.prompt_tokens
            if step.completion_tokens is not None:
                metrics["completion_tokens"] = step.completion_tokens
            if step.latency_ms is not None:
                metrics["extra"] = {"latency_ms": step.latency_ms}
            if metrics:
                out["metrics"] = metrics
            out["llm_call_count"] = 1
    if step.observations:
        out["observation"] = {"results": [
            {"source_call_id": o.call_id, "content": o.content,
             "extra": {"exchange": o.exchange}} for o in step.observations]}
    out["extra"] = extra
    return out


def to_atif(run_dir: Path, transcript: Transcript | None = None) -> dict[str, Any]:
    """The run's trajectory as an ATIF document (a dict ready for JSON)."""
    transcript = transcript or Transcript(run_dir)
    steps = transcript.all_steps()
    manifest = manifest_of(run_dir)
    rows = [_step(s, n) for n, s in enumerate(steps, 1)]
    unrebuilt = [{"step_id": n, "problems": s.problems} for n, s in enumerate(steps, 1)
                 if s.problems]
    if not rows:
        why = "no model exchange was recorded for this run" if not transcript.exchanges \
            else "no exchange of this run was a generation"
        rows = [{"step_id": 1, "source": "system", "message": f"({why})",
                 "extra": {"problems": [why]}}]
        unrebuilt = [{"step_id": 1, "problems": [why]}]
    answers = [s for s in steps if s.answer]
    prompt = [s.prompt_tokens for s in answers if s.prompt_tokens is not None]
    completion = [s.completion_tokens for s in answers if s.completion_tokens is not None]
    run_id = manifest.run_id if manifest else run_dir.name
    agent: dict[str, Any] = {
        "name": (manifest.case_bin_name or manifest.engine) if manifest else "unknown",
        "version": "unknown",
        "extra": {"recorded_by": "cto-harness relay",
                  "harness_version": manifest.harness_version if manifest else None},
    }
    if manifest:
        agent["model_name"] = manifest.model
    doc: dict[str, Any] = {
        "schema_version": ATIF_VERSION,
        "session_id": run_id,
        "trajectory_id": run_id,
        "agent": agent,
        "steps": rows,
        "final_metrics": {
            "total_prompt_tokens": sum(prompt) if prompt else None,
            "total_completion_tokens": sum(completion) if completion else None,
            "total_steps": len(rows),
            "extra": {"exchanges": transcript.exchanges,
                      "llm_calls": len(answers),
                      "latency_ms": round(sum(s.latency_ms or 0 for s in answers), 1)},
        },
        "extra": {"task": manifest.task if manifest else None,
                  "job_id": manifest.job_id if manifest else None,
                  "unrebuilt": unrebuilt,
                  "problems": transcript.problems},
    }
    if unrebuilt:
        doc["notes"] = (f"{len(unrebuilt)} step(s) could not be rebuilt whole; "
                        "extra.unrebuilt says which and why")
    return doc


def to_json(run_dir: Path, transcript: Transcript | None = None) -> dict[str, Any]:
    """The steps as rebuilt, our own shape (core/evidence/transcript.py's `Step`)."""
    transcript = transcript or Transcript(run_dir)
    steps = transcript.all_steps()
    return {"run": run_dir.name, "exchanges": transcript.exchanges,
            "steps": [s.as_dict() for s in steps], "problems": transcript.problems,
            "unrebuilt": [s.index for s in steps if s.problems]}


def _fence(text: str, lang: str = "") -> str:
    ticks = "```"
    while ticks in text:
        ticks += "`"
    return f"{ticks}{lang}\n{text}\n{ticks}"


def to_markdown(run_dir: Path, transcript: Transcript | None = None) -> str:
    transcript = transcript or Transcript(run_dir)
    steps = transcript.all_steps()
    manifest = manifest_of(run_dir)
    out = [f"# Transcript of {run_dir.name}", ""]
    if manifest:
        out += [f"Task `{manifest.task}`, Case `{manifest.case_bin_name or manifest.engine}`, "
                f"model `{manifest.model}`; {transcript.exchanges} exchange(s), "
                f"{len(steps)} step(s).", ""]
    if not steps:
        out.append("_No model exchange was recorded for this run._")
    for step in steps:
        if step.segment_start:
            out += [f"## Segment {step.segment}: {step.segment_start}", ""]
        head = f"### {step.index + 1} · {step.source}"
        if step.answer:
            facts = [step.model or "model unknown"]
            if step.prompt_tokens is not None or step.completion_tokens is not None:
                facts.append(f"{step.prompt_tokens or 0}→{step.completion_tokens or 0} tokens")
            if step.latency_ms is not None:
                facts.append(f"{step.latency_ms:.0f} ms")
            head += " · " + " · ".join(facts)
        out += [head + f" (exchange {step.exchange})", ""]
        for problem in step.problems:
            out.append(f"> **could not be rebuilt whole:** {problem}")
        if step.problems:
            out.append("")
        if step.reasoning:
            out += ["<details><summary>reasoning</summary>", "", _fence(step.reasoning),
                    "", "</details>", ""]
        if step.message:
            out += [_fence(step.message) if step.source != "agent" else step.message, ""]
        for call in step.tool_calls:
            args = call.arguments_raw if call.problem else json.dumps(
                call.arguments, indent=2, ensure_ascii=False)
            out += [f"**tool call** `{call.name}` ({call.id})", "", _fence(args or "",
                                                                            "json"), ""]
            for obs in step.observations:
                if obs.call_id == call.id:
                    out += [f"**result** of {call.id}", "", _fence(obs.content), ""]
        for obs in step.observations:
            if obs.call_id is None:
                out += ["**result** (bound to no call)", "", _fence(obs.content), ""]
        if step.raw is not None:
            out += ["raw, as recorded:", "", _fence(step.raw), ""]
    return "\n".join(out) + "\n"
