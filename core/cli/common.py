"""What every command shares: the argparse class, JSON output, and where the runs live.

Its own module so that the command modules import it and never `core.cli.main`, which loads
them (main imports each command module; a command module importing main back was a circle).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from core.settings import RUNS_ROOT_VAR, Resolved, resolve


class Parser(argparse.ArgumentParser):
    """argparse without abbreviations: `--dem` is a typo, never `--demo`. Subcommands'
    parsers are made from this class too (add_subparsers copies the parser's class)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)


def emit_json(data: Any) -> None:
    """One JSON document on stdout (CLI output is data others parse)."""
    if hasattr(data, "model_dump"):
        data = data.model_dump(mode="json")
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def root_was_chosen(args: argparse.Namespace) -> bool:
    """Whether the user named the runs root (option or variable) rather than taking the
    default, which a fresh clone has not created yet."""
    return bool(args.runs_root or os.environ.get(RUNS_ROOT_VAR))


def runs_root(args: argparse.Namespace, resolved: Resolved | None = None) -> Path:
    """--runs-root, else CTO_HARNESS_RUNS_ROOT (or its default), as an absolute path (the
    Case and the checks do not run in the folder it is relative to)."""
    if args.runs_root:
        return Path(args.runs_root).absolute()
    return (resolved or resolve()).runs_root
