"""Messages workers post to the widgets and screens that show their results."""

from __future__ import annotations

from pathlib import Path

from textual.message import Message

from core.evidence.follow import RunBatch
from core.evidence.runs import RunSummary


class RunGrew(Message):
    """What the followed run's files gained since the previous poll, lines made safe."""

    def __init__(self, run_dir: Path, batch: RunBatch, lines: list[str]) -> None:
        super().__init__()
        self.run_dir = run_dir
        self.batch = batch
        self.lines = lines


class RowsSummarized(Message):
    """Summaries of some runs, read in a worker; `first` marks the first screenful."""

    def __init__(self, rows: list[RunSummary], first: bool = False) -> None:
        super().__init__()
        self.rows = rows
        self.first = first
