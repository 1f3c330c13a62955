"""The requests a run's relay has in flight: `backend/exchanges/inflight.json`.

An exchange reaches `index.jsonl` only once its answer has ended (and the relay is idle):
a dashboard watching a run would otherwise say "no request finished yet" while a model
streams a long answer. The relay rewrites this file atomically, at most every
`PERIOD_S` while a request is in flight, with what each has streamed so far (redacted,
its text's tail bounded), and empties its list when none is; readers poll it.

It is a view of the moment, not evidence (the exchanges are): once the relay stops it
lists nothing, and that last state is what the report hashes beside every other file.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from core.evidence.exchanges import read_bounded

FORMAT = "cto-harness.inflight/1"
NAME = "inflight.json"
PERIOD_S = 0.25
"""The most often the relay rewrites the file (4 Hz: a stream looks live, and the relay's
extra work is a few small writes a second, never one per chunk)."""
TAIL_CHARS = 4096
"""Of the answer's text (and reasoning) so far, the last this many characters are kept."""
READ_LIMIT = 1 << 20


@dataclass
class InFlight:
    """One request the relay is forwarding now."""

    started: str
    api: str
    stream: bool
    model_asked: str | None = None
    model: str | None = None
    """The answering model, as the stream has named it so far."""
    elapsed_s: float = 0.0
    tokens: int = 0
    """Completion tokens so far: the stream's usage when it gave one, else one per delta."""
    tokens_per_s: float | None = None
    text: str = ""
    """The tail of the answer's text so far (redacted)."""
    reasoning: str = ""
    tool_calls: list[str] = field(default_factory=list)
    """The names of the tool calls the answer has begun."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def document(requests: list[InFlight]) -> bytes:
    return json.dumps({"format": FORMAT, "updated": time.time(),
                       "requests": [r.as_dict() for r in requests]},
                      ensure_ascii=False).encode("utf-8", "replace")


def read_inflight(run_dir: Path) -> list[InFlight]:
    """The requests in flight as the relay last wrote them, their elapsed time brought up
    to now; [] when there is no file, or it cannot be read (it is only a view: a bad one
    is not news worth an error)."""
    path = run_dir / "backend" / "exchanges" / NAME
    try:
        doc = json.loads(read_bounded(path, READ_LIMIT))
    except (OSError, ValueError, RecursionError):
        return []
    if not isinstance(doc, dict) or not isinstance(doc.get("requests"), list):
        return []
    updated = doc.get("updated")
    since = max(time.time() - updated, 0.0) if isinstance(updated, int | float) else 0.0
    out: list[InFlight] = []
    for raw in doc["requests"]:
        if not isinstance(raw, dict):
            continue
        try:
            req = InFlight(
                started=str(raw.get("started", "")), api=str(raw.get("api", "")),
                stream=bool(raw.get("stream")), model_asked=_str(raw.get("model_asked")),
                model=_str(raw.get("model")), elapsed_s=float(raw.get("elapsed_s") or 0),
                tokens=int(raw.get("tokens") or 0),
                tokens_per_s=float(raw["tokens_per_s"]) if isinstance(
                    raw.get("tokens_per_s"), int | float) else None,
                text=str(raw.get("text") or "")[-TAIL_CHARS:],
                reasoning=str(raw.get("reasoning") or "")[-TAIL_CHARS:],
                tool_calls=[str(c)[:200] for c in raw.get("tool_calls") or []
                            if isinstance(c, str)][:32])
        except (TypeError, ValueError):
            continue
        req.elapsed_s += since
        out.append(req)
    return out


def _str(value: Any) -> str | None:
    return value[:200] if isinstance(value, str) else None


def iso_age(started: str) -> float:
    """Seconds since an ISO timestamp (0 when it is not one)."""
    try:
        then = datetime.fromisoformat(started.replace("Z", "+00:00"))
    except ValueError:
        return 0.0
    return max(time.time() - then.timestamp(), 0.0)
