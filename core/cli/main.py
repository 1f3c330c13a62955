"""`cto-harness`: one subcommand per module, each registering itself with `register(sub)`.

A command function returns the exit code. Bad input (core.errors.BadInput: ConfigError,
UsageError, TaskError) becomes a one-line message and exit 2, any other error one redacted
line and exit 4; never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import sys
from typing import NoReturn

from core import __version__
from core.cli.common import Parser, emit_json
from core.errors import BadInput, HarnessError
from core.evidence.models import EXIT_CODES, EXIT_USAGE
from core.secrets.harden import harden_process
from core.secrets.logfilter import RedactingFilter
from core.secrets.redact import Redactor
from core.settings import ConfigError, resolve

COMMAND_MODULES = {
    "run": "core.cli.run_commands",
    "validate": "core.cli.review",
    "runs": "core.cli.review",
    "health": "core.cli.run_commands",
    "gates": "core.cli.gates",
    "readiness": "core.cli.readiness",
    "scan": "core.cli.scan",
    "tasks": "core.cli.job_commands",
    "job": "core.cli.job_commands",
    "jobs": "core.cli.job_commands",
    "transcript": "core.cli.transcript",
    "diff": "core.cli.diff",
    "compare": "core.cli.compare",
    "key": "core.cli.key",
    "gateway": "core.cli.gateway",
}
"""Which module registers each command: a command imports only its own module (a `run`
need not load the SOT parser), `--help` and a bad command load them all."""


def _schema(args: argparse.Namespace) -> int:
    from core.cli.schemas import schemas

    emit_json(schemas())
    return 0


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    parser = Parser(
        prog="cto-harness",
        description="Run a Case against the admitted local model and prove it from files.",
    )
    parser.add_argument("--version", action="version", version=f"cto-harness {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # The list is the printed one itself, read only when `schema` is the command (building
    # the schemas costs every other command time for nothing).
    if command == "schema":
        from core.cli.schemas import schemas

        names = ", ".join(schemas())
    else:
        names = "see schema --help"
    schema = sub.add_parser(
        "schema", help="JSON Schema of every file the harness writes or reads",
        description=f"Print one JSON object: the JSON Schema of each file the harness writes "
                    f"or reads, keyed by name: {names}.")
    schema.set_defaults(func=_schema)
    if command == "schema":
        return parser
    wanted = COMMAND_MODULES.get(command or "")
    for name in dict.fromkeys(COMMAND_MODULES.values()):
        if wanted is None or name == wanted:
            importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    harden_process()
    install_log_redaction()
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(next((a for a in argv if not a.startswith("-")), None))
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except HarnessError as exc:
        if isinstance(exc, BadInput):
            print(f"cto-harness: {exc}", file=sys.stderr)
            return EXIT_USAGE
        return _internal_error(exc)  # ours, but not the user's to fix: as any other failure
    except KeyboardInterrupt:
        print("cto-harness: cancelled", file=sys.stderr)
        return EXIT_CODES["cancelled"]
    except Exception as exc:  # last resort: one redacted line, never a traceback
        return _internal_error(exc)


def _internal_error(exc: Exception) -> int:
    """One redacted line naming the exception, exit 4 (the harness failed, not the input)."""
    print(f"cto-harness: internal error: {redact_known(f'{type(exc).__name__}: {exc}')}",
          file=sys.stderr)
    return EXIT_CODES["error"]


def entry() -> NoReturn:
    """The console script. Once our output is flushed, leave without tearing the
    interpreter down: freeing every imported module would cost ~0.1 s a command, paid by
    every run. Files are closed by then (context managers), and asyncio.run has joined its
    threads."""
    code = main()
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)


def install_log_redaction() -> None:
    """Log records (ours and libraries': httpx logs request URLs) reach stderr only through a
    handler that masks the configured secrets in the formatted text."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("cto-harness: %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter(_known_redactor()))
    logging.basicConfig(level=logging.WARNING, handlers=[handler], force=True)


def _known_redactor() -> Redactor:
    try:
        res = resolve()
    except ConfigError:
        return Redactor({})
    return Redactor(res.secrets())


def redact_known(text: str) -> str:
    """Mask every configured secret in `text` (for messages printed outside a run)."""
    return _known_redactor().redact(text)

