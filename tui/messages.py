"""Messages workers post to the widgets and screens that show their results.

Dataclasses: Textual's Message initialises itself in `__post_init__`, so the generated
`__init__` needs no `super().__init__()` and the fields are the message's whole content."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

from textual.message import Message

from core.evidence.follow import RunBatch
from core.evidence.runs import RunSummary


@dataclass
class RunGrew(Message):
    """What the followed run's files gained since the previous poll, lines made safe;
    `consumed` is set once it is shown (its own, so a batch of a run no longer followed
    can never wake the reader of the next one)."""

    run_dir: Path
    batch: RunBatch
    lines: list[str]
    consumed: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class RowsSummarized(Message):
    """Summaries of some runs, read in a worker; `first` marks the first screenful."""

    rows: list[RunSummary]
    first: bool = False
