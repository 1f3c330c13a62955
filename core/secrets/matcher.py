"""Finding a secret's forms in bytes: Hyperscan over large inputs, a regex and a walk
over the bytes otherwise (the same output, slower), and the masking of what is found.

For inputs of PREFILTER_MIN bytes and more, Hyperscan (when installed) finds every whole
form and every place a wrapped base64 form may lie, and only there does Python look.
Otherwise a regex of the forms' first bytes finds candidates and a walk over the bytes
decides. The suffix a stream holds back is a dict lookup by its last two bytes (a walk only
when a line break a wrapped base64 form may cross lies near the end); masked output is
joined from views of the text. Plain-text forms match whatever the ASCII case; base64
forms match exactly. Overlapping matches merge into one range, named by the longest form
at its start, which every search path sees alike.
"""

from __future__ import annotations

import re
import threading
from operator import itemgetter

from core.secrets.forms import MIN_FORM_LEN

try:
    import hyperscan
except ImportError:  # not on this platform: the regex path gives the same output
    hyperscan = None  # type: ignore[assignment]

WRAP_MIN = 16
"""A line break counts inside a base64 form only after this many base64 bytes."""
PREFILTER_MIN = 4096
"""Inputs at least this long go through Hyperscan first."""

Range = tuple[int, int, int]
"""(start, end, form index): a match, or a merged range to mask named by its form."""

_START, _END = itemgetter(0), itemgetter(1)
_B64_BYTES = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/-_"
_NL, _CR = 0x0A, 0x0D
_WRAP_TABLE = bytes(b"A"[0] if b in _B64_BYTES else _NL if b in (_NL, _CR) else b"."[0]
                    for b in range(256))
_WRAP_MARK = b"A" * WRAP_MIN + b"\n"
"""In text translated by _WRAP_TABLE: a line break that a base64 form may cross."""
_FOLD = bytes(range(256)).lower()
"""ASCII lowercase of each byte, as bytes.lower() and Hyperscan's caseless flag fold."""


class _Forms:
    """Forms of one kind (plain text, or base64 that may be wrapped) as sets of byte
    strings: what a walk along the text may still become, and what is already whole."""

    def __init__(self, encoded: list[bytes], indexes: list[int]) -> None:
        self.extendable = {encoded[i][:n] for i in indexes for n in range(1, len(encoded[i]))}
        self.whole: dict[bytes, int] = {}
        for i in sorted(indexes, key=lambda i: len(encoded[i])):
            self.whole.setdefault(encoded[i], i)
        self.heads = {encoded[i][0] for i in indexes}


class Matcher:
    """The masked forms compiled for finding: where each may lie in a text, what a stream
    must hold back, the merged ranges to mask and the masked text. Shared by every stream
    and thread (Hyperscan's scratch space is per thread)."""

    def __init__(self, encoded: list[bytes], wrappable: list[bool],
                 markers: list[bytes]) -> None:
        """`encoded`: what each form matches (its UTF-8, ASCII-lowercased unless it is
        base64); `wrappable`: whether it is base64 (a line break may lie inside it);
        `markers`: what replaces it."""
        self._encoded = encoded
        self._wrappable = wrappable
        self._markers = markers
        self.empty = not encoded
        """No form to find: every text passes unchanged."""
        self._text = _Forms(encoded, [i for i, w in enumerate(wrappable) if not w])
        self._b64 = _Forms(encoded, [i for i, w in enumerate(wrappable) if w])
        self._heads = {b for b in range(256) if _FOLD[b] in self._text.heads} | self._b64.heads
        self._tails: dict[bytes, list[tuple[bytes, bool]]] = {}
        """Proper prefixes of forms by their last two bytes, lowercased; longest first,
        each with whether it matches caselessly."""
        prefixes = [(p, True) for p in self._text.extendable]
        prefixes += [(p, False) for p in self._b64.extendable]
        for prefix, caseless in sorted(prefixes, key=lambda pc: len(pc[0]), reverse=True):
            if len(prefix) > 1:
                self._tails.setdefault(prefix[-2:].lower(), []).append((prefix, caseless))
        self._by_head: tuple[dict[bytes, list[int]], dict[bytes, list[int]]] = ({}, {})
        """Forms by their first bytes, longest first: plain-text ones (lowercased), base64."""
        for index in sorted(range(len(self._encoded)), key=lambda i: -len(self._encoded[i])):
            heads = self._by_head[self._wrappable[index]]
            heads.setdefault(self._encoded[index][:MIN_FORM_LEN], []).append(index)
        self._lengths = [len(raw) for raw in self._encoded]
        self._spans = [len(raw) + (2 * (len(raw) - 1) if wrap else 0)
                       for raw, wrap in zip(self._encoded, self._wrappable, strict=True)]
        self.max_span = max(self._spans, default=0)
        """The most bytes one form can cover (a wrapped base64 form's line breaks too)."""
        self._candidates = _candidate_regex(self._encoded, self._wrappable)
        self._hit_meanings: list[tuple[int, int, int]] = []
        """Per Hyperscan literal: (form or -1, its length, reach), see _prefilter_literals."""
        self._database: hyperscan.Database | None = None
        self._database_built = False
        self._lock = threading.Lock()
        self._local = threading.local()

    def _walk(self, data: bytes, pos: int, forms: _Forms,
              wrappable: bool) -> tuple[int, int, bool]:
        """Follow the text from `pos`: (end of the longest form, its index, still alive at
        the end of `data`). The one definition of what matches; the rest only narrows."""
        key, i, size = b"", pos, len(data)
        best_end, best_form = -1, -1
        while True:
            form = forms.whole.get(key)
            if form is not None:
                best_end, best_form = i, form
            if key and key not in forms.extendable:
                return best_end, best_form, False
            if i >= size:
                return best_end, best_form, True
            byte = data[i]
            if not wrappable:
                byte = _FOLD[byte]
            elif key and byte in (_CR, _NL):
                if not _wrap_allowed(data, i):
                    return best_end, best_form, False
                if byte == _CR:  # "\r\n"; a lone "\r" at the end may still become one
                    if i + 1 >= size:
                        return best_end, best_form, True
                    if data[i + 1] != _NL:
                        return best_end, best_form, False
                    i += 1
                i += 1
                if i >= size:
                    return best_end, best_form, True
                byte = data[i]
            key += bytes((byte,))
            if key not in forms.extendable and key not in forms.whole:
                return best_end, best_form, False
            i += 1

    def _longest(self, data: bytes, pos: int) -> tuple[int, int]:
        """The longest form at `pos`: compared in C unless a line break that a base64 form
        may cross lies within reach, then walked."""
        limit = pos + self.max_span
        breaks = [i for i in (data.find(b"\n", pos, limit), data.find(b"\r", pos, limit))
                  if i >= 0]
        if not breaks or not _wrap_allowed(data, min(breaks)):
            head, found = data[pos:pos + MIN_FORM_LEN], (-1, -1)
            for form in self._by_head[False].get(head.lower(), ()):
                end = pos + self._lengths[form]
                if data[pos:end].lower() == self._encoded[form]:
                    found = end, form
                    break
            for form in self._by_head[True].get(head, ()):
                end = pos + self._lengths[form]
                if end > found[0] and data.startswith(self._encoded[form], pos):
                    return end, form
            return found
        end, form, _ = self._walk(data, pos, self._text, False)
        end2, form2, _ = self._walk(data, pos, self._b64, True)
        return (end2, form2) if end2 > end else (end, form)

    def prefilter(self) -> hyperscan.Database | None:
        """The Hyperscan database of every form (compiled on first use); None without
        Hyperscan or forms: then the regex and walk search everything."""
        with self._lock:
            if not self._database_built:
                literals = _prefilter_literals(self._encoded, self._wrappable, self._spans)
                self._hit_meanings = [(form, self._lengths[form] if form >= 0 else 0, reach)
                                      for form, reach in literals.values()]
                caseless = [f >= 0 and not self._wrappable[f] for f, _ in literals.values()]
                self._database = _hyperscan_database(list(literals), caseless)
                self._database_built = True
        return self._database

    def find(self, data: bytes, start: int) -> list[Range]:
        """(start, end, form) of matches starting at or after `start`: whole forms straight
        from Hyperscan, and the regex and walk around a possibly wrapped base64 form;
        for a small input, or without Hyperscan, the regex and walk over everything."""
        size = len(data)
        if size - start < PREFILTER_MIN or (database := self.prefilter()) is None:
            return self._search(data, [(start, size)])
        found: list[Range] = []
        windows: list[tuple[int, int]] = []
        add, near, meanings = found.append, windows.append, self._hit_meanings

        def on_match(literal: int, _from: int, to: int, _flags: int, _ctx: object) -> None:
            form, length, reach = meanings[literal]
            end = start + to
            if form >= 0:
                add((end - length, end, form))
            if reach:
                near((max(start, end - reach), min(size, end + reach)))

        scratch = getattr(self._local, "scratch", None)
        if scratch is None:
            scratch = self._local.scratch = hyperscan.Scratch(database)
        view = memoryview(data)[start:] if start else data  # no copy of the text
        # the binding scans any buffer; its stub says str or bytes
        database.scan(view, match_event_handler=on_match,  # type: ignore[type-var]
                      scratch=scratch)
        if windows:
            found += self._search(data, _merge_windows(windows))
        return found

    def quiet(self, data: bytes) -> bool:
        """True when `data` (ending with a line break) can hold no form, whole or begun:
        Hyperscan finds none of its literals (every whole form, and every line break a
        wrapped base64 form may cross) and no line break near the end may lie inside a
        wrapped form. Then `plan` would mask nothing and hold nothing back, so a stream
        of small chunks (a model's tokens, one SSE line a read) skips the regex and the
        walk. False without Hyperscan: the full search decides."""
        database = self._database if self._database_built else self.prefilter()
        if not data.endswith(b"\n") or database is None:
            return False
        # The last break may be a wrap only when the WRAP_MIN bytes before it are base64;
        # one in the middle of `data` is a Hyperscan literal with the bytes around it.
        brk = len(data) - (2 if data.endswith(b"\r\n") else 1)
        if self._b64.heads and _wrap_allowed(data, brk):
            return False
        scratch = getattr(self._local, "scratch", None)
        if scratch is None:
            scratch = self._local.scratch = hyperscan.Scratch(database)
        try:
            database.scan(data, match_event_handler=_first_hit, scratch=scratch)
        except hyperscan.ScanTerminated:  # a hit: the full search decides
            return False
        return True

    def _search(self, data: bytes,
                windows: list[tuple[int, int]]) -> list[Range]:
        found: list[Range] = []
        last = -1
        for lo, hi in windows:
            pos = max(lo, last + 1)
            while (m := self._candidates.search(data, pos, hi)) is not None:
                p = m.start()
                end, form = self._longest(data, p)
                if end > p:
                    found.append((p, end, form))
                last, pos = p, p + 1
        return found

    def holdback(self, data: bytes, start: int) -> int:
        """Start of the longest suffix that could still begin a form (len(data) if none).
        Without a line break a base64 form may cross near the end, that suffix is a
        proper prefix of a form, looked up by its last two bytes; otherwise walked."""
        size = len(data)
        lo = max(start, size - self.max_span)
        if self._wrap_between(data, lo, size):
            return self._walk_back(data, lo)
        for prefix, caseless in self._tails.get(data[-2:].lower(), ()):
            n = len(prefix)
            if n <= size - start and (data[size - n:].lower() == prefix if caseless
                                      else data.endswith(prefix)):
                return size - n
        return size - 1 if size > start and data[-1] in self._heads else size

    def _wrap_between(self, data: bytes, lo: int, hi: int) -> bool:
        """Whether a line break in data[lo:hi] may lie inside a wrapped base64 form."""
        return bool(self._b64.heads) and (
            _WRAP_MARK in data[max(0, lo - WRAP_MIN):hi].translate(_WRAP_TABLE))

    def _walk_back(self, data: bytes, lo: int) -> int:
        """The first place from `lo` on where a walk is still alive at the end."""
        size = len(data)
        near = max(lo, size - MIN_FORM_LEN - 2)
        pos = lo
        while (m := self._candidates.search(data, pos)) is not None and m.start() < near:
            if self._alive(data, m.start()):
                return m.start()
            pos = m.start() + 1
        for pos in range(near, size):
            if self._alive(data, pos):
                return pos
        return size

    def _alive(self, data: bytes, pos: int) -> bool:
        byte = data[pos]
        text, b64 = self._text, self._b64
        return ((_FOLD[byte] in text.heads and self._walk(data, pos, text, False)[2])
                or (byte in b64.heads and self._walk(data, pos, b64, True)[2]))

    def plan(self, data: bytes, start: int, final: bool,
              carry: tuple[int, int] | None = None) -> tuple[list[Range], int]:
        """Merged mask ranges over data[start:], each named by the longest form at its start
        (so every search path names it alike), and where output may stop (`cut`)."""
        spans = self.find(data, start)
        if carry is not None:
            spans.append((start, start + carry[0], carry[1]))
        cut = len(data) if final else self.holdback(data, start)
        if not spans:
            return spans, cut
        spans.sort(key=_END, reverse=True)  # then by start, stably: the longest first
        spans.sort(key=_START)
        merged = [spans[0]]
        for span in spans:
            last = merged[-1]
            if span[0] >= last[1]:
                merged.append(span)
            elif span[1] > last[1]:
                merged[-1] = (last[0], span[1], last[2])
        for index in range(len(merged) - 1, -1, -1):
            s, e, _ = merged[index]
            if e <= cut:
                break
            if s < cut:
                return merged[:index], s
        return [r for r in merged if r[0] < cut], cut

    def render(self, data: bytes, start: int, cut: int, ranges: list[Range]) -> bytes:
        """data[start:cut] with each range replaced by its form's marker."""
        if not ranges:
            return data if start == 0 and cut == len(data) else data[start:cut]
        pieces: list[bytes | memoryview] = []
        pos, markers, view = start, self._markers, memoryview(data)
        for s, e, form in ranges:
            pieces += [view[pos:s], markers[form]]  # views: the text is copied once
            pos = e
        pieces.append(view[pos:cut])
        return b"".join(pieces)


def _first_hit(_literal: int, _from: int, _to: int, _flags: int, _ctx: object) -> bool:
    """Hyperscan's callback for `Matcher.quiet`: any hit stops the scan."""
    return True


def _merge_windows(windows: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for lo, hi in sorted(windows):
        if merged and lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(hi, merged[-1][1]))
        else:
            merged.append((lo, hi))
    return merged


def _wrap_allowed(data: bytes, pos: int) -> bool:
    return pos >= WRAP_MIN and not data[pos - WRAP_MIN:pos].translate(None, _B64_BYTES)


_LITERAL = [re.escape(bytes([byte])) for byte in range(256)]
_CASELESS = [b"[%c%c]" % (byte, byte - 32) if 0x61 <= byte <= 0x7A else _LITERAL[byte]
             for byte in range(256)]
_WRAPPED = [rb"(?:\r?\n)?" + lit for lit in _LITERAL]


def _candidate_regex(encoded: list[bytes], wrappable: list[bool]) -> re.Pattern[bytes]:
    """A regex for where a form may start: the first bytes of every form, line breaks
    allowed anywhere inside base64 ones, any case in plain-text ones (a superset of what
    matches; the walk decides, and a short regex compiles fast). First bytes stay
    literal, each case its own branch, so the regex engine skips ahead by them."""
    trie: dict = {}
    for raw, wrap in zip(encoded, wrappable, strict=True):
        firsts = {raw[0]} if wrap else {raw[0], bytes(raw[:1]).upper()[0]}
        for first in firsts:
            node = trie.setdefault(_LITERAL[first], {})
            for byte in raw[1:MIN_FORM_LEN]:
                node = node.setdefault(_WRAPPED[byte] if wrap else _CASELESS[byte], {})
            node[b""] = {}

    def emit(node: dict) -> bytes:
        if b"" in node:
            return b""
        alts = [tok + emit(child) for tok, child in node.items()]
        return alts[0] if len(alts) == 1 else b"(?:" + b"|".join(alts) + b")"

    return re.compile(emit(trie) if trie else rb"(?!)")


def _prefilter_literals(encoded: list[bytes], wrappable: list[bool],
                        spans: list[int]) -> dict[bytes, tuple[int, int]]:
    """Hyperscan's literals, each with what a hit means: (form, reach). `form` >= 0: that
    whole form matches exactly. `reach` > 0: a base64 form may be wrapped within `reach`
    bytes around the hit (a literal may mean both). A wrapped form holds a break with 8 of
    its bytes on one side: those and the break are the literal (a form too short for that
    is listed with its break in place)."""
    literals: dict[bytes, tuple[int, int]] = {}
    half = MIN_FORM_LEN
    for index, raw in enumerate(encoded):
        literals[raw] = (index, 0)
    for raw, wrap, span in zip(encoded, wrappable, spans, strict=True):
        if not wrap:
            continue
        for x in range(1, len(raw)):
            if x >= half:
                breaks = [raw[x - half:x] + b"\n", raw[x - half:x] + b"\r\n"]
            elif len(raw) - x >= half:
                breaks = [b"\n" + raw[x:x + half]]
            else:
                breaks = [raw[:x] + b"\n" + raw[x:], raw[:x] + b"\r\n" + raw[x:]]
            for literal in breaks:
                form, reach = literals.get(literal, (-1, 0))
                literals[literal] = (form, max(reach, span))
    return literals


def _hyperscan_database(literals: list[bytes],
                        caseless: list[bool]) -> hyperscan.Database | None:
    if hyperscan is None or not literals:
        return None
    expressions = [b"".join(b"\\x%02x" % byte for byte in lit) for lit in literals]
    database = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
    database.compile(expressions=expressions, ids=list(range(len(expressions))),
                     elements=len(expressions),
                     flags=[hyperscan.HS_FLAG_CASELESS if c else 0 for c in caseless])
    return database
