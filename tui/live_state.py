"""What the Live screen says about one run, derived from its files as they grow.

Pure data (no widgets): `RunView.apply()` takes what a poll of the run gained, and the
panel methods answer the engineer's questions in a word, a tone and a one-line reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from core.evidence.follow import RunBatch
from core.evidence.inflight import InFlight
from core.evidence.models import EVENTS, Manifest, Readiness, RelayRecord, Report, TraceEvent
from core.run.guard import Guard
from core.settings import ENDPOINT_VAR

Tone = Literal["ok", "bad", "warn", "idle"]
_ISO = re.compile(r"\d{4}-\d\d-\d\dT(\d\d:\d\d:\d\d)(?:\.\d+)?Z?")


@dataclass(frozen=True)
class PanelState:
    state: str
    tone: Tone
    reason: str


@dataclass(frozen=True)
class Stage:
    event: str
    at: str
    """HH:MM:SS, or empty for a stage still to come."""
    duration_s: float | None
    mark: Literal["done", "current", "todo", "alarm"]


def clock(ts: str | None) -> str:
    """An ISO timestamp as HH:MM:SS (UTC), the way every panel shows time."""
    match = _ISO.search(ts or "")
    return match.group(1) if match else ""


def _short_times(text: str) -> str:
    return _ISO.sub(lambda m: m.group(1), text)


def plural(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'s' * (count != 1)}"


ALARMS = ("guard_tripped", "leak_detected", "run_blocked")
ENDED_EARLY = ("cancelled", "timed_out", "error")
"""A run that ended before its verdict: its guard and comparison say nothing."""


def since_previous(events: list[TraceEvent]) -> list[float | None]:
    """How long each event took to reach from the one before it (None for the first)."""
    times = [to_seconds(e.ts) for e in events]
    return [None if i == 0 or now is None or before is None else max(0.0, now - before)
            for i, (before, now) in enumerate(zip([None, *times], times, strict=False))]


def to_seconds(ts: str) -> float | None:
    try:
        return datetime.fromisoformat(ts).timestamp()
    except ValueError:
        return None


@dataclass
class RunView:
    """Everything read so far of one run (or of none: readiness before any run)."""

    manifest: Manifest | None = None
    readiness: Readiness | None = None
    report: Report | None = None
    events: list[TraceEvent] = field(default_factory=list)
    relay: list[RelayRecord] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    out_of_reach: list[str] = field(default_factory=list)
    """What cannot be read now for its permissions; it clears when access is back."""
    readiness_error: str | None = None
    """Why the pre-run readiness check could not run at all."""
    alive: bool = True
    """Whether the run's harness process still runs (no report and a dead harness:
    interrupted)."""
    manifest_missing: bool = False
    """The folder followed has had no manifest.json for a while: not a run, or a run whose
    start was cut short."""
    demo_starting: bool = False
    """`--demo` asked for a demo run whose folder is not there yet: the pre-run readiness
    (nothing configured) is not its readiness."""
    inflight: list[InFlight] = field(default_factory=list)
    """The requests the relay is forwarding now (backend/exchanges/inflight.json): a long
    streamed answer shows as it arrives, not as "no request finished yet"."""
    _guard: Guard | None = None

    def apply(self, batch: RunBatch) -> None:
        self.manifest = batch.manifest or self.manifest
        self.readiness = batch.readiness or self.readiness
        self.report = batch.report or self.report
        self.problems += batch.problems
        if batch.out_of_reach is not None:
            self.out_of_reach = batch.out_of_reach
        self.events += batch.events
        if batch.relay and self._guard is None:
            # core's own guard, fed the same ledger: the live verdict before the report's
            self._guard = Guard(self.manifest.model if self.manifest else "", ())
        for record in batch.relay:
            self.relay.append(record)
            self._guard.on_relay(record, len(self.relay))  # type: ignore[union-attr]

    def _event(self, name: str) -> dict[str, Any] | None:
        for event in reversed(self.events):
            if event.event == name:
                return {**(event.model_extra or {}), "ts": event.ts}
        return None

    @property
    def status(self) -> str:
        if self.report is not None:
            return self.report.status
        if self.problems or self.out_of_reach:
            return "unreadable"
        if self.manifest is None:
            return "unreadable" if self.manifest_missing else "no run yet"
        return "running" if self.alive else "interrupted"

    # -- panels ---------------------------------------------------------------------
    def readiness_panel(self) -> PanelState:
        if self.demo_starting and self.manifest is None:
            return PanelState("demo", "idle", "starting the demo run: it brings its own "
                                              "endpoint and Case")
        blocked = self._event("run_blocked")
        if self.readiness is not None:
            return _from_readiness(self.readiness)
        checked = self._event("readiness_checked")
        if checked is not None:
            if checked.get("skipped"):
                return PanelState("skipped", "idle", str(checked["skipped"]))
            checks = checked.get("checks") or {}
            bad = [k for k, v in checks.items() if v not in ("ok", "skipped")]
            if checked.get("ready"):
                return PanelState("ready", "ok", "every check passed")
            return PanelState("blocked", "bad", "not ready: " + (", ".join(bad) or "see trace"))
        if blocked is not None:
            return PanelState("blocked", "bad", "; ".join(blocked.get("reasons") or []))
        if self.readiness_error:
            return PanelState("unknown", "warn", self.readiness_error)
        if self.manifest is None and self.manifest_missing:
            return PanelState("unknown", "warn", "no manifest.json in this folder")
        if self.manifest is not None:
            return PanelState("checking", "idle", "waiting for readiness_checked")
        return PanelState("checking", "idle", "running the readiness checks…")

    def admission_panel(self) -> PanelState:
        pair = (f"{self.manifest.provider}/{self.manifest.model}" if self.manifest
                else f"{self.readiness.provider}/{self.readiness.model}" if self.readiness
                else "")
        status, detail = None, ""
        if self.report is not None:
            status = self.report.case_model_admission_status
        elif (checked := self._event("admission_checked")) is not None:
            status, detail = checked.get("status"), str(checked.get("detail") or "")
        elif self.readiness is not None:
            status = self.readiness.admission_status
        if status is None:
            return PanelState("pending", "idle", pair or "not checked yet")
        if status == "admitted":
            return PanelState("admitted", "ok", pair)
        return PanelState(status.replace("_", " "), "bad", detail or f"{pair} is not admitted")

    def guard_panel(self) -> PanelState:
        tripped = [e for e in self.events if e.event == "guard_tripped"]
        if tripped:
            evidence = (tripped[-1].model_extra or {}).get("evidence") or {}
            more = f" (+{len(tripped) - 1} more)" if len(tripped) > 1 else ""
            return PanelState("tripped", "bad",
                              _short_times(str(evidence.get("detail", "see trace"))) + more)
        guard = self._guard
        if guard is not None and guard.tripped:
            return PanelState("tripped", "bad", _short_times(guard.evidence[-1].detail))
        if self.manifest is not None and self.manifest.engine == "fake":
            return PanelState("n/a", "idle", "fake engine: no model to guard")
        proven = guard.proven_requests if guard is not None else 0
        models = sorted({r.model_answered or r.model_asked or "?" for r in self.relay})
        if self.report is not None:
            if not self.report.case_process_started:
                return PanelState("idle", "idle", "the Case never started")
            if self.report.status in ENDED_EARLY and not proven:
                return PanelState("no verdict", "idle",
                                  f"run {self.report.status.replace('_', ' ')} before any "
                                  "request for the model finished")
            if self.report.guard_state == "unproven":
                return PanelState("unproven", "warn",
                                  "no request for the admitted model went through the relay")
        if proven:
            started = self._event("case_process_started")
            off = started is not None and started.get("sandbox") == "off"
            return PanelState("clear", "warn" if off else "ok",
                              f"{proven} request{'s' * (proven != 1)}, all {', '.join(models)}"
                              + (" · sandbox off: never evidence" if off else ""))
        if self.manifest is None:
            return PanelState("armed", "idle", "waiting for a run")
        # The relay writes a request's line when its answer ends: a streaming answer is
        # not in the ledger yet, so say what is known, not "no request".
        return PanelState("armed", "idle", "no model request finished yet")

    def inflight_text(self) -> str:
        """The answers streaming now: model, tokens so far, tokens/s."""
        if self.report is not None or not self.inflight:
            return ""
        parts = []
        for req in self.inflight:
            model = req.model or req.model_asked or "?"
            # The figures first: at 80 columns a panel shows about 16 characters of this.
            if req.stream:
                rate = f" · {req.tokens_per_s:.0f}/s" if req.tokens_per_s else ""
                parts.append(f"{req.tokens:,} tokens{rate} · {model} answering")
            else:
                parts.append(f"waiting {req.elapsed_s:.0f} s · {model} asked")
        return " · ".join(parts)

    def relay_panel(self) -> PanelState:
        flying = self.inflight_text()
        if not self.relay:
            if flying:
                return PanelState("streaming", "idle", flying)
            if self._event("relay_started") and self.report is None:
                return PanelState("listening", "idle",
                                  "loopback relay up, no request finished yet")
            return PanelState("idle", "idle", "no request")
        refused = sum(1 for r in self.relay if r.refused)
        errors = sum(1 for r in self.relay if not r.refused and (r.error or r.status >= 400))
        counted = [n for r in self.relay for n in (r.prompt_tokens, r.completion_tokens)
                   if n is not None]
        tokens = f"{sum(counted):,} tokens" if counted else "tokens unknown"
        latencies = sorted(r.latency_ms for r in self.relay)
        p50 = latencies[len(latencies) // 2]
        # Only the counts that are not zero: cut at 80 columns, the panel still says what
        # matters ("1 request · 2 refused…", not "1 request · 0 r…").
        reason = " · ".join([plural(len(self.relay), "request"),
                             *([f"{refused} refused"] if refused else []),
                             *([plural(errors, "error")] if errors else []),
                             tokens, f"p50 {p50:.0f} ms"])
        tone: Tone = "bad" if refused else "warn" if errors else "ok"
        if self.report is not None or not self.alive:  # the relay is down with its run
            return PanelState("refused" if refused else "closed", tone, reason)
        if flying:
            reason = f"{flying} · {reason}"
        return PanelState("refusing" if refused else "forwarding", tone, reason)

    # -- timeline and results -------------------------------------------------------
    def timeline(self, now: float) -> list[Stage]:
        """Each event with the time it took to reach from the one before (the Case's run
        on case_process_exited, the checks' on checks_completed); while the run goes, the
        next stage is current, its clock running from the last event."""
        seen = self.events
        stages = [Stage(event.event, clock(event.ts), took,
                        "alarm" if event.event in ALARMS else "done")
                  for event, took in zip(seen, since_previous(seen), strict=True)]
        if self.status == "running" and not self._event("run_blocked"):
            names = {e.event for e in seen}
            skip = {"run_blocked"}
            if self.manifest is not None and self.manifest.engine == "fake":
                skip |= {"relay_started", "baseline_started", "baseline_completed"}
            todo = [name for name in EVENTS if name not in names and name not in skip]
            last = to_seconds(seen[-1].ts) if seen else None
            for i, name in enumerate(todo):
                took = max(0.0, now - last) if i == 0 and last is not None else None
                stages.append(Stage(name, "", took,
                                    "current" if i == 0 else "todo"))
        return stages

    def results_line(self) -> str:
        """Checks, baseline and the same-run comparison once they are known."""
        parts: list[str] = []
        checks = self.report.checks.model_dump() if self.report else self._event("checks_completed")
        if checks and checks.get("ran"):
            parts.append(f"checks {checks.get('passed', 0)}/{checks.get('total', 0)} passed")
        elif checks:
            why = checks.get("detail") or ""
            parts.append("checks did not run" + (f" ({why})" if why not in ("", "not run")
                                                 else ""))
        baseline = self._event("baseline_completed")
        if self.report is not None and self.report.baseline.status != "skipped":
            base = self.report.baseline
            parts.append(f"fake baseline {base.status} "
                         f"({base.checks.passed}/{base.checks.total})")
        elif baseline:
            counts = baseline.get("checks") or {}
            parts.append(f"fake baseline {baseline.get('status')} "
                         f"({counts.get('passed', 0)}/{counts.get('total', 0)})")
        if self.report is not None and self.report.status in ENDED_EARLY:
            parts.append(f"run {self.report.status.replace('_', ' ')}: no comparison is "
                         "claimed")
        elif self.report is not None and self.report.comparison is not None:
            comp = self.report.comparison
            parts.append(("discriminating: " if comp.discriminating else "not discriminating: ")
                         + comp.detail)
        return " · ".join(parts)


def _from_readiness(readiness: Readiness) -> PanelState:
    if readiness.ready:
        return PanelState("ready", "ok", f"{plural(len(readiness.checks), 'check')} ok")
    bad = [c for c in readiness.checks if c.state not in ("ok", "skipped")]
    first = bad[0].detail.split(";")[0] if bad else "not ready"  # the how-to is elsewhere
    more = f" (+{len(bad) - 1} more)" if len(bad) > 1 else ""
    return PanelState("blocked", "bad", first + more)


def how_to_supply(readiness: Readiness) -> list[str]:
    """The checklist shown before any run: each check that is not ok, and what to do."""
    lines = []
    for check in readiness.checks:
        symbol = {"ok": "✓", "skipped": "–"}.get(check.state, "✗")
        lines.append(f"{symbol} {check.name}: {check.state} — {check.detail}")
    if any(ENDPOINT_VAR in c.detail for c in readiness.checks if c.state != "ok"):
        lines.append(f"Press e to type the endpoint (held in memory only, handed to the runs "
                     f"this dashboard starts), or set {ENDPOINT_VAR} / {ENDPOINT_VAR}_FILE.")
    return lines
