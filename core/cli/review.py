"""The commands that read runs: `validate` and `runs`. They import nothing of the run
stack (relay, HTTP clients), so they answer at once."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from core.cli.common import emit_json, root_was_chosen, runs_root
from core.errors import UsageError
from core.evidence.attestation import check_job
from core.evidence.gateway_check import check_gateway_ledger
from core.evidence.keys import VerifyKey, load_public_key, verify_key
from core.evidence.runs import RunsRootError, find_run, list_runs
from core.evidence.validate import validate_run
from core.settings import RUNS_ROOT_VAR
from core.term import visible

RUN_FILES = ("manifest.json", "trace.jsonl", "report.json")
"""What a run folder holds from its first moments: a folder with none of them is not a run."""


def _resolve_run_dir(arg: str, root: Path) -> Path:
    if not arg:  # Path("") is the current directory: never validate that by accident
        raise UsageError("RUN_DIR is empty: give a run directory or a run id")
    path = Path(arg)
    try:
        if path.is_dir():
            if not any(os.path.lexists(path / name) for name in RUN_FILES):
                raise UsageError(f"RUN_DIR {arg} is not a run directory (it has none of "
                                 f"{', '.join(RUN_FILES)}); give a folder under the runs "
                                 "root, or a run id")
            return path
    except OSError as exc:
        raise UsageError(f"RUN_DIR {arg} cannot be read ({exc.strerror})") from None
    try:
        found = find_run(root, arg)
    except RunsRootError as exc:
        raise UsageError(f"no run directory at {arg}, and {exc}") from None
    if found is None:
        raise UsageError(f"no run directory at {arg} (nor a run id under {root})")
    return found


def positive_limit(text: str) -> int:
    """--limit: a count of runs; 0 or less would drop runs silently, never list them."""
    try:
        limit = int(text)
    except ValueError:
        limit = 0
    if limit < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of runs, 1 or more "
                                         f"(got {text!r})")
    return limit


def _validate_job(folder: Path, key: VerifyKey | None, as_json: bool,
                  ledger: Path | None = None) -> int:
    """A job folder: its signed summary against the key (each trial is validated as a run:
    `cto-harness validate RUN_ID`), and with `ledger` every trial against the gateway's."""
    check = check_job(folder, *verify_key(key, os.environ))
    agreed = _job_gateway(folder, ledger) if ledger is not None else None
    ok = check.ok and (agreed is None or agreed["ok"])
    if as_json:
        emit_json({"job_id": folder.name, "job_dir": str(folder), "ok": ok,
                   "signature": check.signature, "keyid": check.keyid,
                   "detail": check.detail, "problems": list(check.problems),
                   **({"gateway": agreed} if agreed is not None else {})})
    else:
        print(visible(f"{folder.name}: {'accepted' if ok else 'NOT accepted'} (job)"))
        print(visible(f"  {'ok  ' if check.ok else 'FAIL'} job_signed  {check.detail}"))
        if agreed is not None:
            print(visible(f"  {'ok  ' if agreed['ok'] else 'FAIL'} gateway_ledger_agrees "
                          f"{agreed['agreeing']} of {agreed['trials']} trial run(s) agree "
                          f"with {ledger}"))
            for run, detail in agreed["disagreements"].items():
                print(visible(f"    {run}: {detail}"))
    return 0 if ok else 1


def _job_gateway(folder: Path, ledger: Path) -> dict[str, Any]:
    """Every trial of a job against the gateway's ledger, request by request (each trial's
    run folder sits in the runs root above `jobs/`)."""
    from core.jobs.summary import JobError, read_job  # only for a job with a gateway ledger

    try:
        job = read_job(folder)
    except JobError as exc:
        raise UsageError(str(exc)) from None
    runs = folder.resolve().parent.parent
    checked = {t.run_id: check_gateway_ledger(runs / t.run_id, ledger)
               for t in job.trials if t.run_id}
    failed = {run: c.detail for run, c in checked.items() if c.verdict == "failed"}
    return {"ledger": str(ledger), "ok": not failed and bool(checked),
            "trials": len(checked), "agreeing": len(checked) - len(failed),
            "disagreements": failed}


def cmd_validate(args: argparse.Namespace) -> int:
    root = runs_root(args)
    key = load_public_key(Path(args.key)) if args.key else None
    if args.run_dir and os.path.isfile(os.path.join(args.run_dir, "job.json")):
        ledger = Path(args.gateway_ledger) if args.gateway_ledger else None
        return _validate_job(Path(args.run_dir), key, args.json, ledger)
    run_dir = _resolve_run_dir(args.run_dir, root)
    result = validate_run(run_dir, key=key)
    if args.gateway_ledger:
        agreed = check_gateway_ledger(run_dir, Path(args.gateway_ledger))
        result.criteria.append(agreed)
        if agreed.verdict == "failed":
            result.ok = result.stage2_pass_evidence = False
            result.problems.append(agreed.detail)
    if args.json:
        emit_json(result)
    else:
        mark = {"ok": "ok  ", "failed": "FAIL", "not_applicable": "n/a "}
        # "accepted" alone would read as real-model evidence, which a demo run never is
        verdict = ("accepted" if result.ok else "NOT accepted") + (" as a demo" if result.demo
                                                                   else "")
        print(visible(f"{result.run_id}: {verdict} (run {result.status})"
                      + (": demo endpoint, never real-model evidence" if result.demo else "")
                      + (f"; whose fault: {result.failure_class}" if result.failure_class
                         else "")))
        failed = {c.detail for c in result.criteria if c.verdict == "failed"}
        for problem in (p for p in result.problems if p not in failed):
            print(visible(f"  {problem}"))
        for c in result.criteria:
            where = ", ".join(
                f"{e.file}{f':{e.line}' if e.line else ''}{f' [{e.field}]' if e.field else ''}"
                for e in c.evidence[:3])
            print(visible(f"  {mark[c.verdict]} {c.id:<26} {c.detail}"
                          + (f"  ({where})" if where else "")))
        print(f"  stage2 pass evidence: {'yes' if result.stage2_pass_evidence else 'no'}")
    return 0 if result.ok else 1


def cmd_runs(args: argparse.Namespace) -> int:
    root = runs_root(args)
    try:
        rows = list_runs(root, limit=args.limit)
    except RunsRootError as exc:
        raise UsageError(str(exc)) from None
    if args.json:
        emit_json([r.model_dump(mode="json") for r in rows])
        return 0
    if not rows and not root.exists() and root_was_chosen(args):
        raise UsageError(f"runs root {root} does not exist: check --runs-root or "
                         f"{RUNS_ROOT_VAR}")
    if not rows:
        print(visible(f"no runs under {root}"))
    for r in rows:
        print(visible(f"{r.run_id:<48} {r.status:<11} {r.engine or '-':<5} "
                      f"{(r.model or '-'):<18} checks {r.checks or '-':<6} "
                      f"guard {r.guard or '-'}" + (" demo" if r.demo else "")
                      + (f"  ({r.problem})" if r.problem else "")))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    val = sub.add_parser("validate", help="re-check a run's evidence against CTO-WORK-030")
    val.add_argument("run_dir", metavar="RUN_DIR", help="a run directory or a run id (or a "
                     "job folder: its signed summary)")
    val.add_argument("--runs-root", metavar="DIR")
    val.add_argument("--key", metavar="PUB", help="verify the signature with this public key "
                     "(PEM, as `cto-harness key` prints it) instead of the local one")
    val.add_argument("--gateway-ledger", metavar="FILE",
                     help="cross-check the run's relay ledger against this gateway ledger "
                          "(its state folder's ledger.jsonl), request by request")
    val.add_argument("--json", action="store_true")
    val.set_defaults(func=cmd_validate)

    runs = sub.add_parser("runs", help="every run under the runs root with its summary")
    runs.add_argument("--runs-root", metavar="DIR")
    runs.add_argument("--limit", type=positive_limit, metavar="N",
                      help="only the N most recent runs")
    runs.add_argument("--json", action="store_true")
    runs.set_defaults(func=cmd_runs)

