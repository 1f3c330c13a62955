"""The behaviour `load` must keep (run: python -m pytest test_config.py)."""

from config import load

TEXT = """
# a comment
name = demo
; another comment
[server]
port = 8080
ratio = 0.5
debug = yes
title = "Hello, world"

[empty]
"""


def test_load() -> None:
    assert load(TEXT) == {
        "": {"name": "demo"},
        "server": {"port": 8080, "ratio": 0.5, "debug": True, "title": "Hello, world"},
        "empty": {},
    }
