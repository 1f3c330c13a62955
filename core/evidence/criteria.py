"""What `cto-harness validate` answers: each acceptance criterion a run can prove, with its
verdict and evidence, and the whole validation (the CLI prints it, `--json` emits it, the
dashboard and the planning gates read it)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from core.evidence.models import Evidence, FailureClass, Strict

Verdict = Literal["ok", "failed", "not_applicable"]


class Criterion(Strict):
    """One acceptance line of CTO-WORK-030 that a run can prove, and its verdict."""

    id: str
    acceptance: str
    """The seed's acceptance line, word for word."""
    verdict: Verdict
    detail: str
    evidence: list[Evidence] = Field(default_factory=list)


class Validation(Strict):
    """`cto-harness validate`: the criteria and whether all that apply hold."""

    run_id: str
    run_dir: str
    ok: bool
    status: str
    """The run's status from its report, or why there is none (interrupted, unreadable)."""
    failure_class: FailureClass | None = None
    """The report's: whose fault it was that the run did not pass."""
    demo: bool = False
    stage2_pass_evidence: bool
    """A non-demo real-Case run whose Stage 2 passed, with every criterion holding."""
    criteria: list[Criterion]
    problems: list[str] = Field(default_factory=list)
    signature: Literal["verified", "unsigned", "invalid"] | None = None
    """`attestation.intoto.jsonl` against the key: verified, absent (unsigned: never
    real-model evidence), or not matching (a forgery or an edit); None when not looked at."""
    keyid: str | None = None
    """The key the signature was checked against."""
