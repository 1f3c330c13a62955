"""Less of the host in the sandbox: the Case's PATH is made of the folders its sandbox
shows, never the harness's PATH verbatim (which names the user's ~/.cargo/bin,
~/.pyenv/shims ...)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.harness import Harness
from tests.support.sandboxing import log_of, sandboxed  # noqa: F401 - the fixture

pytestmark = pytest.mark.usefixtures("sandboxed")


def test_the_cases_path_holds_only_folders_its_sandbox_shows(harness: Harness,
                                                             tmp_path: Path) -> None:
    host_only = tmp_path / "users-own" / ".cargo" / "bin"
    host_only.mkdir(parents=True)
    agent = tmp_path / "agent" / "bin" / "agent"
    agent.parent.mkdir(parents=True)
    agent.write_text('#!/bin/sh\necho "path: $PATH"\nfor d in $(echo "$PATH" | tr : " "); '
                     'do [ -d "$d" ] || echo "missing: $d"; done\n')
    agent.chmod(0o755)
    harness.env["PATH"] = (f"{host_only}:relative/bin:{agent.parent}:/usr/local/bin:"
                           f"/usr/bin:/bin:{host_only}")
    harness.env["CTO_HARNESS_CASE_BIN"] = "agent"  # found on PATH, as a user names it
    _code, out = harness.run_json("run", "--no-baseline")
    log = log_of(out["run_dir"])
    line = next((ln for ln in log.splitlines() if ln.startswith("path: ")), None)
    assert line is not None, (out["reasons"], log)
    entries = line.removeprefix("path: ").split(":")
    assert entries == [str(agent.parent), "/usr/local/bin", "/usr/bin", "/bin"], entries
    assert "missing:" not in log, log
