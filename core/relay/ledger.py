"""The relay's ledger: one `RelayRecord` per request the Case made (backend/relay.jsonl),
refusals and failures included, and the OpenAI-style answers that go with them.

Every text in a record or an answer that came from the upstream or the Case passes the
run's redactor first; an excerpt is cut only after the whole text is redacted.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from starlette.responses import Response

from core.evidence.models import RelayRecord
from core.evidence.rundir import utcnow
from core.relay.loopback import openai_error
from core.relay.passage import Observed, answered_model
from core.relay.recording import Capture, Recorder

EXCERPT_CHARS = 500


@dataclass
class Pending:
    """What the relay learns about one request while it handles it."""

    method: str
    path: str
    started: float = field(default_factory=time.monotonic)
    model_asked: str | None = None
    seen: Observed = field(default_factory=Observed)
    status: int = 0
    stream: bool = False
    refused: str | None = None
    error: str | None = None
    foreign: bool = False
    """It lacked the run's token on the relay's TCP door: another local process's."""
    held: int = 0
    """Body bytes counted against the relay's `Load` until the request ends."""
    capture: Capture | None = None
    """The request and answer kept for `backend/exchanges/` (forwarded requests only)."""
    bytes_out: int = 0
    """Answer bytes passed back (a gateway's ledger records them)."""
    job: str | None = None
    run: str | None = None
    sent_job: str | None = None
    """At a gateway: the job its token names, and the run and job the relay said."""


class Ledger:
    """Records each request once it ends, to the file, to `records` and to `on_record`."""

    WHO = "relay"
    """Who answers a refusal or failure (`cto-harness relay refused: ...`)."""

    def __init__(self, path: Path, redact: Callable[[str], str],
                 on_record: Callable[[RelayRecord], None] | None = None,
                 recorder: Recorder | None = None) -> None:
        self._path = path
        self._redact = redact
        self._on_record = on_record
        self.recorder = recorder
        self._file: TextIO | None = None
        self.records: list[RelayRecord] = []

    def open(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self._path.open("a", encoding="utf-8")

    def close(self) -> None:
        if self.recorder is not None:
            self.recorder.close()
        if self._file is not None:
            self._file.close()
            self._file = None

    def refuse(self, pending: Pending, status: int, reason: str, kind: str) -> Response:
        pending.status, pending.refused = status, reason
        self.finish(pending)
        return openai_error(status, f"cto-harness {self.WHO} refused: {reason}", kind)

    def fail(self, pending: Pending, status: int, message: str) -> Response:
        pending.status, pending.error = status, message
        self.finish(pending)
        return openai_error(status, f"cto-harness {self.WHO}: {message}", "upstream_error")

    def finish(self, pending: Pending) -> None:
        record = RelayRecord(
            ts=utcnow(),
            method=pending.method,
            path=pending.path,
            model_asked=pending.model_asked,
            model_answered=self._redact_opt(answered_model(pending.seen.models,
                                                           pending.model_asked)),
            status=pending.status,
            latency_ms=round((time.monotonic() - pending.started) * 1000, 1),
            stream=pending.stream,
            refused=pending.refused,
            foreign=pending.foreign,
            error=self._redact_opt(pending.error),
            prompt_tokens=pending.seen.prompt_tokens,
            completion_tokens=pending.seen.completion_tokens,
        )
        self.records.append(record)
        if self.recorder is not None and pending.capture is not None:
            self.recorder.record(pending.capture, record, pending.stream)
        if self._file is not None:
            self._file.write(self.line(record, pending) + "\n")
            self._file.flush()
        if self._on_record is not None:
            self._on_record(record)

    def line(self, record: RelayRecord, pending: Pending) -> str:
        """The ledger file's line for a request (a gateway writes its own record)."""
        return record.model_dump_json()

    def _redact_opt(self, text: str | None) -> str | None:
        return None if text is None else self._redact(text)

    def excerpt(self, text: str) -> str:
        """Redact the whole text first, then cut: a cut could split a secret in two."""
        clean = " ".join(self._redact(text).split())
        return clean if len(clean) <= EXCERPT_CHARS else clean[:EXCERPT_CHARS] + "…"

    def describe(self, exc: Exception) -> str:
        """An httpx error's class and redacted text; never its request (which holds the URL)."""
        text = self.excerpt(str(exc))
        return f"{type(exc).__name__}: {text}" if text else type(exc).__name__

