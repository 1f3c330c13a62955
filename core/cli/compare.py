"""`cto-harness compare JOB_A JOB_B [--json]`: two jobs over the same tasks, per task pass@1
of each, the paired difference B − A with its 95% interval, McNemar's exact test when each
task had one attempt, and the tasks that flipped (core/jobs/compare.py)."""

from __future__ import annotations

import argparse
import sys

from core.cli.common import emit_json, runs_root
from core.errors import UsageError
from core.jobs.compare import Comparison, compare_job_dirs
from core.jobs.summary import JobError, find_job
from core.term import visible


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{x:.0%}"


def as_text(r: Comparison) -> str:
    lines = [f"A {r.job_a}", f"B {r.job_b}", ""]
    width = max((len(p.task) for p in r.tasks), default=4)
    lines.append(f"{'task':<{width}}  {'A pass@1':>9}  {'B pass@1':>9}  {'B − A':>7}")
    for p in r.tasks:
        lines.append(f"{p.task:<{width}}  {_pct(p.a_pass_at_1):>9}  {_pct(p.b_pass_at_1):>9}  "
                     f"{p.difference * 100:>+6.0f}%")
    lines.append("")
    if r.tasks:
        lines.append(f"pass@1 over the {len(r.tasks)} paired task(s): A {_pct(r.a_pass_at_1)}, "
                     f"B {_pct(r.b_pass_at_1)}")
    if r.mcnemar_p is not None:
        lines.append(f"McNemar exact: {r.a_only_passed} passed by A only, {r.b_only_passed} by "
                     f"B only, p = {r.mcnemar_p:.4g}")
    if r.flipped_to_pass:
        lines.append(f"better in B: {', '.join(r.flipped_to_pass)}")
    if r.flipped_to_fail:
        lines.append(f"worse in B: {', '.join(r.flipped_to_fail)}")
    if r.left_out:
        parts = [f"{len(x)} {what}" for x, what in ((r.only_in_a, "only in A"),
                                                   (r.only_in_b, "only in B"),
                                                   (r.unscored, "unscored in one"))
                 if x]
        lines.append(f"left out: {r.left_out} task(s) ({', '.join(parts)})")
    lines.append(r.verdict)
    return "\n".join(lines) + "\n"


def cmd_compare(args: argparse.Namespace) -> int:
    root = runs_root(args)
    try:
        a, b = find_job(root, args.job_a), find_job(root, args.job_b)
        result = compare_job_dirs(a, b, resamples=args.resamples, seed=args.seed)
    except JobError as exc:
        raise UsageError(str(exc)) from None
    if args.json:
        emit_json(result)
    else:
        text = as_text(result)
        sys.stdout.write(visible(text) if sys.stdout.isatty() else text)
    return 0


def _resamples(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 100:
        raise argparse.ArgumentTypeError(f"--resamples {text!r}: a whole number, 100 or more")
    return value


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("compare", help="two jobs over the same tasks: which is better, "
                            "by how much, how sure")
    parser.add_argument("job_a", metavar="JOB_A", help="a job id or job folder")
    parser.add_argument("job_b", metavar="JOB_B", help="a job id or job folder")
    parser.add_argument("--json", action="store_true", help="the comparison as JSON")
    parser.add_argument("--resamples", type=_resamples, default=10_000,
                        help="bootstrap resamples (default 10000)")
    parser.add_argument("--seed", type=int, default=20260601,
                        help="the bootstrap's seed (default 20260601): same jobs, same "
                             "interval")
    parser.add_argument("--runs-root", metavar="DIR")
    parser.set_defaults(func=cmd_compare)
