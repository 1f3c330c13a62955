"""`cto-harness transcript RUN [--format atif|json|markdown] [--output FILE]`, and the
export of a whole job's trajectories (`cto-harness job [JOB] --export atif DIR`).

Reads only the run folder (core/evidence/exchanges.py, transcript.py, atif.py), so it answers
at once and works on a copied run. JSON goes out ASCII-escaped and Markdown through the
terminal-safety filter when it goes to a terminal: a model's answer may hold escapes.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from core.cli.common import runs_root
from core.cli.review import _resolve_run_dir
from core.errors import UsageError
from core.evidence.atif import to_atif, to_json, to_markdown
from core.evidence.rundir import atomic_write_text
from core.evidence.transcript import Transcript
from core.term import visible

FORMATS = ("atif", "json", "markdown")
EXPORT_FORMATS = ("atif", "json")


def render(run_dir: Path, fmt: str) -> tuple[str, int]:
    """The transcript in `fmt`, and how many steps could not be rebuilt whole."""
    transcript = Transcript(run_dir)
    if fmt == "markdown":
        text = to_markdown(run_dir, transcript)
    else:
        doc = to_atif(run_dir, transcript) if fmt == "atif" else to_json(run_dir, transcript)
        text = json.dumps(doc, indent=2) + "\n"
    return text, sum(1 for s in transcript.all_steps() if s.problems)


def cmd_transcript(args: argparse.Namespace) -> int:
    run_dir = _resolve_run_dir(args.run_dir, runs_root(args))
    text, unrebuilt = render(run_dir, args.format)
    if args.output:
        atomic_write_text(Path(args.output), text)
    else:
        sys.stdout.write(visible(text) if sys.stdout.isatty() else text)
        sys.stdout.flush()
    if unrebuilt:
        print(f"cto-harness: {unrebuilt} step(s) of {run_dir.name} could not be rebuilt "
              "whole (each says why)", file=sys.stderr)
    return 0


def export_job(job_dir: Path, root: Path, fmt: str, out: Path) -> int:
    """Each trial's trajectory as `OUT/<run id>/agent/trajectory.json` (the layout
    `harbor view` reads), and `OUT/index.json`: trial, task, attempt, status, steps, and
    which steps could not be rebuilt."""
    from core.jobs.summary import read_job

    if fmt not in EXPORT_FORMATS:
        raise UsageError(f"--export {fmt}: a job exports as {' or '.join(EXPORT_FORMATS)}")
    job = read_job(job_dir)
    index = []
    for trial in job.trials:
        row: dict[str, object] = {"task": trial.task, "attempt": trial.attempt,
                                  "status": trial.status, "run_id": trial.run_id}
        run_dir = root / trial.run_id if trial.run_id else None
        if run_dir is None or not run_dir.is_dir():
            row["problem"] = trial.problem or "the trial has no run folder"
            index.append(row)
            continue
        transcript = Transcript(run_dir)
        doc = to_atif(run_dir, transcript) if fmt == "atif" else to_json(run_dir, transcript)
        target = out / run_dir.name / "agent" / "trajectory.json"
        atomic_write_text(target, json.dumps(doc, indent=2) + "\n")
        row.update(file=str(target.relative_to(out)), steps=len(doc["steps"]),
                   unrebuilt=doc["extra"]["unrebuilt"] if fmt == "atif" else doc["unrebuilt"])
        index.append(row)
    atomic_write_text(out / "index.json", json.dumps(
        {"job_id": job.job_id, "format": fmt, "trials": index}, indent=2) + "\n")
    gaps = sum(1 for r in index if r.get("unrebuilt") or r.get("problem"))
    print(visible(f"exported {len(index)} trial(s) of {job.job_id} to {out}"
                  + (f"; {gaps} with steps not rebuilt whole (index.json says which)"
                     if gaps else "")), file=sys.stderr)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("transcript", help="a run's conversation with the model, rebuilt "
                            "from the exchanges the relay kept")
    parser.add_argument("run_dir", metavar="RUN", help="a run directory or a run id")
    parser.add_argument("--format", choices=FORMATS, default="markdown",
                        help="atif (Harbor's trajectory format), json (the steps as "
                             "rebuilt) or markdown (default)")
    parser.add_argument("--output", metavar="FILE", help="write there instead of stdout")
    parser.add_argument("--runs-root", metavar="DIR")
    parser.set_defaults(func=cmd_transcript)
