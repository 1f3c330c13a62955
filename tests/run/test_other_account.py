"""Another local account is an adversary (the threat model): given a runs root it can write
into (a shared, sticky folder like /tmp), it plants links, FIFOs and a `jobs` link among the
runs. The harness's readers (`runs`, `jobs`, `validate`, the dashboard's list, which is
`core.evidence.runs.list_runs`) never follow a link it planted nor block on its FIFO, and
the harness never writes a run or a job through one.

The account is a real second uid (`nobody`, through `setpriv`), so what it plants is owned
by someone else, as it would be on a shared machine."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.evidence.runs import list_runs
from tests.support.harness import Harness, missing_machinery

SLUGIFY = Path(__file__).resolve().parents[2] / "core" / "run" / "tasks" / "r1-string-slugify"

OTHER = 65534


def as_other(script: str) -> None:
    """`script` run by /bin/sh as the other account (no group of ours)."""
    proc = subprocess.run(["setpriv", f"--reuid={OTHER}", f"--regid={OTHER}",
                           "--clear-groups", "sh", "-ec", script], capture_output=True,
                          text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr


@pytest.fixture
def shared() -> Iterator[Path]:
    """A runs root other accounts may write into (sticky, like /tmp)."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        missing_machinery("a second account needs root and setpriv to act as it")
    root = Path(tempfile.mkdtemp(prefix="cto-shared-runs-", dir="/tmp"))
    root.chmod(0o1777)
    theirs = Path(tempfile.mkdtemp(prefix="cto-theirs-", dir="/tmp"))
    os.chown(theirs, OTHER, OTHER)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(theirs, ignore_errors=True)


def plant(shared: Path, private_run: Path, theirs: Path) -> None:
    as_other(f"""
cd {shared}
ln -s {private_run} 20991231T235959Z-borrowed-1
mkdir 20991231T235958Z-fifos-1
mkfifo 20991231T235958Z-fifos-1/manifest.json 20991231T235958Z-fifos-1/report.json \
       20991231T235958Z-fifos-1/trace.jsonl
mkdir 20991231T235957Z-links-1
ln -s {private_run}/manifest.json 20991231T235957Z-links-1/manifest.json
ln -s /etc/shadow 20991231T235957Z-links-1/report.json
ln -s /dev/zero 20991231T235957Z-links-1/trace.jsonl
ln -s {theirs} jobs
""")


def test_another_accounts_plantings_in_a_shared_runs_root_are_never_followed(
        harness: Harness, shared: Path) -> None:
    code, out = harness.run_json("run", "--engine", "fake")
    assert code in (0, 1), out
    private_run = Path(out["run_dir"])
    theirs = next(Path("/tmp").glob("cto-theirs-*"))
    plant(shared, private_run, theirs)
    harness.env["CTO_HARNESS_RUNS_ROOT"] = str(shared)

    code, rows = harness.run_json("runs", timeout=60)
    assert code == 0, rows
    ids = {row["run_id"]: row for row in rows}
    assert "20991231T235959Z-borrowed-1" not in ids, \
        "a link to a run elsewhere is not a run of this root"
    for planted in ("20991231T235958Z-fifos-1", "20991231T235957Z-links-1"):
        assert ids[planted]["status"] == "unreadable", ids[planted]
    assert "root:" not in json.dumps(rows), "/etc/shadow was read"
    assert [r.status for r in list_runs(shared)].count("unreadable") == 2  # the dashboard's

    # Named by id, the borrowed link is no run of this root either (the dashboard's --run
    # takes the same path).
    proc = harness.run("validate", "20991231T235959Z-borrowed-1", timeout=60)
    assert proc.returncode == 2 and "no run directory" in proc.stderr, proc.stderr
    for planted in ("20991231T235958Z-fifos-1", "20991231T235957Z-links-1"):
        proc = harness.run("validate", str(shared / planted), "--json", timeout=60)
        assert proc.returncode not in (0, None) and "Traceback" not in proc.stderr, \
            proc.stderr
        assert "root:" not in proc.stdout

    # Their `jobs` link is neither read as our jobs nor written through (it would hand them
    # a job's evidence to read and rewrite): both commands refuse, naming it.
    for args in (("jobs", "--json"), ("job", "--task", "r1-string-slugify", "--name",
                                      "planted", "--json")):
        proc = harness.run(*args, timeout=120)
        assert proc.returncode == 2, (args, proc.returncode, proc.stdout, proc.stderr)
        assert f"{shared / 'jobs'} is a link" in proc.stderr, proc.stderr
    assert list(theirs.iterdir()) == []

    # A run in that root is still made the harness's own and private.
    code, out = harness.run_json("run", "--engine", "fake")
    run_dir = Path(out["run_dir"])
    assert run_dir.parent == shared and not run_dir.is_symlink()
    st = run_dir.lstat()
    assert (st.st_uid, st.st_mode & 0o777) == (os.getuid(), 0o700)


def test_another_accounts_plantings_in_a_shared_task_folder_are_named_never_followed(
        harness: Harness, shared: Path) -> None:
    """A task suite in a folder others may write into: the other account turns one task's
    workspace file into a link to the harness user's secret and plants a FIFO in another.
    `tasks` names both (no hang, no read through the link) and `run` refuses them."""
    invented = "secret-" + os.urandom(8).hex()
    secret = Path(tempfile.mkdtemp(prefix="cto-mine-", dir="/tmp")) / "secret.txt"
    secret.write_text(invented)
    tasks = shared / "tasks"
    tasks.mkdir()
    tasks.chmod(0o1777)
    for name in ("linked", "piped", "fine"):
        dest = tasks / name
        shutil.copytree(SLUGIFY, dest)
        config = {**json.loads((dest / "task.json").read_text()), "id": name}
        (dest / "task.json").write_text(json.dumps(config))
        if name != "fine":
            (dest / "workspace").chmod(0o777)  # the suite was unpacked world-writable
    try:
        as_other(f"""
cd {tasks}
ln -s {secret} linked/workspace/notes.txt
mkfifo piped/workspace/pipe
""")
        proc = harness.run("tasks", "--tasks", str(tasks), timeout=60)
        assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
        bad = {line.split()[1]: line for line in proc.stdout.splitlines()
               if line.startswith("BAD")}
        assert set(bad) == {"linked", "piped"}, proc.stdout
        assert "a symbolic link" in bad["linked"] and "a FIFO" in bad["piped"], bad
        assert invented not in proc.stdout + proc.stderr
        for name in ("linked", "piped"):
            run = harness.run("run", "--tasks", str(tasks), "--task", name, timeout=60)
            assert run.returncode == 2 and "Traceback" not in run.stderr, run.stderr
    finally:
        shutil.rmtree(secret.parent, ignore_errors=True)
