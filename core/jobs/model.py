"""job.json: a job's config, its trials and their summary (the job folder's contract).

A job is many runs: every trial is an ordinary run directory under the runs root, whose
manifest names `job_id` and `attempt`. job.json only indexes them and sums them up; the run
directories stay the evidence. `cto-harness schema` exports this model's JSON Schema.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from core.evidence.models import FailureClass
from core.settings import DEFAULT_PROFILE

TrialStatus = Literal[
    "pending", "running", "passed", "failed", "blocked", "error", "cancelled", "timed_out",
    "interrupted",
]
JobState = Literal["running", "finished", "cancelled", "interrupted", "blocked"]
Baseline = Literal["discriminating", "not_discriminating", "mixed", "unknown"]

SCORED: tuple[str, ...] = ("passed", "failed", "timed_out")
"""Statuses that were a verdict on the Case, for trials recorded before `failure_class`
(job.json from older harnesses); see `scored`."""
TO_RUN: tuple[str, ...] = ("pending", "running", "interrupted", "cancelled")
"""Trials a resume runs again: never started, or cut short."""
INFRA: tuple[str, ...] = ("error", "blocked")
"""Statuses `--retry-errors` ran again before `failure_class`, for trials without one (a
trial whose `cto-harness run` could not start a run has no report, hence no class)."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")



class JobTask(_Model):
    id: str
    folder: str
    """The task's folder, absolute: a resume runs the same task wherever it came from."""


class JobConfig(_Model):
    name: str
    tasks: list[JobTask]
    attempts: int = Field(ge=1)
    concurrency: int = Field(ge=1)
    timeout_s: float = Field(gt=0)
    demo: bool = False
    profile: str = DEFAULT_PROFILE
    tasks_dir: str | None = None
    """The folder of tasks the job was given (--tasks or CTO_HARNESS_TASKS_DIR), if any."""
    cluster: str | None = None
    """`--cluster`: the Ray cluster the trials run on (`ray://HOST:PORT`, `HOST:PORT` or
    `auto`); None for a job on this machine. A resume goes back to it."""
    gateway: str | None = None
    """`--gateway`: the URL the trials' relays forward to (not a secret: the gateway admits
    only the job's token)."""


class Trial(_Model):
    task: str
    attempt: int = Field(ge=1)
    status: TrialStatus = "pending"
    run_id: str | None = None
    exit_code: int | None = None
    problem: str | None = None
    """Why a trial has no run (its `cto-harness run` failed to start one), in words."""
    previous_runs: list[str] = Field(default_factory=list)
    """Runs of this trial that a resume replaced (interrupted, cancelled, errored)."""
    failure_class: FailureClass | None = None
    """Whose fault it was when it did not pass (its report's `failure_class`)."""
    guard: str | None = None
    leaked: bool = False
    baseline: str | None = None
    tokens: int | None = None
    duration_s: float | None = None
    node: str | None = None
    """The cluster node the trial ran on (`job --cluster`), as its manifest names it."""

    @property
    def key(self) -> tuple[str, int]:
        return self.task, self.attempt


class Counts(_Model):
    """How a set of trials ended, and what pass@1 and pass@k make of it."""

    trials: int = 0
    done: int = 0
    """Trials with a final report that `--resume` keeps (not a cancelled one)."""
    scored: int = 0
    """Trials with a verdict on the Case (passed, failed, timed out): n in pass@k."""
    passes: int = 0
    pass_at_1: float | None = None
    pass_at_k: float | None = None
    k: int = 1
    blocked: int = 0
    errors: int = 0
    cancelled: int = 0
    interrupted: int = 0
    unproven: int = 0
    tripped: int = 0
    leaked: int = 0
    failure_classes: dict[FailureClass, int] = Field(default_factory=dict)
    """Trials that did not pass, by whose fault it was (classes with none left out)."""
    tokens: int | None = 0
    """Prompt plus completion tokens through the relay; None when some run did not know."""
    time_s: float = 0.0
    """Sum of the trials' run durations."""


class TaskSummary(Counts):
    task: str
    baseline: Baseline = "unknown"
    """Whether the fake baseline failed the checks in this task's trials (so a pass means
    something): `discriminating` when it failed in all, `not_discriminating` when it passed
    in all, `mixed` in between, `unknown` when it never ran."""


class JobSummary(Counts):
    tasks: list[TaskSummary] = Field(default_factory=list)
    discriminating_tasks: int = 0
    wall_s: float | None = None
    """From the job's start to its last trial's end (this invocation's)."""
    nodes: dict[str, int] = Field(default_factory=dict)
    """Trials per cluster node (`job --cluster`); empty for a job on one machine."""


class JobHead(BaseModel):
    """What a listing needs of job.json (its summary, not its trials): reading a hundred
    jobs of a hundred trials builds a hundred of these, not ten thousand Trials."""

    model_config = ConfigDict(extra="ignore")

    job_id: str
    created_at: str
    state: JobState = "running"
    harness_pid: int
    harness_start_ticks: int | None = None
    config: JobConfig
    summary: JobSummary = Field(default_factory=JobSummary)


class Job(_Model):
    """job.json, rewritten atomically as each trial starts and ends."""

    job_id: str
    created_at: str
    updated_at: str
    state: JobState = "running"
    harness_pid: int
    harness_start_ticks: int | None = None
    config: JobConfig
    trials: list[Trial]
    summary: JobSummary = Field(default_factory=JobSummary)
    skipped_tasks: list[str] = Field(default_factory=list)
    """Task folders that could not run (a missing prompt, workspace or checks), one line each."""
    reasons: list[str] = Field(default_factory=list)
    """Why the job is blocked, cancelled or interrupted, in words."""


def scored(trial: Trial) -> bool:
    """A sample of pass@k: a pass, or a failure that was the agent's (its answer failed the
    checks, it exited non-zero, it timed out). A limit, the infrastructure, the verifier or
    a policy stop says nothing about what the agent can do, so it is no sample either way."""
    if trial.status == "passed":
        return True
    if trial.failure_class is not None:
        return trial.failure_class == "agent"
    return trial.status in SCORED


def retried(trial: Trial) -> bool:
    """`--retry-errors` runs it again: an `infrastructure` failure only (a rerun may go
    through). Never `agent` (retrying wrong answers would inflate pass@k), `policy` (it
    would try its luck again), `verifier` or `limit` (the same task and limits fail the
    same way)."""
    if trial.failure_class is not None:
        return trial.failure_class == "infrastructure"
    return trial.status in INFRA
