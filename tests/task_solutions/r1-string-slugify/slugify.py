import re
import unicodedata


def slugify(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text)
    ascii_only = "".join(ch for ch in folded if ch.isascii())
    return re.sub(r"[^a-z0-9]+", "-", ascii_only.lower()).strip("-")
