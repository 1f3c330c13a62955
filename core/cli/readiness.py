"""`cto-harness readiness`: the command over core.run.readiness (the checks themselves)."""

from __future__ import annotations

import argparse
import os
import sys

from core.cli.common import emit_json
from core.evidence.models import Readiness, ReadinessCheck
from core.run.readiness import EXIT_BLOCKED, EXIT_READY, check_readiness
from core.sandbox.run import probe
from core.settings import DEFAULT_PROFILE, PROFILES, Resolved, resolve
from core.term import visible


def render(readiness: Readiness) -> str:
    """A plain table a person reads at a glance."""
    width = max(len(c.name) for c in readiness.checks)
    lines = [f"readiness of {readiness.provider}/{readiness.model}"]
    for check in readiness.checks:
        lines.append(f"  {check.name:<{width}}  {check.state:<7}  {check.detail}")
    lines.append("ready" if readiness.ready else "blocked: fix the checks above that are not ok")
    return visible("\n".join(lines))  # model ids and details come from the endpoint


def with_sandbox(readiness: Readiness, resolved: Resolved) -> Readiness:
    """The sandbox checked as a run would set it up: a real throwaway sandbox (and one laid
    out as the Case's), bounded in time; its failure named as the run would be blocked.
    Here rather than in core.run.readiness, which the dashboard calls every few seconds."""
    ok, detail = probe(resolved, resolved.runs_root, os.environ.get("PATH", ""))
    check = ReadinessCheck(name="sandbox", state="ok" if ok else "blocked", detail=detail)
    return readiness.model_copy(update={"checks": [*readiness.checks, check],
                                        "ready": readiness.ready and ok})


def _readiness_command(args: argparse.Namespace) -> int:
    resolved = resolve(args.profile)
    readiness = with_sandbox(check_readiness(resolved), resolved)
    if args.json:
        emit_json(readiness)
    else:
        sys.stdout.write(render(readiness) + "\n")
    return EXIT_READY if readiness.ready else EXIT_BLOCKED


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("readiness",
                            help="check config, Case binary, admission, endpoint, sandbox")
    parser.add_argument("--profile", default=DEFAULT_PROFILE, choices=sorted(PROFILES))
    parser.add_argument("--json", action="store_true", help="print the Readiness JSON")
    parser.set_defaults(func=_readiness_command)
