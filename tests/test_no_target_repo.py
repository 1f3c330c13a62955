"""Seed: "No Target Repository path may be inspected or copied."

The harness runs from inside a target repository (its cwd) while an audit hook
(`sys.addaudithook`) records every file it opens; nothing under the repository may appear.
Only the installed task folder, the harness's own config files, the run directory and the
interpreter's own files are opened.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from core.evidence.keys import KEY_FILE_VAR
from tests.support.harness import ROOT, Harness, missing_machinery

HOOK = """
import json, os, sys
# As the installed console script: the cwd (the target repository) is not on sys.path.
sys.path = [p for p in sys.path if p not in ("", os.getcwd())]
log = open(os.environ["AUDIT_LOG"], "a")
def where(path):
    # A relative name opened through a folder's handle (os.open(name, dir_fd=fd), as the
    # hostile-file reader walks without following links) is resolved against that folder,
    # read from the caller's dir_fd; any other relative name against the cwd.
    dir_fd = sys._getframe(2).f_locals.get("dir_fd")
    if not os.path.isabs(path) and isinstance(dir_fd, int):
        return os.path.join(os.readlink(f"/proc/self/fd/{dir_fd}"), path)
    return os.path.abspath(path)
def hook(event, args):
    if event == "open" and isinstance(args[0], (str, bytes)):
        path = os.fsdecode(args[0])
        log.write(json.dumps(where(path)) + "\\n"); log.flush()
    elif event == "os.listdir" or event == "os.scandir":
        path = os.fsdecode(args[0]) if args and args[0] is not None else "."
        log.write(json.dumps(os.path.abspath(path)) + "\\n"); log.flush()
sys.addaudithook(hook)
sys.argv = ["cto-harness", *sys.argv[1:]]
from core.cli.main import main
sys.exit(main())
"""


def test_no_target_repository_path_is_opened(harness: Harness, tmp_path: Path) -> None:
    target = tmp_path / "target-repo"
    (target / ".git").mkdir(parents=True)
    (target / "private.py").write_text("TOKEN = 'not for the harness'\n")
    audit_log = tmp_path / "opens.jsonl"
    harness.env["AUDIT_LOG"] = str(audit_log)
    harness.env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.run(
        [sys.executable, "-c", HOOK, "run", "--json"], cwd=target, env=harness.env,
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    run_dir = Path(json.loads(proc.stdout)["run_dir"])
    opened = {json.loads(line) for line in audit_log.read_text().splitlines()}
    assert opened, "the audit hook saw nothing"
    inside_target = sorted(p for p in opened if Path(p).is_relative_to(target))
    assert inside_target == []
    task_folder = ROOT / "core" / "run" / "tasks" / "r1-string-slugify"
    assert any(Path(p).is_relative_to(task_folder) for p in opened)
    assert any(Path(p).is_relative_to(run_dir) for p in opened)
    allowed = (Path(sys.prefix), Path(sys.base_prefix), ROOT / "core", run_dir,
               Path(harness.env["CTO_HARNESS_CASE_MODEL_ADMISSION_FILE"]), Path("/proc"),
               Path("/dev"), Path("/etc"), Path("/usr"), Path("/lib"), harness.runs_root,
               # the Case binary: its `#!` line names the interpreter its sandbox shows
               Path(harness.env["CTO_HARNESS_CASE_BIN"]),
               # the Case's own memory and pids cgroups, and the key that signs the report
               Path("/sys/fs/cgroup"), Path(harness.env[KEY_FILE_VAR]))
    temp = Path(harness.env.get("TMPDIR") or "/tmp")
    stray = sorted(p for p in opened if Path(p) != ROOT  # listed by the import system
                   and not any(Path(p).is_relative_to(a) for a in allowed)
                   # the harness's own temp files (the sandbox's passwd and group)
                   and not (Path(p).parent == temp and Path(p).name.startswith("cto-harness-")))
    assert stray == []


STRACE = shutil.which("strace")
SYSCALL = re.compile(r"^(\d+)\s+(\w+)\((.*)\)\s+=\s+(-?\d+|\?)")
ONE_PATH = {"execve", "execveat", "readlink", "readlinkat", "listxattr", "llistxattr",
            "getxattr", "lgetxattr"}
"""Calls whose later strings are not paths: argv, or what the call wrote back."""
PATH_ARG = re.compile(r'(?:(?:AT_FDCWD|\d+)<([^>]*)>, )?"((?:[^"\\]|\\.)*)"')


def needs_strace() -> str:
    if STRACE is None:
        if os.environ.get("CI") == "true":
            pytest.fail("strace is not installed: .ci/run installs it; this test proves the "
                        "seed's 'no Target Repository path may be inspected' line")
        pytest.skip("strace is not installed (apt-get install strace)")
    return STRACE


UNFINISHED = re.compile(r"^(\d+)\s+(.*) <unfinished \.\.\.>$")
RESUMED = re.compile(r"^(\d+)\s+<\.\.\. \w+ resumed>(.*)$")


def whole_calls(lines: list[str]) -> list[str]:
    """Each call on one line. With -f, a call another traced process interrupts is printed
    in two halves (`pid call(args <unfinished ...>`, later `pid <... call resumed>rest`):
    read as lines, a `chdir` split so was missed, and bwrap's next `mkdir("newroot")` was
    resolved against the cwd before it (the target repository) — the ~1-in-5 failure, which
    depended on how the processes' calls interleaved, never a real touch."""
    pending: dict[str, str] = {}
    whole: list[str] = []
    for line in lines:
        if m := UNFINISHED.match(line):
            pending[m.group(1)] = m.group(2)
        elif (m := RESUMED.match(line)) and m.group(1) in pending:
            whole.append(f"{m.group(1)} {pending.pop(m.group(1))}{m.group(2)}")
        else:
            whole.append(line)
    return whole


def touched_paths(log: Path, start_cwd: Path) -> list[tuple[str, str]]:
    """(syscall, absolute path) of every path any traced process named: relative paths
    resolved against the directory strace printed (-y) or the process's cwd, followed
    through chdir and inherited across fork/clone."""
    cwd: dict[str, str] = {}
    root_pid: str | None = None
    out: list[tuple[str, str]] = []
    for line in whole_calls(log.read_text(errors="replace").splitlines()):
        m = SYSCALL.match(line)
        if m is None:
            continue
        pid, call, args, result = m.groups()
        root_pid = root_pid or pid
        here = cwd.get(pid, str(start_cwd))
        if call in ("clone", "clone3", "fork", "vfork") and result.isdigit():
            cwd[result] = here
            continue
        if call == "getcwd":
            continue  # names where the process is, touches nothing
        named = PATH_ARG.findall(args)
        if call == "mount":  # (source, target, fstype, ...): only real paths
            named = [(b, r) for b, r in named[:2] if r.startswith("/")]
        for base, raw in named[:1] if call in ONE_PATH else named:
            path = raw.encode().decode("unicode_escape")
            full = os.path.normpath(os.path.join(base or here, path))
            out.append((call, full))
            if call == "chdir" and result == "0":
                cwd[pid] = full
    return out


def test_run_from_a_target_repository_with_the_default_runs_root(harness: Harness,
                                                                  tmp_path: Path) -> None:
    """The user runs `cto-harness run` from their target repository's own folder with the
    default runs root (`./harness-runs`). Every path the harness and everything it starts
    (the Case, the checks, the baseline) names in a system call is recorded (strace -f, so
    `stat`, `access`, `readlink` too, not only what Python's audit hooks see). Under the
    repository only these may appear: the runs root the default puts there (the run is
    written into it), and an lstat of `.git` that finds the repository, so the run can say
    so. Nothing else of it is opened, listed or looked at."""
    strace = needs_strace()
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    target = tmp_path / "target-repo"
    target.mkdir()
    (target / "private.py").write_text("TOKEN = 'not for the harness'\n")
    (target / "src").mkdir()
    (target / "src" / "app.py").write_text("print('app')\n")
    subprocess.run(["git", "init", "-q", str(target)], check=True)
    subprocess.run(["git", "-C", str(target), "add", "."], check=True)
    env = {k: v for k, v in harness.env.items() if k != "CTO_HARNESS_RUNS_ROOT"}
    env.pop("PYTHONPATH", None)  # as installed: nothing of the cwd on the import path
    log = tmp_path / "strace.log"
    script = Path(sys.executable).with_name("cto-harness")
    proc = subprocess.run([strace, "-f", "-y", "-qq", "-s", "4096", "-o", str(log),
                           "-e", "trace=%file,%process", "-e", "signal=none",
                           str(script), "run", "--json"],
                          cwd=target, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    run_dir = Path(json.loads(proc.stdout)["run_dir"])
    runs_root = target / "harness-runs"
    assert run_dir.parent == runs_root  # the default, resolved against the cwd
    assert f"the runs root {runs_root} is inside the git repository {target};" in proc.stderr
    started = json.loads((run_dir / "trace.jsonl").read_text().splitlines()[1])
    assert started["runs_root_in_repository"] == str(target)
    touched = touched_paths(log, target)
    assert any(p.startswith(str(run_dir / "workspace")) for _, p in touched), "saw nothing"
    inside = sorted({(call, p) for call, p in touched
                     if Path(p).is_relative_to(target) and not Path(p).is_relative_to(runs_root)})
    # the repository's folder itself, as resolving the runs root's path looks at it, and
    # whether it holds a .git: metadata of two entries, nothing of the repository's content
    metadata = {(call, str(place)) for call in ("newfstatat", "lstat", "statx", "readlink")
                for place in (target, target / ".git")}
    assert set(inside) <= metadata, inside


PROBER = ROOT / "tests" / "cases" / "prober.py"


def test_the_target_repository_is_not_visible_to_the_case(harness: Harness,
                                                          tmp_path: Path) -> None:
    """Started from a target repository's folder, the Case (in its sandbox) looks for the
    repository and a file in it by their paths: it finds neither. What the Case and the
    checks can reach is bounded by the sandbox's filesystem view, not by their manners."""
    target = tmp_path / "target-repo"
    (target / ".git").mkdir(parents=True)
    (target / "private.py").write_text("TOKEN = 'not for the Case'\n")
    env = {k: v for k, v in harness.env.items() if k != "CTO_HARNESS_RUNS_ROOT"}
    env["CTO_HARNESS_CASE_BIN"] = str(PROBER)
    env["CTO_HARNESS_CASE_ARGS"] = (f"--probe {target} --probe {target / 'private.py'} "
                                    "--task-file {task_file} --workspace {workspace} "
                                    "--model {model}")
    proc = subprocess.run([str(Path(sys.executable).with_name("cto-harness")), "run",
                           "--json"], cwd=target, env=env, capture_output=True, text=True,
                          timeout=300)
    out = json.loads(proc.stdout)
    report = json.loads((Path(out["run_dir"]) / "report.json").read_text())
    sandbox = report.get("case_sandbox") or {}
    if out["status"] == "blocked" and not sandbox.get("ready"):
        missing_machinery(f"the Case's sandbox cannot be set up here: {report['reasons']}")
    assert sandbox["mode"] == "bwrap" and sandbox["ready"], sandbox
    log = (Path(out["run_dir"]) / "backend" / "case.log").read_text()
    probes = [line for line in log.splitlines() if line.startswith("probe ")]
    assert len(probes) == 2, log
    for line in probes:
        assert ("stat FileNotFoundError; listdir FileNotFoundError; read FileNotFoundError"
                in line), line
    assert "not for the Case" not in log
    assert out["status"] == "passed", report["reasons"]
