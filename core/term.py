"""Text from a Case or an endpoint, made safe for the user's terminal.

A model name a Case asked for, an endpoint's model list or a file name in a run can carry
escape sequences (clear the screen, retitle the window, OSC 52: write the clipboard). The
CLI's human output shows every control character as a visible `\\xNN` instead.
"""

from __future__ import annotations

import re

_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
"""C0 but tab and newline, DEL, and C1 (0x9b is a one-byte CSI to some terminals)."""


def visible(text: str) -> str:
    return _CONTROLS.sub(lambda m: f"\\x{ord(m.group()):02x}", text)
