"""Reading a planning SOT: Markdown with front matter and `## CTO-WORK-030 - title` items.

Two shapes are read the same way: proper multi-line Markdown, and the *flattened* form in
which every newline became a space (the seed arrived so): a file whose text is one line
opening a front matter (`--- key: ...`) or holding a heading marker (` ## `) mid-line. A
flattened file is first cut back into logical lines (`_Splitter`, rules below); one line
grammar (`_Builder`) then reads both.

Parsing never writes the file. What it cannot read is a SotError whose message starts with
`file:line:` (`file:line:column:` in a flattened file, where everything is on line 1).

How a flattened line is cut back, in this order (a cut never falls inside a `code span`):
1. Front matter: a line opening with `--- ` holds it up to the next ` --- `; inside, each
   `key: value` pair starts at a lowercase snake_case word followed by a colon and a space.
2. Headings: `#`..`######` standing alone between spaces start a heading.
3. A heading's text ends at the first of: a label (below), a sentence end (`. `), or its
   second ` - ` (the first ` - ` separates `ID - title`, as in `## CTO-WORK-030 - Title`).
   A level-1 heading that starts with the front matter's `title` ends right after it.
4. After a heading's text, a label starts a line: `Status:` anywhere, whose value ends at
   its first sentence end; or a short capitalised phrase ending in `:` that is directly
   followed by ` - ` (`Acceptance: - ...`, `Blocked by: - ...`).
5. Every other ` - ` starts a list item.
Known limits: prose containing ` - ` in a flattened file reads as a list; a heading with no
`ID - ` separator that is directly followed by a list keeps the list's first item.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, Field

from core.errors import HarnessError

ITEM_ID = re.compile(r"[A-Z][A-Z0-9]*(?:-[A-Z0-9]+)*-\d+")
"""A work-item id: `CTO-WORK-030`, `ABC-12`."""

KNOWN_LISTS = {"acceptance": "acceptance", "blocked by": "blocked_by",
               "current evidence": "current_evidence"}
ITEM_ONLY_LABELS = ("status", "acceptance", "blocked by")
"""Labels that only make sense under a work item: seen under a heading with no id, they mean
the author forgot the id."""

_CODE_SPAN = re.compile(r"`[^`]*`")
_HEADING_MARK = re.compile(r"(?<!\S)#{1,6}(?= )")
_FM_KEY = re.compile(r"(?<!\S)[a-z][a-z0-9_]*:(?=\s|$)")
_STATUS_LABEL = re.compile(r"(?<!\S)Status:(?=\s|$)")
_LIST_LABEL = re.compile(r"(?<!\S)[A-Z][A-Za-z]*(?: [a-z][A-Za-z]*){0,3}:(?= - )")
_SENTENCE_END = re.compile(r"[.!?](?=\s|$)")
_DASH = re.compile(r"(?<!\S)-(?=\s)")
_FLATTENED_HEADING = re.compile(r"\S\s+#{1,6}\s+\S")

_HEADING = re.compile(r"^(#{1,6})(?:\s+(.*?))?\s*$")
_ITEM_HEADING = re.compile(rf"^({ITEM_ID.pattern})(?:\s*[-–—:]\s*(.*)|\s*)$")
_FM_LINE = re.compile(r"^([A-Za-z_][\w-]*):\s*(.*)$")
_LABEL_LINE = re.compile(r"^([A-Za-z][A-Za-z ]{0,40}):\s*(.*)$")
_BULLET = re.compile(r"^[-*+](?:\s+(.*))?$")


class SotError(HarnessError):
    """A SOT file that cannot be read; the message starts with `file:line:`."""


class SotLine(BaseModel):
    """One logical line of the SOT and where it is (column counts in a flattened file)."""

    text: str
    line: int
    column: int = 1


class Section(BaseModel):
    """A `##` section: a work item when its heading starts with an id, else plain (such as
    `## Hermes Case Qwen Loop Evidence - 2026-06-01`)."""

    id: str | None = None
    title: str
    heading: str
    level: int
    line: int
    column: int = 1
    status: str | None = None
    """The written status, lowercased, without its full stop: `blocked`."""
    status_line: SotLine | None = None
    acceptance: list[SotLine] = Field(default_factory=list)
    blocked_by: list[SotLine] = Field(default_factory=list)
    current_evidence: list[SotLine] = Field(default_factory=list)
    lists: dict[str, list[SotLine]] = Field(default_factory=dict)
    """Other lists by their label, lowercased; "" holds bullets under no label."""
    prose: list[SotLine] = Field(default_factory=list)

    def all_lines(self) -> list[SotLine]:
        """Every list line and prose line of the section, in file order."""
        lines = [*self.acceptance, *self.blocked_by, *self.current_evidence, *self.prose]
        for extra in self.lists.values():
            lines.extend(extra)
        return sorted(lines, key=lambda ln: (ln.line, ln.column))


class Sot(BaseModel):
    path: str
    flattened: bool
    """True when the file arrived with its newlines flattened and was cut back."""
    front_matter: dict[str, str] = Field(default_factory=dict)
    title: str | None = None
    prose: list[SotLine] = Field(default_factory=list)
    """Text before the first section."""
    items: list[Section] = Field(default_factory=list)
    sections: list[Section] = Field(default_factory=list)
    """Sections without an item id."""

    def item(self, item_id: str) -> Section | None:
        return next((it for it in self.items if it.id == item_id), None)

    def where(self, line: int, column: int = 1) -> str:
        """`file:line` (`file:line:column` when flattened), for messages."""
        return f"{self.path}:{line}:{column}" if self.flattened else f"{self.path}:{line}"

    def place(self, line: int, column: int = 1) -> str:
        """`line 12` (`line 1, col 240` when flattened), for words about a place in it."""
        return f"line {line}" + (f", col {column}" if self.flattened else "")


@dataclass(frozen=True)
class _Line:
    text: str
    line: int
    col: int
    indented: bool = False


def _outside_code(text: str) -> list[tuple[int, int]]:
    return [m.span() for m in _CODE_SPAN.finditer(text)]


def _positions(pattern: re.Pattern[str], text: str, start: int, end: int,
               code: list[tuple[int, int]]) -> list[int]:
    return [m.start() for m in pattern.finditer(text, start, end)
            if not any(a <= m.start() < b for a, b in code)]


def is_flattened(lines: list[str]) -> bool:
    """All the text on one line, holding a front matter opened and continued on it or a
    heading marker mid-line. A multi-line file is never re-split, whatever its lines hold."""
    text = [raw for raw in lines if raw.strip()]
    if len(text) != 1:
        return False
    raw = text[0]
    return bool(re.match(r"^---[ \t]+\S", raw)
                or _FLATTENED_HEADING.search(_CODE_SPAN.sub("``", raw)))


class _Splitter:
    """Cuts flattened physical lines into logical lines (rules in the module docstring)."""

    def __init__(self) -> None:
        self.title: str | None = None

    def split(self, raw: str, number: int) -> list[_Line]:
        code = _outside_code(raw)
        out: list[_Line] = []
        pos = 0
        if re.match(r"^---[ \t]+\S", raw):
            pos = self._front_matter(raw, number, code, out)
        marks = _positions(_HEADING_MARK, raw, pos, len(raw), code)
        bounds = [pos, *marks, len(raw)]
        for start, end in itertools.pairwise(bounds):
            if start in marks:
                cuts = self._heading_cuts(raw, start, end, code)
            else:
                cuts = self._body_cuts(raw, start, end, code)
            points = sorted({start, *cuts, end})
            for a, b in itertools.pairwise(points):
                piece = raw[a:b]
                text = piece.strip()
                if text:
                    out.append(_Line(text, number, a + len(piece) - len(piece.lstrip()) + 1))
        return out

    def _front_matter(self, raw: str, number: int, code: list[tuple[int, int]],
                      out: list[_Line]) -> int:
        close = re.compile(r"\s---(?=\s|$)").search(raw, 3)
        end = close.start() if close else len(raw)
        out.append(_Line("---", number, 1))
        keys = _positions(_FM_KEY, raw, 3, end, code)
        for a, b in zip(keys, [*keys[1:], end], strict=False):
            text = raw[a:b].strip()
            out.append(_Line(text, number, a + 1))
            key, _, value = text.partition(":")
            if key == "title":
                self.title = value.strip()
        if close is None:
            return len(raw)
        out.append(_Line("---", number, close.start() + 2))
        return close.end()

    def _heading_cuts(self, raw: str, start: int, end: int,
                      code: list[tuple[int, int]]) -> list[int]:
        level = len(raw[start:end]) - len(raw[start:end].lstrip("#"))
        text_start = start + level + 1
        head_end = self._heading_end(raw, level, text_start, end, code)
        return [head_end, *self._body_cuts(raw, head_end, end, code)]

    def _heading_end(self, raw: str, level: int, text_start: int, end: int,
                     code: list[tuple[int, int]]) -> int:
        if level == 1 and self.title:
            after = text_start + len(self.title)
            if raw.startswith(self.title, text_start) and (after == end or raw[after].isspace()):
                return after
        labels = (_positions(_STATUS_LABEL, raw, text_start, end, code)
                  + _positions(_LIST_LABEL, raw, text_start, end, code))
        sentence = [p + 1 for p in _positions(_SENTENCE_END, raw, text_start, end, code)]
        dashes = _positions(_DASH, raw, text_start, end, code)
        return min([*labels, *sentence, *dashes[1:2], end])

    def _body_cuts(self, raw: str, start: int, end: int,
                   code: list[tuple[int, int]]) -> list[int]:
        statuses = _positions(_STATUS_LABEL, raw, start, end, code)
        labels = _positions(_LIST_LABEL, raw, start, end, code)
        dashes = _positions(_DASH, raw, start, end, code)
        cuts = [*statuses, *labels, *dashes]
        for status in statuses:
            ends = [p + 1 for p in _positions(_SENTENCE_END, raw, status, end, code)]
            if ends:
                cuts.append(ends[0])
        return cuts


def _read(path: Path) -> list[str]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SotError(f"{path}: cannot read the SOT file ({exc.strerror or exc})") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise SotError(f"{path}:{line}: not UTF-8 text (byte {exc.start}); "
                       "save the SOT as UTF-8") from None
    return text.splitlines()


def _first_sentence(value: str) -> tuple[str, str]:
    match = _SENTENCE_END.search(value)
    if match is None:
        return value.strip(), ""
    return value[: match.start()].strip(), value[match.end():].strip()


class _Builder:
    """The line grammar: front matter, headings, `Status:`, labelled lists, prose."""

    def __init__(self, path: Path, flattened: bool) -> None:
        self.sot = Sot(path=str(path), flattened=flattened)
        self.current: Section | None = None
        self.open_list: list[SotLine] | None = None
        self.item_places: dict[str, str] = {}
        self.last_bullet: SotLine | None = None

    def fail(self, line: _Line, message: str) -> SotError:
        return SotError(f"{self.sot.where(line.line, line.col)}: {message}")

    def build(self, lines: list[_Line]) -> Sot:
        rest = self._front_matter(lines)
        for line in rest:
            self._line(line)
        return self.sot

    def _front_matter(self, lines: list[_Line]) -> list[_Line]:
        first = next((i for i, ln in enumerate(lines) if ln.text.strip()), None)
        if first is None or lines[first].text.strip() != "---":
            return lines
        opening = lines[first]
        seen: dict[str, int] = {}
        key: str | None = None
        for index in range(first + 1, len(lines)):
            line = lines[index]
            text = line.text.strip()
            if text == "---":
                return lines[index + 1:]
            if not text or text.startswith("#"):
                continue
            match = _FM_LINE.match(text)
            if match and not line.indented:
                key, value = match.group(1), match.group(2).strip().strip("\"'")
                if key in seen:
                    raise self.fail(line, f"front matter key `{key}` appears twice "
                                          f"(first at line {seen[key]})")
                seen[key] = line.line
                self.sot.front_matter[key] = value
            elif key is not None and (line.indented or text.startswith("- ")):
                joined = self.sot.front_matter[key]
                part = text.removeprefix("- ").strip()
                self.sot.front_matter[key] = f"{joined}, {part}" if joined else part
            else:
                raise self.fail(line, "front matter line is not `key: value`")
        raise self.fail(opening, "front matter opened here is never closed with `---`")

    def _line(self, line: _Line) -> None:
        text = line.text.strip()
        if not text:
            self.last_bullet = None
            return
        if line.indented and self.last_bullet is not None and not _BULLET.match(text):
            self.last_bullet.text = f"{self.last_bullet.text} {text}"
            return
        self.last_bullet = None
        heading = _HEADING.match(text)
        if heading:
            self._heading(line, len(heading.group(1)), heading.group(2) or "")
            return
        bullet = _BULLET.match(text)
        if bullet:
            indent = len(line.text) - len(line.text.lstrip())
            column = line.col + indent + (bullet.start(1) if bullet.group(1) else 0)
            self._bullet(line, (bullet.group(1) or "").strip(), column)
            return
        label = _LABEL_LINE.match(text)
        if label and self._label(line, label.group(1).strip(), label.group(2).strip()):
            return
        self.open_list = None
        self._prose(line, text)

    def _heading(self, line: _Line, level: int, text: str) -> None:
        self.open_list = None
        text = text.strip()
        if not text:
            raise self.fail(line, "heading has no text")
        if level == 1 and self.sot.title is None and not (self.sot.items or self.sot.sections):
            self.sot.title = text
            return
        match = _ITEM_HEADING.match(text)
        if match is None and level > 2:
            self._prose(line, text)
            return
        if match is None and re.match(r"^[-–—:]", text):
            raise self.fail(line, f"heading `{text}` has no item id before its separator; "
                                  "write it like `## CTO-WORK-030 - title`")
        section = Section(title=text, heading=text, level=level, line=line.line,
                          column=line.col)
        if match is not None:
            section.id, section.title = match.group(1), (match.group(2) or "").strip()
            first = self.item_places.get(section.id)
            if first is not None:
                raise self.fail(line, f"duplicate item id {section.id} (first at {first})")
            self.item_places[section.id] = self.sot.place(line.line, line.col)
            self.sot.items.append(section)
        else:
            self.sot.sections.append(section)
        self.current = section

    def _require_item(self, line: _Line, label: str) -> Section:
        if self.current is None:
            raise self.fail(line, f"`{label}:` comes before any work-item heading "
                                  "like `## CTO-WORK-030 - title`")
        if self.current.id is None:
            at = self.sot.place(self.current.line, self.current.column)
            raise self.fail(line, f"`{label}:` belongs to a work item, but the heading at "
                                  f"{at} (`{self.current.heading}`) has no item id like "
                                  "`CTO-WORK-030`")
        return self.current

    def _label(self, line: _Line, label: str, value: str) -> bool:
        key = label.lower()
        if key in ITEM_ONLY_LABELS:
            item = self._require_item(line, label)
        elif value or self.current is None:
            return False
        else:
            item = self.current
        if key == "status":
            if item.status_line is not None:
                first = self.sot.place(item.status_line.line, item.status_line.column)
                raise self.fail(line, f"second `Status:` for {item.id} (first at {first})")
            status, rest = _first_sentence(value)
            if not status:
                raise self.fail(line, f"`Status:` of {item.id} has no value; "
                                      "write e.g. `Status: blocked.`")
            item.status = status.lower()
            item.status_line = SotLine(text=f"Status: {value}", line=line.line,
                                       column=line.col)
            self.open_list = None
            if rest:
                self._prose(line, rest)
            return True
        if value:
            self.open_list = None
            self._prose(line, f"{label}: {value}")
            return True
        field = KNOWN_LISTS.get(key)
        self.open_list = getattr(item, field) if field else item.lists.setdefault(key, [])
        return True

    def _bullet(self, line: _Line, text: str, column: int) -> None:
        if not text:
            return
        entry = SotLine(text=text, line=line.line, column=column)
        if self.open_list is not None:
            self.open_list.append(entry)
        elif self.current is not None:
            self.current.lists.setdefault("", []).append(entry)
        else:
            self.sot.prose.append(entry)
        self.last_bullet = entry

    def _prose(self, line: _Line, text: str) -> None:
        entry = SotLine(text=text, line=line.line, column=line.col)
        (self.current.prose if self.current is not None else self.sot.prose).append(entry)


def parse_sot(path: Path) -> Sot:
    """Parse a SOT file, multi-line or flattened; raise SotError naming file and line."""
    physical = _read(path)
    flattened = is_flattened(physical)
    if flattened:
        splitter = _Splitter()
        lines = [ln for n, raw in enumerate(physical, 1) for ln in splitter.split(raw, n)]
    else:
        lines = [_Line(raw, n, 1, indented=raw[:1] in (" ", "\t"))
                 for n, raw in enumerate(physical, 1)]
    return _Builder(path, flattened).build(lines)
