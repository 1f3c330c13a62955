"""`cto-harness readiness`: the command over core.run.readiness (the checks themselves)."""

from __future__ import annotations

import argparse
import sys

from core.cli.common import emit_json
from core.evidence.models import Readiness
from core.run.readiness import EXIT_BLOCKED, EXIT_READY, check_readiness
from core.settings import DEFAULT_PROFILE, PROFILES, resolve
from core.term import visible


def render(readiness: Readiness) -> str:
    """A plain table a person reads at a glance."""
    width = max(len(c.name) for c in readiness.checks)
    lines = [f"readiness of {readiness.provider}/{readiness.model}"]
    for check in readiness.checks:
        lines.append(f"  {check.name:<{width}}  {check.state:<7}  {check.detail}")
    lines.append("ready" if readiness.ready else "blocked: fix the checks above that are not ok")
    return visible("\n".join(lines))  # model ids and details come from the endpoint


def _readiness_command(args: argparse.Namespace) -> int:
    readiness = check_readiness(resolve(args.profile))
    if args.json:
        emit_json(readiness)
    else:
        sys.stdout.write(render(readiness) + "\n")
    return EXIT_READY if readiness.ready else EXIT_BLOCKED


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("readiness", help="check config, Case binary, admission, endpoint")
    parser.add_argument("--profile", default=DEFAULT_PROFILE, choices=sorted(PROFILES))
    parser.add_argument("--json", action="store_true", help="print the Readiness JSON")
    parser.set_defaults(func=_readiness_command)
