"""The streaming redactor: bytes in, safe bytes out, a secret split across two reads still
caught.

It holds back only the longest suffix that could still begin a form, so text that cannot
be a secret is emitted at once; a range that could still grow is held whole, so any
chunking gives the output of the whole text. Matching itself is `Matcher`'s.
"""

from __future__ import annotations

import codecs

from core.secrets.matcher import WRAP_MIN, Matcher, Range

MAX_HOLD = 1 << 16
"""A chain of overlapping matches longer than this is emitted masked in pieces."""


class StreamRedactor:
    """Bytes in, safe bytes out; invalid UTF-8 leaves as U+FFFD, never an exception."""

    def __init__(self, matcher: Matcher) -> None:
        self._matcher = matcher
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._context = b""
        """The last bytes emitted, unmasked: what a wrapped base64 form looks back on."""
        self._pending = b""
        self._carry: tuple[int, int] | None = None
        """What a chain of matches cut short still covers: its length and form."""
        self.redactions = 0

    def feed(self, data: bytes) -> bytes:
        if not self._decoder.getstate()[0] and (data.isascii() or _valid_utf8(data)):
            text = data  # its own re-encoding: no decoding round trip
            if (not self._pending and self._carry is None and not self._matcher.empty
                    and self._matcher.quiet(self._context + text)):
                # Whole lines that hold no form, nor the start of one: passed as they
                # are (what `_process` would give, at a fraction of its cost per chunk).
                self._context = (self._context + text)[-WRAP_MIN:]
                return text
        else:
            text = self._decoder.decode(data).encode("utf-8")
        return self._process(text, final=False)

    def flush(self) -> bytes:
        return self._process(self._decoder.decode(b"", final=True).encode("utf-8"), final=True)

    def _process(self, text: bytes, final: bool) -> bytes:
        matcher = self._matcher
        if matcher.empty:
            return text
        data = self._context + self._pending + text
        start = len(self._context)
        ranges, cut = matcher.plan(data, start, final, self._carry)
        self._carry = None
        if cut == start and len(data) - start > MAX_HOLD and ranges == []:
            cut, ranges = self._split_chain(data, start)
        self.redactions += len(ranges)
        if not ranges and not self._pending and cut == len(data):
            out = text  # nothing masked, nothing held: the chunk itself, no copy
        else:
            out = matcher.render(data, start, cut, ranges)
        self._context = data[max(0, cut - WRAP_MIN):cut]
        self._pending = data[cut:]
        return out

    def _split_chain(self, data: bytes, start: int) -> tuple[int, list[Range]]:
        """An endless chain of overlapping matches: emit it masked up to where a form could
        still begin, and mask what it still covers beyond there in the next round."""
        matcher = self._matcher
        hold = matcher.holdback(data, start)
        spans = matcher.find(data, start)
        end = max((e for s, e, _ in spans if s < hold), default=hold)
        form = min(spans)[2] if spans else 0
        if end > hold:
            self._carry = (end - hold, form)
        return hold, [(start, min(end, hold), form)]


def _valid_utf8(data: bytes) -> bool:
    """Whole characters of valid UTF-8 (surrogates are not): what decoding with
    replacement and encoding again would give back unchanged, at half the cost."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True

