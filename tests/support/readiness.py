"""Reading a readiness answer in tests: each check's state and detail, and a check that proves
no part of the endpoint is in what readiness says (the readiness and settings tests)."""

from __future__ import annotations

from core.evidence.models import Readiness
from core.run.readiness import check_readiness
from core.settings import resolve


def states(readiness: Readiness) -> dict[str, str]:
    return {c.name: c.state for c in readiness.checks}


def detail(readiness: Readiness, name: str) -> str:
    return next(c.detail for c in readiness.checks if c.name == name)


def check(secret_url: str, timeout: float = 3.0) -> Readiness:
    """Run readiness and prove that no part of the endpoint is in what it says."""
    readiness = check_readiness(resolve(), timeout=timeout)
    dumped = readiness.model_dump_json()
    hostport = secret_url.split("//", 1)[1].split("/", 1)[0]
    assert hostport not in dumped and secret_url not in dumped
    return readiness
