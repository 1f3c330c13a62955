"""Bounded Cases (core/sandbox/limits.py), tried for real through `cto-harness run` with a
hostile Case (tests/cases/hostile.py) under limits lowered for the test (64 MiB, 20 MiB of
disk, 64 processes): one allocating 8 GiB, one filling 10 GiB of disk, one forking without
end. Each ends with its limit named and `failure_class: limit`, no cgroup of the run is
left, nothing of the sandbox runs on, and a well-behaved run going at the same time passes.
Also: the opt-out recorded and failed by `validate`, and sizes that are not sizes."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.sandbox.cgroups import CGROUP_FS, PREFIX, make_cgroup
from core.sandbox.limits import disk_usage, settings_from
from core.sandbox.run import RunSandbox
from core.settings import ConfigError, resolve
from core.standins.endpoint import ScriptedEndpoint
from tests.support.harness import ROOT, Harness
from tests.support.sandboxing import (
    hostile,
    no_sandbox_process_left,
    sandboxed,  # noqa: F401 - the fixture
    secret_endpoint,
)

pytestmark = pytest.mark.usefixtures("sandboxed")
LOW = {"CTO_HARNESS_CASE_MEMORY": "64MiB", "CTO_HARNESS_CASE_DISK": "20MiB",
       "CTO_HARNESS_CASE_PIDS": "64"}


def run_cgroups(pid: int) -> list[Path]:
    """The cgroups a harness process made (named after its pid), wherever they are."""
    return [p for p in CGROUP_FS.rglob(f"{PREFIX}{pid}-*") if p.is_dir()]


def started_run(harness: Harness, *flags: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "core.cli", "run", *flags, "--json"],
                            env=harness.env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT)


def ended(proc: subprocess.Popen[str]) -> dict:
    out, err = proc.communicate(timeout=240)
    assert "Traceback" not in err, err
    return json.loads(out)


def hostile_run(harness: Harness, mode: str) -> tuple[dict, dict, int]:
    """A hostile run under the low limits, with a good run going beside it on the
    machine's defaults: (the hostile report, the good run's result, the hostile's pid)."""
    good_env = dict(harness.env)
    hostile(harness, mode)
    harness.env.update(LOW)
    bad = started_run(harness, "--no-baseline")
    bad_env, harness.env = harness.env, good_env
    good = started_run(harness)
    harness.env = bad_env
    out = ended(bad)
    beside = ended(good)
    return harness.report(out["run_dir"]), beside, bad.pid


def assert_limit(report: dict, name: str, pid: int) -> str:
    """The run failed for its limit, named; nothing of it is left; returns the reason."""
    assert report["status"] == "failed", report["reasons"]
    assert report["failure_class"] == "limit", report["reasons"]
    reason = next(r for r in report["reasons"] if r.startswith(f"limit: {name}: the Case "))
    assert report["case_sandbox"]["limits_hit"] == [reason.removeprefix("limit: ")]
    assert report["case_sandbox"]["limits_mode"] in ("cgroup-v1", "cgroup-v2")
    assert no_sandbox_process_left(report)
    assert run_cgroups(pid) == [], "the run's cgroups outlived it"
    return reason


def test_a_case_allocating_8_gib_ends_at_its_memory_limit(
        harness: Harness, upstream: ScriptedEndpoint) -> None:
    secret_endpoint(harness, upstream)
    report, beside, pid = hostile_run(harness, "memory")
    reason = assert_limit(report, "memory", pid)
    assert "reached 64 MiB (CTO_HARNESS_CASE_MEMORY)" in reason and "oom_kill" in reason
    assert report["case_exit_code"] == 137  # SIGKILL, from the kernel's OOM killer
    assert report["case_sandbox"]["limits"]["memory_bytes"] == 64 << 20
    assert beside["status"] == "passed", beside["reasons"]


def test_a_case_filling_10_gib_of_disk_ends_at_its_budget(
        harness: Harness, upstream: ScriptedEndpoint) -> None:
    secret_endpoint(harness, upstream)
    report, beside, pid = hostile_run(harness, "disk")
    reason = assert_limit(report, "disk", pid)
    assert "wrote past 20 MiB (CTO_HARNESS_CASE_DISK)" in reason
    log = (Path(report_dir(harness, report)) / "backend" / "case.log").read_text()
    tmp_line = next(x for x in log.splitlines() if x.startswith("attack: disk: /tmp refused"))
    assert int(tmp_line.split()[5]) <= 20, tmp_line  # the sized tmpfs, or RLIMIT_FSIZE
    assert "10 GiB written" not in log
    # stopped within a poll or two of the budget: nowhere near the 10 GiB it meant to write
    workspace = Path(report_dir(harness, report)) / "workspace"
    assert disk_usage([workspace]) < 1 << 30
    assert beside["status"] == "passed", beside["reasons"]


def test_a_case_forking_without_end_ends_at_its_process_limit(
        harness: Harness, upstream: ScriptedEndpoint) -> None:
    secret_endpoint(harness, upstream)
    report, beside, pid = hostile_run(harness, "bomb")
    reason = assert_limit(report, "pids", pid)
    assert "reached 64 processes (CTO_HARNESS_CASE_PIDS)" in reason
    assert beside["status"] == "passed", beside["reasons"]


def report_dir(harness: Harness, report: dict) -> Path:
    return harness.runs_root / report["run_id"]


def test_limits_in_force_are_in_the_report_and_validate_says_so(harness: Harness) -> None:
    _code, out = harness.run_json("run", "--no-baseline")
    box = harness.report(out["run_dir"])["case_sandbox"]
    assert set(box["limits"]) == {"nproc", "memory_bytes", "pids", "disk_bytes", "tmp_bytes"}
    assert box["limits_hit"] == [] and box["limits_mode"] in ("cgroup-v1", "cgroup-v2")
    _, result = harness.run_json("validate", out["run_dir"])
    bounded = next(c for c in result["criteria"] if c["id"] == "case_bounded")
    assert bounded["verdict"] == "ok" and "disk 2 GiB" in bounded["detail"]


def test_the_opt_out_is_recorded_and_never_evidence(harness: Harness) -> None:
    harness.env["CTO_HARNESS_CASE_LIMITS"] = "off"
    code, out = harness.run_json("run")
    report = harness.report(out["run_dir"])
    assert code == 0 and report["status"] == "passed"  # the run itself is fine ...
    box = report["case_sandbox"]
    assert box["limits_mode"] == "off" and "CTO_HARNESS_CASE_LIMITS=off" in box["limits_detail"]
    assert box["limits"] == {"nproc": 1024}
    code, result = harness.run_json("validate", out["run_dir"])
    bounded = next(c for c in result["criteria"] if c["id"] == "case_bounded")
    assert code == 1 and bounded["verdict"] == "failed"  # ... but never evidence
    assert "never evidence" in bounded["detail"]


@pytest.mark.parametrize(("var", "value"), [
    ("CTO_HARNESS_CASE_MEMORY", "lots"), ("CTO_HARNESS_CASE_MEMORY", "1MiB"),
    ("CTO_HARNESS_CASE_DISK", "-5G"), ("CTO_HARNESS_CASE_PIDS", "many"),
    ("CTO_HARNESS_CASE_LIMITS", "maybe")])
def test_a_limit_that_is_not_one_exits_2_naming_the_variable(
        harness: Harness, var: str, value: str) -> None:
    harness.env[var] = value
    for command in (["run"], ["job", "--task", "r1-string-slugify"]):
        proc = harness.run(*command)
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.startswith(f"cto-harness: {var} must be "), proc.stderr
        assert len(proc.stderr.splitlines()) == 1 and "Traceback" not in proc.stderr
    assert not harness.runs_root.exists() or not any(harness.runs_root.iterdir())


def test_sizes_read_as_people_write_them() -> None:
    s = settings_from({"CTO_HARNESS_CASE_MEMORY": "512MiB", "CTO_HARNESS_CASE_DISK": "2G",
                       "CTO_HARNESS_CASE_PIDS": "100"})
    assert (s.memory, s.disk, s.pids, s.enabled) == (512 << 20, 2_000_000_000, 100, True)
    assert settings_from({"CTO_HARNESS_CASE_LIMITS": "OFF"}).enabled is False
    with pytest.raises(ConfigError, match="CTO_HARNESS_CASE_MEMORY must be a size"):
        settings_from({"CTO_HARNESS_CASE_MEMORY": "4 gigs"})


def test_cgroups_of_a_harness_killed_outright_are_removed_by_the_next_run(
        harness: Harness) -> None:
    """A harness SIGKILLed mid-run cannot remove its cgroup; the next run does."""
    child = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; sys.path.insert(0, sys.argv[1]);"
        "from core.sandbox.cgroups import make_cgroup;"
        "make_cgroup(1 << 30, 64); print('made', flush=True); time.sleep(600)"),
        str(ROOT)], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None and child.stdout.readline() == "made\n"
    assert run_cgroups(child.pid)
    child.kill()
    child.wait()
    made = make_cgroup(1 << 30, 64)  # what every run does first
    try:
        assert run_cgroups(child.pid) == []
    finally:
        made.remove()
    assert run_cgroups(os.getpid()) == []


def test_the_dashboard_line_says_the_limits_what_was_reached_and_the_opt_out() -> None:
    """Run detail's `case sandbox` row (tui/run_record.py's sandbox_line)."""
    from core.evidence.models import CaseSandbox
    from tui.run_record import sandbox_line

    box = CaseSandbox(mode="bwrap", ready=True, network="relay-only", limits_mode="cgroup-v1",
                      limits={"nproc": 1024, "memory_bytes": 64 << 20, "pids": 64,
                              "disk_bytes": 20 << 20, "tmp_bytes": 20 << 20},
                      limits_hit=["memory: the Case reached 64 MiB"])
    line = sandbox_line(box)
    assert "limits (cgroup-v1) nproc 1024, memory 64 MiB, pids 64, disk 20 MiB, tmp 20 MiB" \
        in line
    assert "LIMIT REACHED: memory: the Case reached 64 MiB" in line
    off = sandbox_line(CaseSandbox(mode="bwrap", ready=True, limits_mode="off",
                                   limits={"nproc": 1024}))
    assert "limits off: never evidence" in off


def test_the_baseline_has_limits_of_its_own_beside_the_cases_checks(tmp_path: Path) -> None:
    """The fake baseline runs beside the Case's checks: a limit reached ends every process
    of its cgroup, so the two must not share one — a Case whose planted code makes its
    checks reach a limit would end the baseline too, and a hostile task's checks reaching
    one in the baseline would end the Case's checks and be counted against the Case."""
    async def set_up() -> RunSandbox:
        box = RunSandbox(resolve(), tmp_path, settings_from({}))
        box.start()
        assert await box.blocker() is None, box.problem
        return box

    box = asyncio.run(set_up())
    baseline = box.for_baseline()
    sleepers: list[subprocess.Popen[bytes]] = []
    try:
        assert baseline.limits.cgroup is not None and box.limits.cgroup is not None
        assert set(baseline.limits.folders).isdisjoint(box.limits.folders)
        assert sorted(box.limit_folders) == sorted(box.limits.folders + baseline.limits.folders)
        sleepers += [subprocess.Popen(limits.wrap(["sleep", "600"]))
                     for limits in (box.limits, baseline.limits)]
        for limits, sleeper in zip((box.limits, baseline.limits), sleepers, strict=True):
            assert limits.cgroup is not None
            procs = limits.cgroup.procs[0]
            while str(sleeper.pid) not in procs.read_text().split():  # joined, then exec'd
                assert sleeper.poll() is None
        box.limits.cgroup.kill()  # what a limit reached by the Case's checks does
        assert sleepers[0].wait(timeout=30) != 0
        assert sleepers[1].poll() is None, "the baseline's process ended with the checks'"
    finally:
        for sleeper in sleepers:
            sleeper.kill()
            sleeper.wait()
        box.close()
    assert all(not folder.exists() for folder in box.limit_folders)
