"""Making a Case's raw output safe and readable on our screen.

A Case writes whatever it likes: colours, cursor moves, OSC 52 clipboard writes, title
changes, progress bars rewritten with `\\r`. None of it may reach the terminal as control:
escape sequences are dropped, other control characters are shown as visible symbols, a
`\\r`-rewritten line keeps only its last state, and very long lines are cut with a marker.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from rich.text import Text

from core.term import UNSAFE

MAX_LINE = 2000
"""Characters kept of one line for display; the file on disk keeps them all."""

# OSC / DCS / SOS / PM / APC strings run to BEL or ST; CSI to its final byte; then any
# other two-byte escape. Their 8-bit C1 forms (0x9b CSI, 0x9d OSC, ...) too.
_ESCAPES = re.compile(
    r"(?:\x1b[\]P^_X]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"
    r"|(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]?"
    r"|\x1b[ -/]*[0-~]?"
)


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code < 0x20:
        return chr(0x2400 + code)  # ␀ ... ␟: the control picture of that byte
    return "␡" if code == 0x7F else "�"


def safe(text: str) -> str:
    """Any string a run, a Case, a task or the upstream supplied (a model name, a file
    name, a reason), as inert text: every terminal-unsafe character (core.term.UNSAFE: C0
    but tab and newline, DEL, C1, bidi and zero-width controls) shown as a visible symbol,
    so an escape sequence shows as `␛]52;…` instead of acting. The one filter every
    screen's text from a run passes."""
    return text if text.isprintable() else UNSAFE.sub(_visible, text)


def inert(text: object, style: str = "") -> Text:
    """`safe()` as a Rich Text: what a table cell, a panel or a title from a run shows.
    Never a plain str there: Textual and Rich parse a str as markup, and a model name like
    `[link=…]` would become a terminal hyperlink (an OSC 8 sequence)."""
    return Text(safe(str(text)), style=style)


PYTEST_ESCAPE = re.compile(r"\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|\\)")
"""The escapes pytest writes in a parametrize id (`\\xe8`, `\\u65e5`, `\\U0001f600`, a
backslash doubled): it makes every id ASCII (`_pytest.compat.ascii_escaped`)."""


def check_name(name: str, style: str = "") -> Text:
    """A check's name (a pytest node name from a run's JUnit file) as a user reads it:
    `test_slug[Crème]`, not pytest's `test_slug[Cr\\xe8me]`. For display only: the files
    keep what pytest wrote. Only an escape of a printable character is undone, so
    `\\x1b`, `\\n` or a bidi control stay as written, and the result still goes through
    `inert()`. A name that is not all ASCII was not escaped (pytest's option to turn
    escaping off) and is shown as it is. One line: a name longer than its column is cut
    with an ellipsis, not wrapped (a wrapped name pushed its outcomes apart)."""
    if name.isascii() and "\\" in name:
        name = PYTEST_ESCAPE.sub(_unescaped, name)
    shown = inert(name, style)
    shown.no_wrap, shown.overflow = True, "ellipsis"
    return shown


def _unescaped(match: re.Match[str]) -> str:
    code = match.group(1)
    if code == "\\":
        return "\\"
    point = int(code[1:], 16)
    char = chr(point) if point <= 0x10FFFF else ""
    return char if char and char.isprintable() else match.group()


def clean_line(raw: bytes | str, limit: int = MAX_LINE) -> str:
    """One line of Case output as plain, inert text for display."""
    return _cut(*_inert(raw, limit), limit)


def clean_lines(raws: list[bytes], redact: Callable[[str], str] = str,
                limit: int = MAX_LINE) -> list[str]:
    """A batch of lines made inert, then redacted, then cut for display. Redacted before the
    cut, so a cut never leaves a secret's first characters showing; as one text, so a
    secret wrapped over lines is still found and the redactor is called once per batch."""
    inert = [_inert(raw, limit) for raw in raws]
    if redact is str:
        return [_cut(text, dropped, limit) for text, dropped in inert]
    texts = redact("\n".join(text for text, _ in inert)).split("\n")
    if len(texts) != len(inert):  # a mask took a line break: the counts no longer align
        return [_cut(text, 0, limit) for text in texts]
    return [_cut(text, dropped, limit) for text, (_, dropped) in zip(texts, inert, strict=True)]


def _inert(raw: bytes | str, limit: int) -> tuple[str, int]:
    """The line without escapes and with controls made visible, at most `limit * 4`
    characters of it (sparing the regexes a multi-megabyte line), and how many it lost."""
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
    if text.isprintable():  # the common case: nothing to neutralise
        return (text, 0) if len(text) <= limit * 4 else (text[: limit * 4], len(text) - limit * 4)
    text = text.rstrip("\r\n")
    if "\r" in text:
        text = text.rsplit("\r", 1)[1]
    dropped = 0
    if len(text) > limit * 4:
        dropped, text = len(text) - limit * 4, text[: limit * 4]
    return UNSAFE.sub(_visible, _ESCAPES.sub("", text).expandtabs(4)), dropped


def _cut(text: str, dropped: int, limit: int) -> str:
    if len(text) > limit or dropped:
        dropped += max(0, len(text) - limit)
        text = f"{text[:limit]} … [cut: {dropped:,} more characters]"
    return text
