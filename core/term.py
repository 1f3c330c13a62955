"""Text from a Case or an endpoint, made safe for the user's terminal.

A model name a Case asked for, an endpoint's model list or a file name in a run can carry
escape sequences (clear the screen, retitle the window, OSC 52: write the clipboard), or
invisible characters that reorder what is shown ("trojan source"). The CLI's human output
spells each as a visible `\\xNN` or `\\uNNNN`; the dashboard shows them as symbols.
"""

from __future__ import annotations

import re

UNSAFE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200b\u200e\u200f\u2028-\u202e"
                    r"\u2060-\u2069\ufeff]")
"""C0 but tab and newline, DEL, C1 (0x9b is a one-byte CSI to some terminals), and the
invisible format characters that reorder or hide text (bidi overrides, line separators,
zero-width spaces)."""


def visible(text: str) -> str:
    return UNSAFE.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100
                      else f"\\u{ord(m.group()):04x}", text)
