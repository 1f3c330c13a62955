"""The runs ledger: one row per run, newest first, every state a run can be in said in words."""

from __future__ import annotations

from rich.text import Text

from core.evidence.runs import RunSummary
from tui.live_state import clock
from tui.terminal_text import inert
from tui.widgets.keys import KeyedTable

WIDTHS = {"time": 11, "task": 20, "engine": 10, "status": 16, "provider/model": 26,
          "admission": 12, "guard": 9, "checks": 7, "duration": 9, "note": 12}
"""Fixed: columns that grow as rows load would jump, and DataTable measures an auto width
only when it next idles, which a screen built in the background may not do in time (a
table of label-wide columns was seen in a real terminal). The note takes what the others
leave (at least its width here); longer values are cut with a marker."""
COLUMNS = tuple(WIDTHS)
KEPT_FIRST = ("status", "time", "task", "checks", "guard", "engine", "provider/model",
              "duration", "admission")
"""Which columns a narrow terminal keeps, most needed first; the note is always last."""
CELL_PADDING = 2
CORE = 4
"""status, time, task, checks: never given up for the note."""
NOTE_COMFORT = 16
"""Below this the note takes the room of the least needed columns shown. Most rows have no
note (a retry's origin, a problem, each cut with a marker and whole in Run detail): at 40, a
160-column Runs gave up admission and duration, the column `s` sorts by, for a note column
left ~40 columns empty."""
STATUS_STYLE = {
    "passed": "green", "failed": "red", "blocked": "yellow", "error": "bold red",
    "cancelled": "yellow", "timed_out": "red", "running": "bold cyan",
    "interrupted": "magenta", "unreadable": "bold magenta",
}


def when(row: RunSummary) -> str:
    stamp = row.started_at or ""
    if len(stamp) >= 10:
        return f"{stamp[5:10]} {clock(stamp)[:5]}"
    name = row.run_id  # <YYYYmmddTHHMMSSZ>-<task>-<pid>
    if len(name) > 15 and name[8] == "T":
        return f"{name[4:6]}-{name[6:8]} {name[9:11]}:{name[11:13]}"
    return "?"


def task_in_name(run_id: str) -> str:
    """The task a run folder's name says (`<stamp>-<task>-<pid>`), marked `?`: for a run
    whose manifest cannot be read, what its folder suggests, not what it recorded."""
    parts = run_id.split("-")
    return f"{'-'.join(parts[1:-1])} ?" if len(parts) > 2 else "?"


def cells(row: RunSummary) -> tuple[Text, ...]:
    """The row's cells, each through `inert()`: every field came from a run's files."""
    status = inert(row.status, STATUS_STYLE.get(row.status, ""))
    if row.demo:
        status.append(" demo", style="black on yellow")
    note = row.problem or (f"retry of {row.retry_of}" if row.retry_of else "")
    if row.status == "unreadable":
        note = f"{note} (folder {row.run_id})"
    return (
        inert(when(row)),
        inert(row.task) if row.task else inert(task_in_name(row.run_id), "italic"),
        inert(row.case or row.engine or ""),  # which agent; "fake" for the fake engine
        status,
        inert(f"{row.provider}/{row.model}" if row.provider else ""),
        inert(row.admission or ""),
        inert(row.guard or "", "bold red" if row.guard == "tripped" else ""),
        inert(row.checks or ""),
        inert(f"{row.duration_s:.1f} s" if row.duration_s is not None else ""),
        inert(note, "bright_black"),
    )


def cut(cell: Text, width: int) -> Text:
    """A cell longer than its column, cut with a marker instead of silently."""
    if cell.cell_len > width:
        cell.truncate(width, overflow="ellipsis")
    return cell


def matches(row: RunSummary, needle: str) -> bool:
    fields = (row.run_id, row.task, row.engine, row.case, row.status, row.provider, row.model,
              row.admission, row.guard, row.problem, "demo" if row.demo else None)
    return any(needle in f.lower() for f in fields if f)


def layout_for(width: int) -> dict[str, int]:
    """The columns that fit `width` (most needed first, in their usual order) and their
    widths, the note taking the rest: no column is scrolled to one key at a time."""
    room = width - WIDTHS["note"] - CELL_PADDING - 2  # the vertical scrollbar
    kept = []
    for name in KEPT_FIRST:
        if WIDTHS[name] + CELL_PADDING <= room:
            kept.append(name)
            room -= WIDTHS[name] + CELL_PADDING
    note = WIDTHS["note"] + max(0, room)
    while note < NOTE_COMFORT and len(kept) > CORE:
        note += WIDTHS[kept.pop()] + CELL_PADDING
    widths = {name: WIDTHS[name] for name in COLUMNS if name in kept}
    widths["note"] = note
    return widths


class RunsTable(KeyedTable):
    DEFAULT_CSS = """
    RunsTable { height: 1fr; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.widths: dict[str, int] = {}
        self.marked: list[str] = []
        """Run ids marked with `space` (at most two, A then B) for `=` to compare."""

    def on_mount(self) -> None:
        self.cursor_type = "row"
        self.zebra_stripes = True
        self.fit(self.app.size.width)

    def fit(self, width: int) -> bool:
        """Lay the columns out for `width`; True when they changed (the rows are then gone
        and the caller adds them again)."""
        widths = layout_for(width)
        if widths == self.widths:
            return False
        self.widths = widths
        self.clear(columns=True)
        for name, column_width in widths.items():
            self.add_column(name, key=name, width=column_width)
        return True

    def _shown(self, row: RunSummary) -> list[Text]:
        shown = [cut(cell, self.widths[name])
                 for name, cell in zip(COLUMNS, cells(row), strict=True) if name in self.widths]
        if row.run_id in self.marked and shown:  # marked for `=`: A or B before its time
            mark = Text("AB"[self.marked.index(row.run_id)], style="bold reverse magenta")
            shown[0] = mark + Text(" ") + Text(shown[0].plain[-5:])  # the clock: same width
        return shown

    def add_summaries(self, rows: list[RunSummary]) -> None:
        for row in rows:
            self.add_row(*self._shown(row), key=row.run_id)

    def update_summary(self, row: RunSummary) -> None:
        for name, value in zip(self.widths, self._shown(row), strict=True):
            self.update_cell(row.run_id, name, value)

    def selected_run_id(self) -> str | None:
        if not self.row_count:
            return None
        return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
