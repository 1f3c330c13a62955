"""The Case's private HOME: a folder of its own per run, never the user's.

Real agents keep config, caches and credentials under `$HOME` (`~/.codex`, `~/.config/...`)
and read settings from it, so each run gets an empty one, inside the run directory
(`<run>/home/`): the end-of-run leak scan covers it and it stays with the run as evidence.
In the sandbox it is `/home/case`, the Case's only writable place besides its workspace.

This is the one place a run's HOME is made: seeding it from a user's template goes here.
"""

from __future__ import annotations

from pathlib import Path

from core.rundir import fresh_dir

SANDBOX_HOME = "/home/case"


def prepare_home(run_root: Path) -> Path:
    """An empty `<run>/home/` (made afresh: nothing the run did not put there)."""
    home = run_root / "home"
    fresh_dir(home)
    return home
