"""`cto-harness gates`: the command over core.planning.gates (the domain: rules, evaluation,
the watcher the dashboard shares). Here: the arguments, the text table and the JSON."""

from __future__ import annotations

import argparse
from pathlib import Path

from core.cli.common import emit_json
from core.errors import UsageError
from core.evidence.runs import RunsRootError
from core.planning.gates import GateReport, RulesError, evidence_summary, gate
from core.planning.sot import SotError
from core.settings import HarnessSettings
from core.term import visible


def render(report: GateReport) -> str:
    """The text `gates` prints: one row per item, then each mapped acceptance line."""
    real = sum(1 for r in report.runs if not r.demo)
    out = [f"SOT    {report.sot}" + (" (flattened: lines restored)" if report.flattened else ""),
           f"rules  {report.rules.note}",
           *(f"       ! {line}" for line in report.rules.unread),
           f"runs   {report.runs_root}: {len(report.runs)} run(s), {real} non-demo"
           + (f"; latest real run {report.latest_real_run}" if report.latest_real_run else ""),
           "", f"{'ITEM':<14} {'WRITTEN':<12} {'COULD BE':<14} EVIDENCE"]
    for g in report.items:
        written = g.written_status or ("(no status)" if g.in_sot else "(not here)")
        out.append(f"{g.id:<14} {written:<12} {g.could_be:<14} {evidence_summary(g)}")
        if g.rule_source:
            out.append(f"{'':<14} rule: needs {', '.join(g.requires)} ({g.rule_source})")
        out.extend(f"{'':<14} {note}" for note in g.notes)
    for item_id, rows in report.acceptance.items():
        source = f"run {report.latest_real_run}" if report.latest_real_run else "no real run"
        out += ["", f"{item_id} acceptance ({source}):"]
        out.extend(f"  problem: {p}" for p in report.latest_real_problems)
        for row in rows:
            out.append(f"  {row.verdict or '-':<15} {row.criterion or '-':<25} {row.text}")
            out.append(f"  {'':<15} {'':<25} {row.detail}")
    out += ["", "evidence kinds:", *(f"  {k}: {text}" for k, text in report.kinds.items())]
    return "\n".join(out)


def cmd_gates(args: argparse.Namespace) -> int:
    root = Path(args.runs_root) if args.runs_root else Path(HarnessSettings().runs_root)
    try:
        report = gate(Path(args.sot), Path(args.rules) if args.rules else None, root)
    except (SotError, RulesError, RunsRootError) as exc:
        raise UsageError(str(exc)) from None
    if not report.items:
        raise UsageError(f"{args.sot}: no work items (headings like "
                         "`## CTO-WORK-030 - title`) and no rules naming any")
    if args.json:
        emit_json(report)
    else:
        print(visible(render(report)))  # the SOT's and the runs' words: inert on a terminal
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    gates = sub.add_parser("gates", help="which SOT work items the run evidence could "
                                         "unblock (never edits the SOT)")
    gates.add_argument("sot", metavar="SOT.md", help="the planning SOT (Markdown)")
    gates.add_argument("--rules", metavar="FILE",
                       help="gate rules (TOML); default <stem>.gates.toml or gates.toml "
                            "beside the SOT, else derived from the SOT's words")
    gates.add_argument("--runs-root", metavar="DIR")
    gates.add_argument("--json", action="store_true")
    gates.set_defaults(func=cmd_gates)
