"""Messages workers post to the widgets and screens that show their results.

Dataclasses: Textual's Message initialises itself in `__post_init__`, so the generated
`__init__` needs no `super().__init__()` and the fields are the message's whole content."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from textual.message import Message

from core.evidence.follow import RunBatch
from core.evidence.runs import RunSummary


@dataclass
class RunGrew(Message):
    """What the followed run's files gained since the previous poll, lines made safe."""

    run_dir: Path
    batch: RunBatch
    lines: list[str]


@dataclass
class RowsSummarized(Message):
    """Summaries of some runs, read in a worker; `first` marks the first screenful."""

    rows: list[RunSummary]
    first: bool = False
