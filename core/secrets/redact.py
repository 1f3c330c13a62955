"""Mask every recognisable form of each registered secret, in whole texts and in streams.

Why it is built this way (each point closes a hole of a masker people trust today):
- Forms, not just the value: a URL is also written without its scheme, without its
  trailing `/`, as host:port, as its userinfo password or query values, percent-encoded
  (as quote() does it, `/` kept or not, or every byte), as hex, JSON-escaped (non-ASCII
  and `/` escaped or not), and base64/base64url at all
  three byte alignments, padded or not.
- Base64 may be wrapped (base64(1) and MIME at 76 columns, PEM at 64): a line break is
  accepted inside a base64 form when the 16 bytes before it are base64 characters, so a
  wrapped secret is caught and an ordinary line never waits for the next one.
- Case: plain-text forms match whatever the ASCII case (a host is case-insensitive, and
  percent-encoding's hex digits come in both cases), folded byte by byte where Python
  looks and by Hyperscan's caseless flag where it scans, so no chunk is copied to fold
  it. base64 forms match exactly: case is data there.
- The mask is the union of all matches (overlapping ranges merged), so no tail of an
  overlapping secret survives, and a failed partial match never skips a restart.
- Streams hold back only the longest suffix that could still begin a form, so text that
  cannot be a secret is emitted at once; a range that could still grow is held whole, so
  any chunking gives the output of the whole text.
- A merged range is named by the longest form at its start, which every search path
  sees alike, so the marker does not depend on the chunking either.
- Speed (bench/redact.py): for inputs of 4 KiB and more, Hyperscan (when installed)
  finds every whole form and every place a wrapped base64 form may lie, and only there
  does Python look. Otherwise a regex of the forms' first bytes finds candidates and a
  walk over the bytes decides: the same output, slower. The suffix to hold back is a
  dict lookup by its last two bytes (a walk only when a line break a wrapped base64 form
  may cross lies near the end); ASCII chunks skip decoding; masked output is joined
  from views of the text.
"""

from __future__ import annotations

import base64
import codecs
import json
import logging
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from operator import itemgetter
from urllib.parse import quote, unquote, unquote_plus, urlsplit

try:
    import hyperscan
except ImportError:  # not on this platform: the regex path gives the same output
    hyperscan = None

MIN_FORM_LEN = 8
WRAP_MIN = 16
"""A line break counts inside a base64 form only after this many base64 bytes."""
PREFILTER_MIN = 4096
"""Inputs at least this long go through Hyperscan first."""
MAX_HOLD = 1 << 16
"""A chain of overlapping matches longer than this is emitted masked in pieces."""

_START, _END = itemgetter(0), itemgetter(1)
_B64_BYTES = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/-_"
_NL, _CR = 0x0A, 0x0D
_WRAP_TABLE = bytes(b"A"[0] if b in _B64_BYTES else _NL if b in (_NL, _CR) else b"."[0]
                    for b in range(256))
_WRAP_MARK = b"A" * WRAP_MIN + b"\n"
"""In text translated by _WRAP_TABLE: a line break that a base64 form may cross."""
_FOLD = bytes(range(256)).lower()
"""ASCII lowercase of each byte, as bytes.lower() and Hyperscan's caseless flag fold."""


@dataclass(frozen=True)
class SecretForm:
    """One recognisable spelling of a secret; its repr never shows the value."""

    secret: str
    kind: str
    value: str = field(repr=False)


class _Forms:
    """Forms of one kind (plain text, or base64 that may be wrapped) as sets of byte
    strings: what a walk along the text may still become, and what is already whole."""

    def __init__(self, encoded: list[bytes], indexes: list[int]) -> None:
        self.extendable = {encoded[i][:n] for i in indexes for n in range(1, len(encoded[i]))}
        self.whole: dict[bytes, int] = {}
        for i in sorted(indexes, key=lambda i: len(encoded[i])):
            self.whole.setdefault(encoded[i], i)
        self.heads = {encoded[i][0] for i in indexes}


def _url_forms(value: str) -> list[tuple[str, str]]:
    """The parts and spellings of a URL that identify it."""
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises on a bad port: then it is no URL to take apart
    except ValueError:
        return []
    if not parts.scheme or not parts.netloc or "://" not in value:
        return []
    rest = value.split("://", 1)[1]
    host_port = parts.netloc.rpartition("@")[2]
    forms = [("no_scheme", rest)]
    if parts.path.endswith("/"):
        trimmed = rest.replace(parts.netloc + parts.path, parts.netloc + parts.path.rstrip("/"), 1)
        forms += [("no_slash", f"{parts.scheme}://{trimmed}"), ("no_scheme_no_slash", trimmed)]
    forms.append(("host_port", host_port))
    if parts.password:
        forms.append(("userinfo_password", parts.password))
        forms.append(("userinfo_password_decoded", unquote(parts.password)))
    for pair in parts.query.split("&"):
        param, _, raw = pair.partition("=")
        if raw:
            forms.append((f"query:{param}", raw))
            forms.append((f"query:{param}:decoded", unquote_plus(raw)))
    return forms


def _base64_forms(text: str) -> list[tuple[str, str]]:
    """base64 and base64url of `text` at each byte alignment inside a larger blob: the
    characters that depend on the secret alone, then at the blob's end unpadded and padded."""
    raw = text.encode("utf-8", "surrogatepass")
    out: list[tuple[str, str]] = []
    for align in range(3):
        enc = base64.b64encode(b"\0" * align + raw).decode("ascii")
        first = (8 * align + 5) // 6
        core = enc[first:(8 * (align + len(raw))) // 6]
        for alphabet, table in (("base64", None), ("base64url", str.maketrans("+/", "-_"))):
            def spell(s: str, table: dict[int, int] | None = table) -> str:
                return s.translate(table) if table else s
            out.append((f"{alphabet}:{align}", spell(core)))
            out.append((f"{alphabet}:{align}:end", spell(enc[first:].rstrip("="))))
            out.append((f"{alphabet}:{align}:padded", spell(enc[first:])))
    return out


def _encoded_forms(text: str) -> list[tuple[str, str]]:
    percent = quote(text, safe="")
    escaped = json.dumps(text, ensure_ascii=False)[1:-1]
    raw = text.encode("utf-8", "surrogatepass")
    return [
        ("percent", percent),
        ("percent_keep_slash", quote(text)),  # urllib's default: `/` left as it is
        ("percent_every_byte", "".join(f"%{byte:02X}" for byte in raw)),
        ("hex", raw.hex()),
        ("json", escaped),
        ("json_ascii", json.dumps(text)[1:-1]),
        ("json_slash", escaped.replace("/", "\\/")),
        ("json_ascii_slash", json.dumps(text)[1:-1].replace("/", "\\/")),  # PHP's default
        *_base64_forms(text),
    ]


def derive_forms(name: str, value: str) -> list[SecretForm]:
    """Every recognisable form of one secret, first spelling of each value kept."""
    texts = [("full", value), *_url_forms(value)]
    seen: dict[str, SecretForm] = {}
    for kind, text in texts:
        seen.setdefault(text, SecretForm(name, kind, text))
    for kind, text in texts:
        for enc_kind, encoded in _encoded_forms(text):
            full_kind = enc_kind if kind == "full" else f"{kind}/{enc_kind}"
            seen.setdefault(encoded, SecretForm(name, full_kind, encoded))
    return [form for text, form in seen.items() if text]


class Redactor:
    """The registered secrets' forms, compiled once, shared by every stream and thread."""

    def __init__(self, secrets: Mapping[str, str]) -> None:
        self.forms: list[SecretForm] = []
        self.unmaskable: list[str] = []
        self._encoded: list[bytes] = []
        """What each form matches: its UTF-8, ASCII-lowercased unless it is base64."""
        for name, value in secrets.items():
            if not value:
                self.unmaskable.append(f"{name}:full")
                continue
            for form in derive_forms(name, value):
                raw = form.value.encode("utf-8", "surrogatepass")
                key = raw if "base64" in form.kind else raw.lower()
                if key in self._encoded:
                    continue
                if len(form.value) < MIN_FORM_LEN:
                    self.unmaskable.append(f"{form.secret}:{form.kind}")
                else:
                    self.forms.append(form)
                    self._encoded.append(key)
        self._wrappable = ["base64" in f.kind for f in self.forms]
        self._markers = [f"[REDACTED:{f.secret}]".encode() for f in self.forms]
        self._text = _Forms(self._encoded, [i for i, w in enumerate(self._wrappable) if not w])
        self._b64 = _Forms(self._encoded, [i for i, w in enumerate(self._wrappable) if w])
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
        self._max_span = max(self._spans, default=0)
        self._candidates = _candidate_regex(self._encoded, self._wrappable)
        self._hit_meanings: list[tuple[int, int, int]] = []
        """Per Hyperscan literal: (form or -1, its length, reach), see _prefilter_literals."""
        self._database: object | None = None
        self._database_built = False
        self._lock = threading.Lock()
        self._local = threading.local()

    # -- public API ---------------------------------------------------------------------

    def redact(self, text: str) -> str:
        return self.redact_counted(text)[0]

    def redact_counted(self, text: str) -> tuple[str, int]:
        """`text` with every form masked, and how many masks were made."""
        if not self.forms or not text:
            return text, 0
        data = text.encode("utf-8", "surrogatepass")
        ranges, _ = self._plan(data, 0, final=True)
        if not ranges:
            return text, 0
        masked = self._render(data, 0, len(data), ranges)
        return masked.decode("utf-8", "surrogatepass"), len(ranges)

    def stream(self) -> StreamRedactor:
        return StreamRedactor(self)

    def matches(self, data: bytes) -> list[tuple[int, int, SecretForm]]:
        """Every place a form starts in `data` (valid UTF-8), with the longest form there."""
        longest: dict[int, tuple[int, int]] = {}
        for s, e, f in self._find(data, 0):
            if e > longest.get(s, (-1, -1))[0]:
                longest[s] = (e, f)
        return [(s, e, self.forms[f]) for s, (e, f) in sorted(longest.items())]

    # -- matching -----------------------------------------------------------------------

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
        limit = pos + self._max_span
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

    def _prefilter(self) -> object | None:
        with self._lock:
            if not self._database_built:
                literals = _prefilter_literals(self._encoded, self._wrappable, self._spans)
                self._hit_meanings = [(form, self._lengths[form] if form >= 0 else 0, reach)
                                      for form, reach in literals.values()]
                caseless = [f >= 0 and not self._wrappable[f] for f, _ in literals.values()]
                self._database = _hyperscan_database(list(literals), caseless)
                self._database_built = True
        return self._database

    def _find(self, data: bytes, start: int) -> list[tuple[int, int, int]]:
        """(start, end, form) of matches starting at or after `start`: whole forms straight
        from Hyperscan, and the regex and walk around a possibly wrapped base64 form;
        for a small input, or without Hyperscan, the regex and walk over everything."""
        size = len(data)
        if size - start < PREFILTER_MIN or self._prefilter() is None:
            return self._search(data, [(start, size)])
        found: list[tuple[int, int, int]] = []
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
            scratch = self._local.scratch = hyperscan.Scratch(self._database)
        view = memoryview(data)[start:] if start else data  # no copy of the text
        self._database.scan(view, match_event_handler=on_match, scratch=scratch)
        if windows:
            found += self._search(data, _merge_windows(windows))
        return found

    def _search(self, data: bytes,
                windows: list[tuple[int, int]]) -> list[tuple[int, int, int]]:
        found: list[tuple[int, int, int]] = []
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

    def _holdback(self, data: bytes, start: int) -> int:
        """Start of the longest suffix that could still begin a form (len(data) if none).
        Without a line break a base64 form may cross near the end, that suffix is a
        proper prefix of a form, looked up by its last two bytes; otherwise walked."""
        size = len(data)
        lo = max(start, size - self._max_span)
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

    def _plan(self, data: bytes, start: int, final: bool,
              carry: tuple[int, int] | None = None) -> tuple[list[tuple[int, int, int]], int]:
        """Merged mask ranges over data[start:], each named by the longest form at its start
        (so every search path names it alike), and where output may stop (`cut`)."""
        spans = self._find(data, start)
        if carry is not None:
            spans.append((start, start + carry[0], carry[1]))
        cut = len(data) if final else self._holdback(data, start)
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

    def _render(self, data: bytes, start: int, cut: int,
                ranges: list[tuple[int, int, int]]) -> bytes:
        if not ranges:
            return data if start == 0 and cut == len(data) else data[start:cut]
        pieces, pos, markers, view = [], start, self._markers, memoryview(data)
        for s, e, form in ranges:
            pieces += [view[pos:s], markers[form]]  # views: the text is copied once
            pos = e
        pieces.append(view[pos:cut])
        return b"".join(pieces)


def _merge_windows(windows: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for lo, hi in sorted(windows):
        if merged and lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(hi, merged[-1][1]))
        else:
            merged.append((lo, hi))
    return merged


def _valid_utf8(data: bytes) -> bool:
    """Whole characters of valid UTF-8 (surrogates are not): what decoding with
    replacement and encoding again would give back unchanged, at half the cost."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


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


def _hyperscan_database(literals: list[bytes], caseless: list[bool]) -> object | None:
    if hyperscan is None or not literals:
        return None
    expressions = [b"".join(b"\\x%02x" % byte for byte in lit) for lit in literals]
    database = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
    database.compile(expressions=expressions, ids=list(range(len(expressions))),
                     elements=len(expressions),
                     flags=[hyperscan.HS_FLAG_CASELESS if c else 0 for c in caseless])
    return database


class StreamRedactor:
    """Bytes in, safe bytes out; invalid UTF-8 leaves as U+FFFD, never an exception."""

    def __init__(self, redactor: Redactor) -> None:
        self._redactor = redactor
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
        else:
            text = self._decoder.decode(data).encode("utf-8")
        return self._process(text, final=False)

    def flush(self) -> bytes:
        return self._process(self._decoder.decode(b"", final=True).encode("utf-8"), final=True)

    def _process(self, text: bytes, final: bool) -> bytes:
        redactor = self._redactor
        if not redactor.forms:
            return text
        data = self._context + self._pending + text
        start = len(self._context)
        ranges, cut = redactor._plan(data, start, final, self._carry)
        self._carry = None
        if cut == start and len(data) - start > MAX_HOLD and ranges == []:
            cut, ranges = self._split_chain(data, start)
        self.redactions += len(ranges)
        if not ranges and not self._pending and cut == len(data):
            out = text  # nothing masked, nothing held: the chunk itself, no copy
        else:
            out = redactor._render(data, start, cut, ranges)
        self._context = data[max(0, cut - WRAP_MIN):cut]
        self._pending = data[cut:]
        return out

    def _split_chain(self, data: bytes, start: int) -> tuple[int, list[tuple[int, int, int]]]:
        """An endless chain of overlapping matches: emit it masked up to where a form could
        still begin, and mask what it still covers beyond there in the next round."""
        redactor = self._redactor
        hold = redactor._holdback(data, start)
        spans = redactor._find(data, start)
        end = max((e for s, e, _ in spans if s < hold), default=hold)
        form = min(spans)[2] if spans else 0
        if end > hold:
            self._carry = (end - hold, form)
        return hold, [(start, min(end, hold), form)]


class RedactingFilter(logging.Filter):
    """Attach to a handler: masks the formatted message, exception and stack text, since a
    secret can sit in `record.args` or a traceback, never only in `record.msg`."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = self.redactor.redact(record.getMessage()), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redactor.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redactor.redact(record.stack_info)
        return True
