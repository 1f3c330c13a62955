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

The parts: `forms` (deriving a secret's forms), `matcher` (finding them, Hyperscan or
Python, and masking), `stream` (the streaming redactor), `logfilter` (a logging filter);
`Redactor` here chooses the forms to mask and is what callers hold.
"""

from __future__ import annotations

from collections.abc import Mapping

from core.secrets.forms import MIN_FORM_LEN, SecretForm, derive_forms
from core.secrets.matcher import Matcher
from core.secrets.stream import StreamRedactor


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
        self._matcher = Matcher(self._encoded, ["base64" in f.kind for f in self.forms],
                                [f"[REDACTED:{f.secret}]".encode() for f in self.forms])

    # -- public API ---------------------------------------------------------------------

    def redact(self, text: str) -> str:
        return self.redact_counted(text)[0]

    def redact_counted(self, text: str) -> tuple[str, int]:
        """`text` with every form masked, and how many masks were made."""
        if not self.forms or not text:
            return text, 0
        data = text.encode("utf-8", "surrogatepass")
        ranges, _ = self._matcher.plan(data, 0, final=True)
        if not ranges:
            return text, 0
        masked = self._matcher.render(data, 0, len(data), ranges)
        return masked.decode("utf-8", "surrogatepass"), len(ranges)

    @property
    def max_span(self) -> int:
        """The most bytes one form can cover in a text: how far the pieces of a text
        searched piece by piece must overlap."""
        return self._matcher.max_span

    @property
    def prefilter(self) -> str:
        """`hyperscan` when large inputs go through Hyperscan first, else `regex` (the
        same output, slower)."""
        return "regex" if self._matcher.prefilter() is None else "hyperscan"

    def stream(self) -> StreamRedactor:
        return StreamRedactor(self._matcher)

    def matches(self, data: bytes) -> list[tuple[int, int, SecretForm]]:
        """Every place a form starts in `data` (valid UTF-8), with the longest form there."""
        longest: dict[int, tuple[int, int]] = {}
        for s, e, f in self._matcher.find(data, 0):
            if e > longest.get(s, (-1, -1))[0]:
                longest[s] = (e, f)
        return [(s, e, self.forms[f]) for s, (e, f) in sorted(longest.items())]

