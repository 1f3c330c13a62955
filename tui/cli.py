"""`cto-harness-tui`'s command line: options read and checked before the app starts, so a
bad one is one line and exit 2, never a screen."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import NoReturn

from core.cli.common import Parser
from core.evidence.models import EXIT_USAGE
from core.evidence.runs import RunsRootError, find_run, list_run_dirs
from core.settings import ConfigError, resolve
from tui.app import DEFAULT_LOG_LINES, Dashboard


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = Parser(prog="cto-harness-tui",
                    description="Watch cto-harness runs live and drill into past ones.")
    parser.add_argument("--runs-root", metavar="DIR",
                        help="where runs live (default: CTO_HARNESS_RUNS_ROOT or ./harness-runs)")
    parser.add_argument("--run", metavar="RUN_ID", help="show this run on Live")
    parser.add_argument("--demo", action="store_true",
                        help="start `cto-harness run --demo` (embedded demo endpoint) and show "
                             "it live")
    parser.add_argument("--log-lines", type=int, default=DEFAULT_LOG_LINES, metavar="N",
                        help=f"recent log lines kept on Live (default {DEFAULT_LOG_LINES:,}); "
                             "Run detail reads the whole file")
    parser.add_argument("--sot", metavar="FILE", default=os.environ.get("CTO_HARNESS_SOT"),
                        help="a planning SOT: adds the Work items screen (3); default: "
                             "CTO_HARNESS_SOT")
    parser.add_argument("--rules", metavar="FILE",
                        help="gate rules for the SOT (default: found beside it)")
    return parser.parse_args(argv)


def _usage_error(message: str) -> NoReturn:
    print(f"cto-harness-tui: {message}", file=sys.stderr)
    sys.exit(EXIT_USAGE)


def _check_run_option(root: Path, run_id: str) -> None:
    """`--run` names a run folder directly under the runs root, never a path elsewhere."""
    if run_id in (".", "..") or Path(run_id).name != run_id:
        _usage_error(f"--run takes a run's folder name under the runs root {root} (got "
                     f"{run_id!r}); use --runs-root for another root")
    try:
        list_run_dirs(root)  # the root itself first: a file, or unreadable
        found = find_run(root, run_id)
    except RunsRootError as exc:
        _usage_error(str(exc))
    else:
        if found is None:
            _usage_error(f"no run {run_id} under {root}")


def build_app(argv: list[str] | None = None) -> Dashboard:
    """The app from command-line arguments; bad ones exit 2 with a one-line message."""
    args = parse_args(argv)
    resolved, problem = None, None
    try:
        resolved = resolve()
    except ConfigError as exc:
        problem = str(exc)
    default_root = resolved.runs_root if resolved else Path("harness-runs")
    root = Path(args.runs_root) if args.runs_root else default_root
    if args.log_lines < 100:
        _usage_error(f"--log-lines must be at least 100 (got {args.log_lines})")
    if args.run:
        _check_run_option(root, args.run)
    if args.sot and not Path(args.sot).is_file():
        print(f"cto-harness-tui: --sot: no file at {args.sot}", file=sys.stderr)
        sys.exit(EXIT_USAGE)
    return Dashboard(root, run_id=args.run, demo=args.demo, log_ring=args.log_lines,
                     resolved=resolved, config_error=problem,
                     sot=Path(args.sot) if args.sot else None,
                     rules=Path(args.rules) if args.rules else None)


def main(argv: list[str] | None = None) -> None:
    from core.secrets.harden import harden_process

    harden_process()  # it may hold a typed endpoint in memory
    app = build_app(argv)
    if not (sys.stdout.isatty() and sys.stdin.isatty()):
        # Without a terminal Textual would write escape codes into a pipe or file forever.
        _usage_error("needs a terminal: run it in one (for scripts and CI use `cto-harness "
                     "runs` / `cto-harness validate`)")
    app.run()
