"""A secret's recognisable forms: the spellings under which its value may turn up.

A URL is also written without its scheme, without its trailing `/`, as host:port, as its
userinfo password or query values; every such text is also percent-encoded (as quote()
does it, `/` kept or not, or every byte), hex, JSON-escaped (non-ASCII and `/` escaped or
not), and base64/base64url at all three byte alignments, padded or not. Which of them are
masked, and how they are found, is `core.secrets.redact`'s and `core.secrets.matcher`'s.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from urllib.parse import quote, unquote, unquote_plus, urlsplit

MIN_FORM_LEN = 8
"""A form shorter than this is too common a text to mask: listed as unmaskable instead."""


@dataclass(frozen=True)
class SecretForm:
    """One recognisable spelling of a secret; its repr never shows the value."""

    secret: str
    kind: str
    value: str = field(repr=False)


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
