"""Tasks from anywhere: `--tasks DIR`, CTO_HARNESS_TASKS_DIR, `--task PATH`, and
`cto-harness tasks` naming each broken task folder and the field at fault."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from core.run.task import BUNDLED_TASKS_DIR, TaskError, list_tasks, load_task
from tests.support.harness import ROOT, Harness, unprivileged
from tests.support.sandboxing import sandboxed  # noqa: F401 - the fixture

SLUGIFY = BUNDLED_TASKS_DIR / "r1-string-slugify"


def user_task(folder: Path, task_id: str, **fields: object) -> Path:
    """A copy of the slugify task under another id (the test Case's good mode solves it)."""
    dest = folder / task_id
    shutil.copytree(SLUGIFY, dest)
    config = {**json.loads((dest / "task.json").read_text()), "id": task_id, **fields}
    (dest / "task.json").write_text(json.dumps(config))
    return dest


def test_run_takes_a_task_from_a_folder_of_tasks(harness: Harness, tmp_path: Path) -> None:
    user_task(tmp_path / "mine", "my-slug")
    code, out = harness.run_json("run", "--tasks", str(tmp_path / "mine"), "--task", "my-slug")
    assert code == 0, out["reasons"]
    manifest = json.loads((Path(out["run_dir"]) / "manifest.json").read_text())
    assert manifest["task"] == "my-slug"
    assert manifest["task_folder"] == str(tmp_path / "mine" / "my-slug")
    assert Path(out["run_dir"]).name.split("-", 1)[1].startswith("my-slug-")


def test_the_variable_names_the_folder_and_a_path_names_one_task(
        harness: Harness, tmp_path: Path) -> None:
    user_task(tmp_path / "mine", "via-env")
    harness.env["CTO_HARNESS_TASKS_DIR"] = str(tmp_path / "mine")
    code, out = harness.run_json("run", "--task", "via-env", "--no-baseline")
    assert code == 1 and harness.report(out["run_dir"])["task"] == "via-env"
    folder = user_task(tmp_path / "elsewhere", "by-path")
    code, out = harness.run_json("run", "--task", str(folder), "--no-baseline")
    assert harness.report(out["run_dir"])["task"] == "by-path"
    assert harness.report(out["run_dir"])["checks"]["passed"] == 15


def test_bundled_tasks_stay_the_default(harness: Harness) -> None:
    proc = harness.run("tasks", "--json")
    rows = json.loads(proc.stdout)
    assert proc.returncode == 0
    assert "r1-string-slugify" in [r["id"] for r in rows] and all(r["ok"] for r in rows)


@pytest.mark.parametrize(("breakage", "field"), [
    (lambda d: (d / "TASK.md").unlink(), "prompt"),
    (lambda d: shutil.rmtree(d / "workspace"), "workspace"),
    (lambda d: shutil.rmtree(d / "checks"), "checks"),
    (lambda d: [p.unlink() for p in (d / "checks").iterdir()], "checks"),
    (lambda d: (d / "task.json").write_text('{"id": "broken", "prompt": "../../etc/passwd"}'),
     "prompt"),
    (lambda d: (d / "task.json").write_text("{not json"), "(top level)"),
], ids=["no-prompt", "no-workspace", "no-checks", "empty-checks", "prompt-outside", "bad-json"])
def test_a_broken_task_is_one_line_naming_folder_and_field(
        harness: Harness, tmp_path: Path, breakage, field: str) -> None:
    tasks = tmp_path / "tasks"
    user_task(tasks, "fine")
    breakage(user_task(tasks, "broken"))
    proc = harness.run("tasks", "--tasks", str(tasks))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("BAD  broken") and lines[1].startswith("ok   fine")
    assert str(tasks / "broken") in lines[0] and field in lines[0]
    run = harness.run("run", "--tasks", str(tasks), "--task", "broken")
    assert run.returncode == 2 and len(run.stderr.strip().splitlines()) == 1
    assert field in run.stderr
    assert not harness.runs_root.exists() or not list(harness.runs_root.iterdir())


@pytest.mark.parametrize("what", ["unknown", "file", "missing", "dot-dot"])
def test_bad_task_references_are_usage_errors(harness: Harness, tmp_path: Path,
                                              what: str) -> None:
    afile = tmp_path / "afile"
    afile.write_text("x")
    args = {"unknown": ["--task", "no-such-task"],
            "file": ["--tasks", str(afile)],
            "missing": ["--tasks", str(tmp_path / "nowhere")],
            "dot-dot": ["--task", "../r1-string-slugify"]}[what]
    proc = harness.run("run", *args)
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr


def test_an_unreadable_folder_of_tasks_is_named(harness: Harness, tmp_path: Path) -> None:
    tasks = tmp_path / "tasks"
    user_task(tasks, "fine")
    tasks.chmod(0o000)
    try:
        import subprocess
        import sys

        proc = subprocess.run(unprivileged([sys.executable, "-m", "core.cli", "tasks",
                                            "--tasks", str(tasks)]),
                              env=harness.env, capture_output=True, text=True, timeout=60,
                              cwd=ROOT)
    finally:
        tasks.chmod(0o755)
    assert proc.returncode == 2 and "cannot be read" in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_load_task_checks_the_id_against_its_folder(tmp_path: Path) -> None:
    folder = user_task(tmp_path, "named")
    (folder / "task.json").write_text(json.dumps({"id": "other"}))
    with pytest.raises(TaskError, match="folder is named 'named'"):
        load_task(str(folder))
    assert [r.ok for r in list_tasks(tmp_path)] == [False]


def test_the_dashboards_retry_of_a_user_task_finds_its_folder(harness: Harness,
                                                              tmp_path: Path) -> None:
    import subprocess

    from core.evidence.runs import load_manifest
    from tui.launcher import ChildRunRequest

    user_task(tmp_path / "mine", "my-slug")
    _, first = harness.run_json("run", "--tasks", str(tmp_path / "mine"), "--task", "my-slug",
                                "--no-baseline")
    manifest = load_manifest(Path(first["run_dir"]))
    assert manifest is not None
    argv = ChildRunRequest.retry(manifest).argv(harness.runs_root)
    proc = subprocess.run([*argv, "--no-baseline", "--json"], env=harness.env,
                          capture_output=True, text=True, timeout=120,
                          cwd=ROOT)
    again = json.loads(proc.stdout)
    assert harness.report(again["run_dir"])["task"] == "my-slug"
    assert harness.report(again["run_dir"])["retry_of"] == first["run_id"]


@pytest.mark.parametrize("plant", ["workspace-link", "naive-link", "prompt-link", "fifo"])
def test_a_task_folder_holding_a_link_or_fifo_is_refused_naming_it(
        harness: Harness, tmp_path: Path, plant: str) -> None:
    """A downloaded task suite is untrusted input (issue 22): a link in it would hand the
    Case (or the baseline's copy) whatever it points at; a FIFO would stall the copy. Before
    issue 22, `tasks` called these ok and a run copied the link's target (or hung)."""
    invented = "secret-" + os.urandom(8).hex()
    secret = tmp_path / "elsewhere" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text(invented)
    tasks = tmp_path / "tasks"
    user_task(tasks, "fine")
    folder = user_task(tasks, "a-linked")
    named = {"workspace-link": "workspace/notes.txt", "naive-link": "naive/keys",
             "prompt-link": "TASK.md", "fifo": "workspace/pipe"}[plant]
    if plant == "fifo":
        os.mkfifo(folder / named)
    else:
        (folder / named).unlink(missing_ok=True)
        target = secret.parent if plant == "naive-link" else secret
        (folder / named).symlink_to(target)
    proc = harness.run("tasks", "--tasks", str(tasks))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("BAD  a-linked") and lines[1].startswith("ok   fine")
    what = "a FIFO" if plant == "fifo" else "a symbolic link to"
    assert f"{named} is {what}" in lines[0], lines[0]
    run = harness.run("run", "--tasks", str(tasks), "--task", "a-linked", timeout=60)
    assert run.returncode == 2 and len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert named in run.stderr
    assert not harness.runs_root.exists() or not list(harness.runs_root.iterdir())


@pytest.mark.usefixtures("sandboxed")
def test_the_naive_solution_is_bound_with_the_masks_over_a_file_secret(
        harness: Harness, tmp_path: Path) -> None:
    """A task's naive/ that holds the endpoint's `*_FILE` (a user's layout, or a task built
    to catch it): the fake engine's sandbox shows it masked, as every bound folder is, so
    its copy never carries the secret. Before issue 22 naive/ was bound bare."""
    folder = user_task(tmp_path / "tasks", "naive-holds-it")
    url = harness.env.pop("CTO_HARNESS_CASE_LOCAL_BASE_URL") + "?k=" + os.urandom(6).hex()
    secret = folder / "naive" / "endpoint.txt"
    secret.write_text(url + "\n")
    harness.env["CTO_HARNESS_CASE_LOCAL_BASE_URL_FILE"] = str(secret)
    _code, out = harness.run_json("run", "--task", str(folder), "--engine", "fake")
    report = harness.report(out["run_dir"])
    assert report["case_process_started"], report["reasons"]
    assert not report["leak_detected"], report["leaks"]
    workspace = Path(out["run_dir"]) / "workspace"
    copied = workspace / "endpoint.txt"
    assert not copied.exists() or url not in copied.read_text()


def test_a_tasks_checks_run_sandboxed_for_the_baseline_too(
        harness: Harness, tmp_path: Path) -> None:
    """A task folder is untrusted: its checks run in a sandbox that shows the workspace
    and the checks only, for the Case's workspace and for the fake baseline's alike. Until
    this test the baseline's checks ran on the host, free to write anywhere the harness can."""
    reach = tmp_path / "reach"
    reach.mkdir(mode=0o777)
    reach.chmod(0o777)
    tmp_path.chmod(0o755)
    marker = reach / "planted"
    folder = user_task(tmp_path / "tasks", "checks-reach-out")
    (folder / "checks" / "test_reach.py").write_text(
        "from pathlib import Path\n\n\n"
        "def test_reach_out():\n"
        "    try:\n"
        f"        Path({str(marker)!r}).write_text('the checks ran on the host')\n"
        "    except OSError:\n"
        "        pass\n")
    _code, out = harness.run_json("run", "--task", str(folder))
    report = harness.report(out["run_dir"])
    assert report["baseline"]["checks"]["ran"], report["baseline"]
    assert report["checks"]["ran"], report["reasons"]
    assert not marker.exists(), marker.read_text()
