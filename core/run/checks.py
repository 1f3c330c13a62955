"""Hidden checks: pytest in a subprocess with a timeout, results read from JUnit XML.

The checks are copied next to (not into) the workspace only now, so the Case never saw
them, and pytest writes no cache or bytecode into the workspace it judges. Python runs
isolated (`-I`): the workspace joins the import path only once pytest has loaded (from a
conftest of ours), so a `pytest.py` or `sitecustomize.py` the Case left there cannot stand
in for pytest and forge the results. (Code under test still runs inside that process;
what it could do there is the checks' own concern.)

In the sandbox (core/sandbox/bwrap.py) the checks see the workspace read-only at `/workspace`,
themselves read-only at `/checks`, and can write only `/checks/out` (the JUnit XML, which
the harness reads afterwards); they have no network, and pytest runs from the harness's
venv, bound read-only.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING

from core.evidence.models import CheckCounts
from core.evidence.rundir import CHECK_RESULTS, atomic_write_bytes, atomic_write_text, fresh_dir
from core.evidence.untrusted import off_loop, read_bounded
from core.run.process import run_group
from core.run.task import Task
from core.sandbox.bwrap import Bind, Spec

if TYPE_CHECKING:
    from core.sandbox.run import RunSandbox

SANDBOX_CHECKS = "/checks"
SANDBOX_WORKSPACE = "/workspace"

WORKSPACE_ON_PATH = """import os
import sys

sys.path.insert(0, os.environ["CTO_HARNESS_WORKSPACE"])  # by cto-harness: the code judged
"""


JUNIT_LIMIT = 16 * 2**20
"""Bytes of JUnit XML read at most: pytest writes a few KiB per hundred tests."""
JUNIT_READ_S = 10.0
"""Seconds the results may take to read and parse, off the event loop."""
JUNIT = str(CHECK_RESULTS)
"""The results' place inside the checks' folder (the only place the checks may write): the
run directory's one name for it, which the Baseline tab's reader reads too."""


def _count(suite: ET.Element, name: str) -> int:
    raw = suite.get(name, "0")
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"testsuite attribute {name}={raw[:40]!r} is not a count") from None
    if value < 0:
        raise ValueError(f"testsuite attribute {name}={value} is negative")
    return value


def read_junit(folder: Path, name: str = JUNIT) -> CheckCounts:
    """The counts in `folder`/`name`, read as a hostile file (the code judged ran in the
    process that wrote it, and could have left a link, a FIFO, a huge file or a lie in its
    place): not followed, not waited on, at most JUNIT_LIMIT bytes. Anything unreadable or
    malformed is `ran=False` with the reason, so the run is `failed`, never `error`."""
    try:
        data = read_bounded(name, JUNIT_LIMIT, beneath=folder)
    except FileNotFoundError:
        return CheckCounts(detail="no JUnit XML (the checks wrote none)")
    except OSError as exc:
        return CheckCounts(detail=f"results refused: {name} is {exc.strerror or exc}")
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        return CheckCounts(detail=f"results refused: {name} is not XML ({exc})")
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    total = failed = errors = skipped = 0
    try:
        for suite in suites:
            total += _count(suite, "tests")
            failed += _count(suite, "failures")
            errors += _count(suite, "errors")
            skipped += _count(suite, "skipped")
    except ValueError as exc:
        return CheckCounts(detail=f"results refused: {name}: {exc}")
    passed = total - failed - errors - skipped
    if passed < 0:
        return CheckCounts(detail=f"results refused: {name} counts more failures, errors "
                                  f"and skips than tests ({total})")
    return CheckCounts(passed=passed, failed=failed, errors=errors, total=total, ran=True,
                       detail=f"{passed}/{total} passed")


async def read_results(folder: Path) -> CheckCounts:
    """read_junit off the event loop, within JUNIT_READ_S: a reader stuck in the kernel
    leaves the run free to end, with its report."""
    try:
        return await off_loop(lambda: read_junit(folder), JUNIT_READ_S, "the checks' results")
    except TimeoutError as exc:
        return CheckCounts(detail=f"results refused: {exc}")


async def run_checks(
    task: Task,
    workspace: Path,
    out_dir: Path,
    redact: Callable[[str], str],
    cancel: asyncio.Event,
    sandbox: RunSandbox | None = None,
    who: str = "the checks",
) -> CheckCounts:
    """Run the task's hidden checks against `workspace`; results and log go to `out_dir`;
    in a sandbox of their own when `sandbox` is given; `who` names them in a limit reached."""
    fresh_dir(out_dir)
    tests = out_dir / "tests"
    shutil.copytree(task.checks_dir, tests, symlinks=True, dirs_exist_ok=True)
    atomic_write_bytes(out_dir / "conftest.py", WORKSPACE_ON_PATH.encode(), mode=0o644)
    # pytest looks for its config upwards from the checks; found here, it looks no further:
    # not into the folders above the runs root (a target repository's pyproject.toml).
    atomic_write_bytes(out_dir / "pytest.ini", b"[pytest]\n", mode=0o644)
    (out_dir / CHECK_RESULTS).parent.mkdir()
    where = SANDBOX_CHECKS if sandbox else str(out_dir)
    ws = SANDBOX_WORKSPACE if sandbox else str(workspace)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "CTO_HARNESS_WORKSPACE": ws,
        "HOME": "/tmp" if sandbox else os.environ.get("HOME", "/"),
        # for the processes the checks start (-I has pytest's own ignore these three)
        "PYTHONPATH": ws,
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONIOENCODING": "utf-8",
        "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",  # plain pytest: ~5 s less per check run
        "LANG": "C.UTF-8",
    }
    argv = [sys.executable, "-I", "-B", "-X", "utf8", "-m", "pytest", "-q",
            "-p", "no:cacheprovider", "--rootdir", where, f"--junitxml={where}/{CHECK_RESULTS}",
            f"{where}/tests"]
    command: list[str] = argv
    fds: tuple[int, ...] = ()
    if sandbox is not None:
        spec = Spec(binds=[Bind(workspace, SANDBOX_WORKSPACE), Bind(out_dir, SANDBOX_CHECKS),
                           Bind(out_dir / "out", f"{SANDBOX_CHECKS}/out", writable=True),
                           Bind(Path(sys.prefix), sys.prefix)], cwd=SANDBOX_CHECKS)
        command, fds = sandbox.command(spec, argv)
        sandbox.sandboxes.hand_over(out_dir / "out")
    output: list[bytes] = []
    watch = sandbox.watch(who, out_dir / "out") if sandbox else nullcontext()
    try:
        async with watch:  # the run's limits (core/sandbox/limits.py)
            outcome = await run_group(command, cwd=out_dir, env=env, sink=output.append,
                                      timeout=task.check_timeout_s, cancel=cancel,
                                      pass_fds=fds)
    finally:
        if sandbox is not None:
            sandbox.sandboxes.take_back(out_dir / "out")
    log = out_dir / "checks.log"
    atomic_write_text(log, redact(b"".join(output).decode("utf-8", errors="replace")))
    if outcome.timed_out:
        return CheckCounts(detail=f"checks timed out after {task.check_timeout_s:.0f} s")
    if outcome.cancelled:
        return CheckCounts(detail="checks cancelled")
    counts = await read_results(out_dir)
    if not counts.detail.startswith("results refused") and counts.total == 0 \
            and outcome.exit_code not in (0, 1):
        counts.detail = f"checks could not run (pytest exit {outcome.exit_code}); see {log.name}"
        counts.ran = False
    return counts
