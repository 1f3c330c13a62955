"""The redaction tests' oracle: every spelling of a secret that the README promises the
redactor masks, derived here by this module's own code from the secret alone.

Nothing here imports core.secrets.redact: a form the redactor never derives must still be caught
by a test, so the tests check the redactor's output against these spellings with a plain
substring search. The promise (README, "Secret safety"): the full value; without scheme;
without trailing `/`; host:port; the userinfo password; each query value; percent-encoded
(as usual, or every byte); hex; JSON-escaped; base64 and base64url at all three byte
alignments, padded or not, and wrapped at any width of 16 or more. Plain-text forms match
in any ASCII case; base64 forms exactly. Forms shorter than 8 characters are not masked.
"""

from __future__ import annotations

import string
from dataclasses import dataclass

MIN_LEN = 8
"""README: a form shorter than this cannot be masked safely (it is listed instead)."""
UNRESERVED = frozenset((string.ascii_letters + string.digits + "-._~").encode())
"""RFC 3986 unreserved characters: what percent-encoding leaves as they are."""
B64 = string.ascii_uppercase + string.ascii_lowercase + string.digits + "+/"
B64URL = B64[:62] + "-_"


@dataclass(frozen=True)
class Written:
    """A spelling as written into a text, and what must not survive redaction of it: the
    spelling itself, or for base64 only the characters that depend on the secret alone."""

    text: str
    must_not_survive: str
    caseless: bool

    def survives_in(self, output: str) -> bool:
        """A plain substring search: in any ASCII case for a plain-text form; a base64 one
        exactly, line breaks removed (the form may have been wrapped)."""
        needle = self.must_not_survive
        if len(needle) < MIN_LEN:
            return False  # not promised
        if self.caseless:
            return ascii_lower(needle) in ascii_lower(output)
        return needle in output.replace("\r", "").replace("\n", "")


def ascii_lower(text: str) -> str:
    return "".join(c.lower() if c.isascii() else c for c in text)


def url_parts(secret: str) -> list[str]:
    """The secret and, when it is a URL (`scheme://authority...`), the parts that identify
    it: without scheme, without the path's trailing slashes (with and without scheme),
    host:port, the userinfo password (as written and decoded), each query value (as written
    and decoded)."""
    parts = [secret]
    if "://" not in secret:
        return parts
    scheme, rest = secret.split("://", 1)
    parts.append(rest)
    before_query, sep, query = rest.partition("?")
    query = query.partition("#")[0]
    authority = before_query.split("/", 1)[0].split("#", 1)[0]
    if before_query.endswith("/"):
        trimmed = before_query.rstrip("/") + sep + rest.partition("?")[2]
        parts += [f"{scheme}://{trimmed}", trimmed]
    userinfo, at, host_port = authority.rpartition("@")
    parts.append(host_port if at else authority)
    if at and ":" in userinfo:
        password = userinfo.split(":", 1)[1]
        parts += [password, percent_decode(password, plus=False)]
    for pair in query.split("&"):
        value = pair.partition("=")[2]
        if value:
            parts += [value, percent_decode(value, plus=True)]
    return [p for p in parts if p]


def percent_decode(text: str, plus: bool) -> str:
    raw, i, data = bytearray(), 0, text.encode("utf-8", "surrogatepass")
    while i < len(data):
        if data[i] == ord("%") and i + 2 < len(data) and _is_hex(data[i + 1:i + 3]):
            raw.append(int(data[i + 1:i + 3], 16))
            i += 3
        else:
            raw.append(ord(" ") if plus and data[i] == ord("+") else data[i])
            i += 1
    return raw.decode("utf-8", "replace")


def _is_hex(pair: bytes) -> bool:
    return len(pair) == 2 and all(chr(b) in string.hexdigits for b in pair)


def percent_encode(text: str, keep: bytes = b"") -> str:
    """Every byte but the unreserved ones (and `keep`) as %XX: how URL libraries encode."""
    return "".join(chr(b) if b in UNRESERVED or b in keep else f"%{b:02X}"
                   for b in text.encode("utf-8", "surrogatepass"))


def json_escaped(text: str, ascii_only: bool, slash: bool) -> str:
    """The inside of a JSON string: quote, backslash and controls escaped; non-ASCII as
    \\uXXXX (UTF-16 surrogate pairs beyond the BMP) when `ascii_only`; `/` as `\\/` when
    `slash` (PHP and some Java writers do)."""
    short = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b",
             "\f": "\\f"}
    out = []
    for c in text:
        code = ord(c)
        if c in short:
            out.append(short[c])
        elif c == "/" and slash:
            out.append("\\/")
        elif code < 0x20 or (ascii_only and code > 0x7E):
            if code > 0xFFFF:
                code -= 0x10000
                out.append(f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}")
            else:
                out.append(f"\\u{code:04x}")
        else:
            out.append(c)
    return "".join(out)


PLAIN_ENCODINGS = ("plain", "percent", "percent_keep_slash", "percent_every_byte", "hex",
                   "json_ascii", "json_unicode", "json_ascii_slash", "json_unicode_slash")


def encode(part: str, encoding: str) -> str:
    raw = part.encode("utf-8", "surrogatepass")
    match encoding:
        case "plain":
            return part
        case "percent":
            return percent_encode(part)
        case "percent_keep_slash":  # urllib.parse.quote's default
            return percent_encode(part, keep=b"/")
        case "percent_every_byte":
            return "".join(f"%{b:02X}" for b in raw)
        case "hex":
            return "".join(f"{b:02x}" for b in raw)
        case _:
            return json_escaped(part, ascii_only="ascii" in encoding,
                                slash=encoding.endswith("slash"))


def any_case(text: str, mask: int) -> str:
    """`text` with the ASCII letters whose bit is set in `mask` swapped in case."""
    return "".join(c.swapcase() if c.isascii() and c.isalpha() and mask >> (i % 61) & 1 else c
                   for i, c in enumerate(text))


def base64_of(data: bytes, alphabet: str) -> str:
    """base64 by hand: 6 bits a character, `=` padding to a multiple of 4."""
    bits = "".join(f"{b:08b}" for b in data)
    bits += "0" * (-len(bits) % 6)
    out = "".join(alphabet[int(bits[i:i + 6], 2)] for i in range(0, len(bits), 6))
    return out + "=" * (-len(out) % 4)


def in_base64(part: str, before: bytes, after: bytes, url: bool, padded: bool,
              width: int | None, newline: str = "\n") -> Written:
    """`part` inside a blob (`before` + part + `after`) written as base64 (or base64url),
    padded or not, wrapped every `width` characters or not. What must not survive: the
    characters whose 6 bits lie wholly within the part's bytes."""
    raw = part.encode("utf-8", "surrogatepass")
    encoded = base64_of(before + raw + after, B64URL if url else B64)
    if not padded:
        encoded = encoded.rstrip("=")
    first = -(-8 * len(before) // 6)
    last = 8 * (len(before) + len(raw)) // 6
    own = encoded[first:last]
    if width:
        encoded = newline.join(encoded[i:i + width] for i in range(0, len(encoded), width))
    return Written(encoded, own, caseless=False)


def plain_writings(secret: str, mask: int = 0) -> list[Written]:
    """Every part of the secret in every plain-text encoding, in the case `mask` picks."""
    out = []
    for part in url_parts(secret):
        for encoding in PLAIN_ENCODINGS:
            text = any_case(encode(part, encoding), mask)
            out.append(Written(text, text, caseless=True))
    return out


def base64_writings(secret: str, width: int | None = None) -> list[Written]:
    """Every part at each of the three byte alignments, both alphabets, padded or not."""
    return [in_base64(part, b"\x00\xff"[:align] + b"k" * align, b"", url, padded, width)
            for part in url_parts(secret) for align in range(3) for url in (False, True)
            for padded in (False, True)]


def survivors(output: str, secrets: dict[str, str]) -> list[str]:
    """Which promised spellings of `secrets` survive in `output` (described, never the
    value): plain-text forms in any case, base64 cores exactly, unwrapped."""
    found = []
    for name, secret in secrets.items():
        for i, part in enumerate(url_parts(secret)):
            for encoding in PLAIN_ENCODINGS:
                if Written("", encode(part, encoding), True).survives_in(output):
                    found.append(f"{name}: part {i} {encoding}")
            for align in range(3):
                for url in (False, True):
                    own = in_base64(part, b"\x00" * align, b"\x00", url, True, None)
                    if own.survives_in(output):
                        found.append(f"{name}: part {i} base64{'url' if url else ''}:{align}")
    return found
