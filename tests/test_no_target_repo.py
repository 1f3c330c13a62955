"""Seed: "No Target Repository path may be inspected or copied."

The harness runs from inside a target repository (its cwd) while an audit hook
(`sys.addaudithook`) records every file it opens; nothing under the repository may appear.
Only the installed task folder, the harness's own config files, the run directory and the
interpreter's own files are opened.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT, Harness

HOOK = """
import json, os, sys
# As the installed console script: the cwd (the target repository) is not on sys.path.
sys.path = [p for p in sys.path if p not in ("", os.getcwd())]
log = open(os.environ["AUDIT_LOG"], "a")
def hook(event, args):
    if event == "open" and isinstance(args[0], (str, bytes)):
        path = os.fsdecode(args[0])
        log.write(json.dumps(os.path.abspath(path)) + "\\n"); log.flush()
    elif event == "os.listdir" or event == "os.scandir":
        path = os.fsdecode(args[0]) if args and args[0] is not None else "."
        log.write(json.dumps(os.path.abspath(path)) + "\\n"); log.flush()
sys.addaudithook(hook)
sys.argv = ["cto-harness", *sys.argv[1:]]
from core.cli import main
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
    task_folder = ROOT / "core" / "tasks" / "r1-string-slugify"
    assert any(Path(p).is_relative_to(task_folder) for p in opened)
    assert any(Path(p).is_relative_to(run_dir) for p in opened)
    allowed = (Path(sys.prefix), Path(sys.base_prefix), ROOT / "core", run_dir,
               Path(harness.env["CTO_HARNESS_CASE_MODEL_ADMISSION_FILE"]), Path("/proc"),
               Path("/dev"), Path("/etc"), Path("/usr"), Path("/lib"), harness.runs_root)
    stray = sorted(p for p in opened if Path(p) != ROOT  # listed by the import system
                   and not any(Path(p).is_relative_to(a) for a in allowed))
    assert stray == []
