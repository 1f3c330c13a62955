"""What Run detail shows of one run, read in a worker, and the cells it is drawn with: every
string from the run through `inert()`, none of Python's spellings (True, None) shown."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rich.table import Table
from rich.text import Text

from core.evidence.check_cases import check_pairs
from core.evidence.criteria import Validation
from core.evidence.models import Manifest, RelayRecord, Report, TraceEvent
from core.evidence.runs import (
    RunSummary,
    Unreadable,
    load_manifest,
    load_report,
    read_relay,
    read_trace,
    summarize,
)
from core.evidence.validate import validate_run
from core.sandbox.limits import human
from tui.terminal_text import inert
from tui.widgets.runs_table import STATUS_STYLE
from tui.widgets.timeline import seconds

OUTCOME_STYLE = {"passed": "green", "failed": "red", "error": "bold red",
                 "skipped": "bright_black"}


def tokens(count: int | None) -> str:
    """A token count; None is unknown (the upstream did not say), never 0."""
    return "unknown" if count is None else f"{count:,}"


def exit_code(code: int | None) -> str:
    return "none (never started)" if code is None else str(code)


def outcome_cell(outcome: str | None) -> Text:
    if outcome is None:
        return Text("not run", style="bright_black")
    return inert(outcome, OUTCOME_STYLE.get(outcome, ""))


def retry_table(this: RunSummary, retried: RunSummary) -> Table:
    """A retry and the run it retried, field by field."""
    table = Table(box=None, padding=(0, 2), show_edge=False)
    table.add_column("", style="bold")
    table.add_column(inert(f"this run ({this.run_id})"))
    table.add_column(inert(f"retried ({retried.run_id})"))
    for label, field_name in (("status", "status"), ("checks", "checks"), ("guard", "guard"),
                              ("model", "model"), ("duration", "duration_s")):
        cells = []
        for summary in (this, retried):
            value = getattr(summary, field_name)
            if field_name == "duration_s":
                value = seconds(value)
            cells.append(inert(value or "-", STATUS_STYLE.get(str(value), "")))
        table.add_row(label, *cells)
    return table


def sandbox_line(sandbox: object) -> str:
    """The report's case_sandbox in one line: its mode, the Case's network and its own
    detail; none of Python's spellings (a dict, True, None) shown."""
    mode = getattr(sandbox, "mode", None)
    network = getattr(sandbox, "network", None)
    detail = getattr(sandbox, "detail", None)
    words = [str(mode or "unknown mode")]
    if mode == "off":
        words.append("no sandbox: never evidence")
    elif not getattr(sandbox, "ready", True):
        words.append("not set up")
    if network:
        words.append(f"Case network {network}")
    limits = getattr(sandbox, "limits", None) or {}
    if getattr(sandbox, "limits_mode", None) == "off":
        words.append("limits off: never evidence")
    if limits:
        how = getattr(sandbox, "limits_mode", None)
        words.append("limits " + (f"({how}) " if how else "") + ", ".join(
            f"{k.removesuffix('_bytes')} {human(v) if k.endswith('_bytes') else v}"
            for k, v in limits.items()))
    hits = getattr(sandbox, "limits_hit", None) or []
    if hits:
        words.append("LIMIT REACHED: " + "; ".join(str(h) for h in hits))
    if detail:
        words.append(str(detail))
    return " · ".join(words)


VERDICT = {"ok": ("✓", "green"), "failed": ("✗", "red"), "not_applicable": ("–", "bright_black")}


@dataclass
class RunRecord:
    """Everything Run detail shows, read once in a worker."""

    manifest: Manifest | None = None
    report: Report | None = None
    trace: list[TraceEvent] = field(default_factory=list)
    relay: list[RelayRecord] = field(default_factory=list)
    validation: Validation | None = None
    problems: list[str] = field(default_factory=list)
    check_pairs: list[tuple[str, str | None, str | None]] = field(default_factory=list)
    """Each check's outcome, real beside fake."""
    this: RunSummary | None = None
    retried: RunSummary | None = None
    """The run this one retried (`retry_of`), to show them side by side."""


def read_record(run_dir: Path) -> RunRecord:
    record = RunRecord()
    for name, load in (("manifest", load_manifest), ("report", load_report)):
        try:
            setattr(record, name, load(run_dir))
        except Unreadable as exc:
            record.problems.append(str(exc))
    record.trace = read_trace(run_dir)
    record.relay = read_relay(run_dir)
    record.validation = validate_run(run_dir)
    record.check_pairs = check_pairs(run_dir)
    if record.manifest is not None and record.manifest.retry_of:
        original = run_dir.parent / record.manifest.retry_of
        if Path(record.manifest.retry_of).name == record.manifest.retry_of and original.is_dir():
            record.this, record.retried = summarize(run_dir), summarize(original)
    return record


