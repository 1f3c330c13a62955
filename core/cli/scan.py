"""`cto-harness scan`: the command over core.secrets.scan (finding every form of the
configured secrets in files or the git index)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from core.cli.common import emit_json
from core.errors import UsageError
from core.evidence.models import EXIT_USAGE
from core.secrets.redact import Redactor
from core.secrets.scan import GitError, scan_git_index, scan_paths
from core.term import visible


def _configured_redactor() -> Redactor | None:
    from core.settings import resolve

    named = resolve().secrets()
    return Redactor(named) if named else None


def _run(args: argparse.Namespace) -> int:
    if not args.paths and not args.staged:
        raise UsageError("scan: name at least one PATH, or --staged for the git index")
    missing = [p for p in args.paths if not Path(p).exists()]
    if missing:
        raise UsageError(f"scan: no such file or directory: {missing[0]}")
    redactor = _configured_redactor()
    if redactor is None:
        print("cto-harness: scan: no secret is configured, so there is nothing to look for; "
              "set CTO_HARNESS_CASE_LOCAL_BASE_URL (or CTO_HARNESS_CASE_LOCAL_BASE_URL_FILE)",
              file=sys.stderr)
        return EXIT_USAGE
    unread: list[str] = []
    findings = scan_paths([Path(p) for p in args.paths], redactor, unread=unread)
    unread = [redactor.redact(u) for u in unread]  # a folder's name can hold the secret
    if args.staged:
        try:
            findings += scan_git_index(Path.cwd(), redactor)
        except (GitError, OSError) as exc:
            raise UsageError(f"scan --staged: git could not read the index here ({exc})") from None
    if args.json:
        emit_json({"clean": not findings and not unread, "forms": len(redactor.forms),
                   "unmaskable_forms": redactor.unmaskable,
                   "findings": [f.model_dump(mode="json") for f in findings],
                   "unread": unread})
    else:
        for f in findings:
            place = f"{f.file}:{f.line}" if f.where == "content" else (
                f"{f.file} (in its {'name' if f.where == 'name' else 'link target'})")
            print(visible(f"{place}: {f.secret} ({f.form})"))
        for problem in unread:
            print(visible(f"cto-harness scan: not scanned: {problem}"), file=sys.stderr)
        print(f"cto-harness scan: {len(findings)} leak(s) found" if findings
              else f"cto-harness scan: {len(unread)} path(s) could not be read, so not proven "
                   "clean" if unread
              else f"cto-harness scan: clean ({len(redactor.forms)} forms looked for)",
              file=sys.stderr)
    return 1 if findings or unread else 0


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "scan", help="look for every form of the configured secrets in files or the git index",
        description="Exit 1 when any form of the endpoint or API key is found in a file's "
                    "bytes (file:line), a file or folder name, or a link's target text "
                    "(with the secret and form, never the value), or when a file or folder "
                    "cannot be read (named: not proven clean); 0 when clean, 2 on bad "
                    "input.")
    parser.add_argument("paths", nargs="*", metavar="PATH", help="files or directories")
    parser.add_argument("--staged", action="store_true",
                        help="scan the blobs staged in the git index (a pre-commit hook)")
    parser.add_argument("--json", action="store_true", help="findings as JSON")
    parser.set_defaults(func=_run)
