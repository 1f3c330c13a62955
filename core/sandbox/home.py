"""The Case's private HOME: a folder of its own per run, never the user's.

Real agents keep config, caches and credentials under `$HOME` (`~/.codex`, `~/.config/...`)
and read settings from it, so each run gets an empty one, inside the run directory
(`<run>/home/`): the end-of-run leak scan covers it and it stays with the run as evidence.
In the sandbox it is `/home/case`, the Case's only writable place besides its workspace.

This is the one place a run's HOME is made: seeding it from a user's template goes here.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from core.evidence.rundir import fresh_dir

SANDBOX_HOME = "/home/case"


def prepare_home(run_root: Path) -> Path:
    """An empty `<run>/home/` (made afresh: nothing the run did not put there)."""
    home = run_root / "home"
    fresh_dir(home)
    home.chmod(0o700)  # agents keep the relay's per-run token in their config files
    return home


def account_files(uid: int, gid: int) -> list[tuple[str, str]]:
    """(host file, sandbox path) for /etc/passwd and /etc/group with an entry naming the
    sandbox's uid `case`, home SANDBOX_HOME. A root harness runs the Case as a uid no
    account has, and agents ask who they are: Qwen Code died at start on Node's
    os.userInfo() (uv_os_get_passwd ENOENT); Python's getpass asks the same. Read-only
    temp files, removed by the caller when the run's sandboxes close."""
    made = []
    for name, line in (("passwd", f"case:x:{uid}:{gid}:Case:{SANDBOX_HOME}:/bin/sh\n"),
                       ("group", f"case:x:{gid}:\n")):
        try:
            host = Path("/etc", name).read_text(encoding="utf-8", errors="replace")
        except OSError:
            host = ""
        # TMPDIR or /tmp, never guessed further: tempfile's own choice probes with a file
        # and may fall back to the cwd (a target repository, when run from one)
        fd, path = tempfile.mkstemp(prefix=f"cto-harness-{name}-",
                                    dir=os.environ.get("TMPDIR") or "/tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(host + ("\n" if host and not host.endswith("\n") else "") + line)
        os.chmod(path, 0o444)
        made.append((path, f"/etc/{name}"))
    return made
