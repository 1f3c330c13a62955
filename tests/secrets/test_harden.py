"""The harness process holds the secret: it makes itself non-dumpable, and log records
(httpx logs request URLs) reach stderr only through the redacting handler."""

from __future__ import annotations

import subprocess
import sys

from tests.support.harness import ROOT, Harness


def test_harden_makes_the_process_non_dumpable() -> None:
    code = ("from core.secrets.harden import harden_process, is_dumpable\n"
            "before = is_dumpable(); ok = harden_process(); print(before, ok, is_dumpable())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, check=True).stdout.split()
    assert out == ["True", "True", "False"]


def test_log_records_are_redacted_at_the_handler(harness: Harness) -> None:
    url = harness.env["CTO_HARNESS_CASE_LOCAL_BASE_URL"]
    code = ("import logging, sys\n"
            "from core.cli.main import install_log_redaction\n"
            "install_log_redaction()\n"
            "logging.getLogger('httpx').warning('HTTP Request: GET %s/models', sys.argv[1])\n"
            "try:\n    raise ValueError(sys.argv[1])\n"
            "except ValueError:\n    logging.getLogger('x').exception('failed')\n")
    # The URL goes in through argv of this throwaway child only: it is the test's own probe.
    proc = subprocess.run([sys.executable, "-c", code, url], capture_output=True, text=True,
                          cwd=ROOT, env=harness.env)
    assert "[REDACTED:endpoint]" in proc.stderr
    assert url.split("://", 1)[1] not in proc.stderr
