"""`cto-harness diff RUN [--json] [--baseline]`: what the Case (or the fake baseline) changed
in its workspace, against the start the run kept (core/evidence/diff.py).

Reads only the run folder, so it works on a copied run and on one still going. Text goes to a
terminal through the terminal-safety filter (a Case chooses every file name and byte).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

from core.cli.common import runs_root
from core.cli.review import _resolve_run_dir
from core.errors import UsageError
from core.evidence.diff import WorkspaceDiff, run_diff
from core.secrets.redact import Redactor
from core.settings import ConfigError, resolve
from core.term import visible

SIGN = {"added": "A", "removed": "D", "changed": "M"}


def summary_line(diff: WorkspaceDiff) -> str:
    return (f"{diff.after} against {diff.before}: {diff.added} added, {diff.removed} removed, "
            f"{diff.changed} changed, {diff.unchanged} unchanged")


def as_text(diff: WorkspaceDiff) -> str:
    """A list of the paths (A/D/M, as git's --name-status), then each text file's diff."""
    out = [summary_line(diff)]
    for f in diff.files:
        counts = f" +{f.added_lines} -{f.removed_lines}" if f.kind == "text" and f.diff else ""
        note = f" ({f.kind}: {f.note})" if f.kind != "text" else (f" ({f.note})" if f.note
                                                                   else "")
        out.append(f"{SIGN[f.change]} {f.path}{counts}{note}")
    text = "\n".join(out) + "\n"
    for f in diff.files:
        if f.diff:
            text += "\n" + f.diff
    return text


def _redact() -> Callable[[str], str]:
    """The configured secret's forms masked: a workspace is the Case's, not redacted on disk,
    and a Case that leaked the endpoint into a file (the leak scan flags the run) must not
    have `diff` print it."""
    try:
        named = resolve().secrets()
    except ConfigError:
        return str
    return Redactor(named).redact if named else str


def cmd_diff(args: argparse.Namespace) -> int:
    run_dir = _resolve_run_dir(args.run_dir, runs_root(args))
    diff = run_diff(run_dir, baseline=args.baseline)
    if diff.problem and not diff.files and not diff.unchanged:
        raise UsageError(f"{run_dir.name}: {diff.problem}")
    redact = _redact()
    if args.json:
        text = redact(json.dumps(diff.model_dump(mode="json"), indent=2, ensure_ascii=False))
        sys.stdout.write(text + "\n")
    else:
        text = redact(as_text(diff))
        sys.stdout.write(visible(text) if sys.stdout.isatty() else text)
    sys.stdout.flush()
    if diff.problem:
        print(visible(f"cto-harness: {run_dir.name}: {diff.problem}"), file=sys.stderr)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("diff", help="what a run's Case changed in its workspace")
    parser.add_argument("run_dir", metavar="RUN", help="a run directory or a run id")
    parser.add_argument("--baseline", action="store_true",
                        help="the fake baseline's workspace instead of the Case's")
    parser.add_argument("--json", action="store_true", help="the diff as JSON")
    parser.add_argument("--runs-root", metavar="DIR")
    parser.set_defaults(func=cmd_diff)
