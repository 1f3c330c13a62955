"""The fallback guard: proves the Case used the admitted model and nothing hosted.

It trips on a relay refusal of another model, an upstream answering with a model other than
the one asked, a hosted-provider key or base URL in the Case's environment, and Case
output matching fallback markers; each trip keeps its evidence (file + line). Markers seen
while the Case's network was isolated (`markers_warn`: no hosted request was possible, and
an agent's help text names hosted models) are kept as warnings instead. A run whose
Case made no request the admitted model was seen to answer is `unproven`, and so is one
with any successful answer whose answering model could not be read (it could have been
anyone's): it cannot claim its model, so it cannot pass.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

from core.evidence.models import Evidence, GuardState, RelayRecord
from core.settings.hosted import HOSTED_ENV

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


class Guard:
    def __init__(
        self,
        model: str,
        markers: tuple[str, ...],
        on_trip: Callable[[Evidence], None] | None = None,
        on_warning: Callable[[Evidence], None] | None = None,
    ) -> None:
        self.model = model
        self.evidence: list[Evidence] = []
        self.warnings: list[Evidence] = []
        self.markers_warn = False
        """Set before the Case starts when its network is isolated."""
        self._on_warning = on_warning
        self.proven_requests = 0
        self.unreadable: list[int] = []
        """Ledger lines of 2xx answers to a model request whose answering model was unread."""
        self._on_trip = on_trip
        self._markers = tuple(m.lower().encode() for m in markers if m)
        self._tail = b""
        self._lines_before_tail = 0
        self._last_marker_line = 0

    @property
    def tripped(self) -> bool:
        return bool(self.evidence)

    def state(self) -> GuardState:
        if self.tripped:
            return "tripped"
        return "clear" if self.proven_requests and not self.unreadable else "unproven"

    def unproven_reason(self) -> str:
        if self.unreadable:
            lines = ", ".join(str(n) for n in self.unreadable[:5])
            return (f"the upstream's answer at backend/relay.jsonl line {lines} did not say "
                    "which model answered, so the run cannot claim its model")
        return ("the Case made no request the admitted model was seen to answer through "
                "the relay, so it cannot claim its model")

    def _trip(self, evidence: Evidence) -> None:
        self.evidence.append(evidence)
        if self._on_trip is not None:
            self._on_trip(evidence)

    def check_env(self, env: dict[str, str]) -> None:
        """Hosted-provider keys or a non-loopback base URL must never reach the Case."""
        for name in sorted(env):
            if HOSTED_ENV.match(name):
                self._trip(Evidence(file="case environment", field=name,
                                    detail=f"hosted-provider variable {name} reached the Case"))
        for name in ("OPENAI_BASE_URL", "OPENAI_API_BASE"):
            if name in env and urlsplit(env[name]).hostname not in LOOPBACK_HOSTS:
                self._trip(Evidence(file="case environment", field=name,
                                    detail=f"{name} points away from the loopback relay"))

    def on_relay(self, record: RelayRecord, line: int) -> None:
        relay = "backend/relay.jsonl"
        if record.refused and record.model_asked and record.model_asked != self.model:
            self._trip(Evidence(file=relay, line=line, field="model_asked",
                                detail=f"relay refused {record.model_asked} at {record.ts}"))
        elif record.model_answered and record.model_answered != self.model:
            self._trip(Evidence(file=relay, line=line, field="model_answered",
                                detail=f"upstream answered {record.model_answered} "
                                       f"to a request for {record.model_asked}"))
        elif not record.refused and not record.error and 200 <= record.status < 300 and (
            record.model_asked == self.model and record.method == "POST"  # a generation
        ):
            if record.model_answered == self.model:
                self.proven_requests += 1
            else:
                self.unreadable.append(line)

    def scan_output(self, data: bytes) -> None:
        """Look for fallback markers in (already redacted) Case output, across chunks.

        `bytes.lower` and `bytes.find` are C loops: far cheaper per byte than a
        case-insensitive regex on a Case that floods its output."""
        if not self._markers:
            return
        buf = self._tail + data
        low = buf.lower()
        hits = sorted((pos, m) for m in self._markers for pos in _positions(low, m))
        for pos, marker in hits:
            line = self._lines_before_tail + buf.count(b"\n", 0, pos) + 1
            if line == self._last_marker_line:
                continue
            self._last_marker_line = line
            word = marker.decode(errors="replace")
            self._marker_hit(Evidence(file="backend/case.log", line=line,
                                      detail=f"Case output mentions fallback marker {word!r}"))
        keep = max(len(m) for m in self._markers) - 1
        cut = max(0, len(buf) - keep)
        self._lines_before_tail += buf.count(b"\n", 0, cut)
        self._tail = buf[cut:]


    def _marker_hit(self, evidence: Evidence) -> None:
        if not self.markers_warn:
            self._trip(evidence)
            return
        evidence.detail += " (a warning: the Case's network was isolated)"
        self.warnings.append(evidence)
        if self._on_warning is not None:
            self._on_warning(evidence)


def _positions(haystack: bytes, needle: bytes) -> list[int]:
    found, pos = [], haystack.find(needle)
    while pos != -1:
        found.append(pos)
        pos = haystack.find(needle, pos + 1)
    return found
