"""The error tree: every error the harness raises on purpose derives from HarnessError, and
exactly the bad-input ones (exit 2 at the command line) derive from BadInput."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import core
from core.errors import BadInput, HarnessError, UsageError
from core.evidence.rundir import NotRegularFile
from core.evidence.runs import OutOfReach, RunsRootError, Unreadable
from core.jobs.summary import JobError
from core.planning.gates import RulesError
from core.planning.sot import SotError
from core.relay.rules import BodyError
from core.run.caseconf import CaseConfigError
from core.run.task import TaskError
from core.sandbox.bwrap import SandboxUnavailable
from core.sandbox.paths import PathProblem
from core.secrets.scan import GitError
from core.settings import ConfigError
from core.standins.localmodel import LocalModelUnavailable

BAD_INPUT = {UsageError, ConfigError, TaskError}
OTHERS = {SotError, RulesError, JobError, SandboxUnavailable, PathProblem, CaseConfigError,
          LocalModelUnavailable, GitError, BodyError, Unreadable, OutOfReach, RunsRootError,
          NotRegularFile}


def test_every_error_has_the_one_root_and_only_bad_input_exits_2() -> None:
    for cls in BAD_INPUT | OTHERS:
        assert issubclass(cls, HarnessError), cls
    assert {c for c in BAD_INPUT | OTHERS if issubclass(c, BadInput)} == BAD_INPUT


def test_errors_that_callers_catch_as_builtins_still_are() -> None:
    assert issubclass(RunsRootError, OSError)
    assert issubclass(NotRegularFile, OSError)
    assert issubclass(BodyError, ValueError)
    err = RunsRootError(Path("/nowhere"), PermissionError(13, "Permission denied"))
    assert err.errno == 13 and "cannot be read (Permission denied)" in str(err)


def test_the_sandbox_scripts_import_only_the_stdlib() -> None:
    """init, warden and fake_engine run as bare files under `python -I -S`: importing core
    (the error tree included) would fail there."""
    root = Path(core.__file__).parent
    for script in (root / "sandbox/init.py", root / "run/warden.py", root / "run/fake_engine.py"):
        text = script.read_text()
        assert "from core" not in text and "import core" not in text, script
        proc = subprocess.run([sys.executable, "-I", "-S", "-c",
                               f"import runpy; runpy.run_path({str(script)!r}, run_name='x')"],
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
