"""Pydantic models of the run directory: the contract between harness, dashboard and tools.

Every JSON file the harness writes is one of these models, validated where it is read back,
and `cto-harness schema` exports their JSON Schema for other tools.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

RunStatus = Literal["passed", "failed", "blocked", "error", "cancelled", "timed_out"]
FailureClass = Literal["agent", "limit", "infrastructure", "verifier", "policy"]
"""Whose fault a run that did not pass was (core/run/outcome.py decides it): `agent` (its
answer failed the checks, it exited non-zero, it timed out), `limit` (it hit its memory,
process or disk limit), `infrastructure` (the sandbox, the endpoint, the harness, or a run
stopped before its verdict), `verifier` (the checks or the baseline could not judge it),
`policy` (the guard tripped, a leak, a request the relay refused). Only `agent` failures
count against pass@k; only `infrastructure` is retried."""
FAILURE_CLASSES: tuple[FailureClass, ...] = ("agent", "limit", "infrastructure", "verifier",
                                             "policy")
AdmissionStatus = Literal[
    "admitted", "not_admitted", "pending", "revoked", "expired", "missing_file", "invalid_file"
]
GuardState = Literal["armed", "clear", "tripped", "unproven"]
Engine = Literal["case", "fake"]
CaseNetwork = Literal["isolated", "host"]
BaselineStatus = Literal["passed", "failed", "error", "skipped", "timed_out", "cancelled"]
LeakPlace = Literal["content", "name", "link_target"]

EVENTS: tuple[str, ...] = (
    "run_started",
    "config_resolved",
    "readiness_checked",
    "admission_checked",
    "run_blocked",
    "relay_started",
    "case_process_started",
    "case_process_exited",
    "checks_completed",
    "baseline_started",
    "baseline_completed",
    "guard_verdict",
    "report_written",
    "run_finished",
)
"""Trace events in lifecycle order; `guard_tripped` and `leak_detected` may come in between,
and `baseline_started` before `checks_completed` (the baseline runs beside the checks)."""

EXIT_CODES: dict[str, int] = {
    "passed": 0,
    "failed": 1,
    "timed_out": 1,
    "blocked": 3,
    "error": 4,
    "cancelled": 130,
}
EXIT_USAGE = 2

GENESIS_HASH = "0" * 64


class Strict(BaseModel):
    """The base of every model a run's files are read into: a field nobody declared is an
    error, never silently kept."""

    model_config = ConfigDict(extra="forbid")


class Manifest(Strict):
    """Written once at start: what this run is."""

    run_id: str
    task: str
    engine: Engine
    profile: str
    provider: str
    model: str
    harness_version: str
    started_at: str
    harness_pid: int
    harness_start_ticks: int | None = None
    """The harness process's start time (/proc stat ticks): a live pid with another start
    time is a reused pid, so the run was interrupted."""
    retry_of: str | None = None
    demo: bool = False
    argv: list[str] = Field(default_factory=list)
    """The harness's own argv (never holds a secret: secrets come only from env or files)."""
    case_bin_name: str | None = None
    """The Case binary's file name (`aider`, `codex`, …), to tell agents apart; None for the
    fake engine."""
    task_folder: str | None = None
    """The task's folder when it is not a bundled task (`--tasks DIR`, a path to `--task`)."""
    job_id: str | None = None
    """The job this run is a trial of (`<runs_root>/jobs/<job_id>/job.json`), if any."""
    attempt: int | None = None
    """Which attempt of its task this trial is (1-based), when it belongs to a job."""
    node: str | None = None
    """The cluster node that ran this trial (`job --cluster`: `<node ip>/<ray node id>`);
    None for a run on the job's own machine."""


class TraceEvent(BaseModel):
    """One line of trace.jsonl; `prev` chains each line to the SHA-256 of the line before."""

    model_config = ConfigDict(extra="allow")

    seq: int
    ts: str
    event: str
    prev: str = GENESIS_HASH


class ReadinessCheck(Strict):
    name: str
    state: Literal["ok", "missing", "invalid", "blocked", "error", "skipped"]
    detail: str
    latency_ms: float | None = None


class Readiness(Strict):
    """backend/readiness.json: each check with a state and a detail, no secret values."""

    ready: bool
    checked_at: str
    checks: list[ReadinessCheck]
    admission_status: AdmissionStatus
    provider: str
    model: str


class RelayRecord(Strict):
    """One line of backend/relay.jsonl: a request the Case made through the relay."""

    ts: str
    method: str
    path: str
    model_asked: str | None
    model_answered: str | None
    status: int
    latency_ms: float
    stream: bool = False
    refused: str | None = None
    """Why the relay refused it (wrong model, bad token, a field it does not forward), or
    None when forwarded."""
    foreign: bool = False
    """It did not carry the run's token: not the Case's request but another local
    process's (the relay's TCP door, open only when the sandbox is off). Fails the run."""
    error: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


class GatewayUse(Strict):
    """A run whose relay forwarded to a gateway instead of the endpoint: which one (its
    address and pinned fingerprint, not secrets; never the token) and the trial identity
    it sent with each request."""

    url: str
    fingerprint: str | None = None
    """sha256 of the gateway's DER certificate the relay pinned; None over plain http."""
    plain_http: bool = False
    """CTO_HARNESS_GATEWAY_PLAIN_HTTP=allow: the explicit opt-out from TLS."""
    job: str | None = None
    run: str


class Evidence(Strict):
    """A pointer to where a fact can be seen: a file of the run and a line or field."""

    file: str
    line: int | None = None
    field: str | None = None
    detail: str = ""


class CaseSetup(Strict):
    """What the user handed the Case beyond the task (core/run/caseconf.py)."""

    bin_name: str | None = None
    stdin: Literal["none", "task"] = "none"
    env: dict[str, str | None] = Field(default_factory=dict)
    """CTO_HARNESS_CASE_ENV's names; each value too, unless the name says it is a
    credential (`*_KEY`, `*TOKEN*`, …): then null."""
    home_template: str | None = None
    """The folder copied into the Case's private HOME (CTO_HARNESS_CASE_HOME_TEMPLATE)."""


class RelayTotals(Strict):
    requests: int = 0
    forwarded: int = 0
    refused: int = 0
    errors: int = 0
    upstream_failures: int = 0
    """Forwarded requests the upstream did not answer (unreachable, or a 5xx): the
    endpoint's failure, not the Case's."""
    models_seen: list[str] = Field(default_factory=list)
    """The models the upstream said answered; a model only asked for is not one."""
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    """Sums over the records that reported a count; None when none did (an unknown count
    is never 0). A sum over some records only is a lower bound: `usage_unknown` says how
    many answered requests reported no usage."""
    usage_unknown: int = 0

    @classmethod
    def of(cls, records: list[RelayRecord]) -> RelayTotals:
        answered = [r for r in records if not r.refused and 200 <= r.status < 300
                    and r.method == "POST"]
        return cls(
            requests=len(records),
            forwarded=sum(1 for r in records if not r.refused),
            refused=sum(1 for r in records if r.refused),
            errors=sum(1 for r in records if r.error or r.status >= 400),
            upstream_failures=sum(1 for r in records if not r.refused and r.status >= 500),
            models_seen=sorted({r.model_answered for r in records if r.model_answered}),
            prompt_tokens=_known_sum(r.prompt_tokens for r in records),
            completion_tokens=_known_sum(r.completion_tokens for r in records),
            usage_unknown=sum(1 for r in answered if r.completion_tokens is None),
        )


def _known_sum(counts: Iterable[int | None]) -> int | None:
    known = [n for n in counts if n is not None]
    return sum(known) if known else None


class CheckCounts(Strict):
    passed: int = 0
    failed: int = 0
    errors: int = 0
    total: int = 0
    ran: bool = False
    detail: str = ""

    @property
    def all_passed(self) -> bool:
        """The checks ran, there were some, and every one passed: the one meaning of "the
        checks passed" (the verdict, the baseline, the comparison and the dashboard use it).
        A property, not a field: the report's JSON is unchanged."""
        return self.ran and self.total > 0 and self.passed == self.total


class BaselineOutcome(Strict):
    status: BaselineStatus
    exit_code: int | None = None
    checks: CheckCounts = Field(default_factory=CheckCounts)


class Comparison(Strict):
    """The same-run comparison a pass claim needs: real passed and fake failed."""

    real_passed: bool
    fake_passed: bool | None
    discriminating: bool
    detail: str


class RedactionCounters(Strict):
    forms: int = 0
    """How many recognisable forms of the registered secrets are masked."""
    unmaskable_forms: list[str] = Field(default_factory=list)
    """Forms too short to mask safely on their own (names only, never values)."""
    log_redactions: int = 0
    other_redactions: int = 0


class LeakFinding(Strict):
    file: str
    """The path, itself redacted: a name can hold the secret too."""
    line: int
    """1-based in the file's bytes; 0 when the form is in a name or a link's target."""
    secret: str
    """The secret's name (e.g. `endpoint`), never its value."""
    form: str
    where: LeakPlace = "content"
    """What holds the form: the file's bytes, the entry's own name, or a link's target text."""


class CaseSandbox(Strict):
    """How the Case (and its checks and the fake baseline) was isolated, or why not."""

    mode: Literal["bwrap", "off"]
    """`bwrap`: the bubblewrap sandbox; `off`: CTO_HARNESS_CASE_SANDBOX=off, no sandbox
    (never evidence for a model)."""
    ready: bool = False
    """Whether the sandbox was set up (False: the run was blocked, `detail` says why)."""
    bwrap_version: str | None = None
    namespaces: list[str] = Field(default_factory=list)
    host_uid: int | None = None
    """The host uid the sandboxed processes ran as."""
    ro_paths: list[str] = Field(default_factory=list)
    """What the Case saw read-only besides the system folders (`dest <- source` when
    bound elsewhere)."""
    rw_paths: list[str] = Field(default_factory=list)
    masked: list[str] = Field(default_factory=list)
    """Private places inside a bound folder, covered in the sandbox."""
    extra_ro: list[str] = Field(default_factory=list)
    """From CTO_HARNESS_CASE_SANDBOX_RO."""
    extra_rw: list[str] = Field(default_factory=list)
    """From CTO_HARNESS_CASE_SANDBOX_RW."""
    network: Literal["relay-only", "none", "host"] = "host"
    """The Case's: only the relay, nothing, or the host's (sandbox off). The checks and
    the baseline never have any network in the sandbox."""
    limits: dict[str, int] = Field(default_factory=dict)
    """The limits in force for the Case, its checks and the baseline: `nproc`
    (RLIMIT_NPROC), `memory_bytes`, `pids`, `disk_bytes` (workspace + home, watched;
    RLIMIT_FSIZE), `tmp_bytes` (the sandbox's /tmp tmpfs)."""
    limits_mode: Literal["cgroup-v1", "cgroup-v2", "off"] | None = None
    """How memory and processes were bounded: a cgroup per run (v1 or v2), or `off`
    (CTO_HARNESS_CASE_LIMITS=off, never evidence for a model). None: a report from before
    limits, or a run blocked before they were set up."""
    limits_detail: str = ""
    limits_hit: list[str] = Field(default_factory=list)
    """Each limit a process of the run reached, named (`memory: ...`, `pids: ...`,
    `disk: ...`)."""
    detail: str = ""
    seccomp: Literal["on", "off"] | None = None
    """`on`: every sandboxed command ran under the seccomp filter (`seccomp_filtered` says
    what it refuses); `off`: CTO_HARNESS_CASE_SECCOMP=off (never evidence for a model);
    None: a run from before the filter, or no sandbox."""
    seccomp_filtered: list[str] = Field(default_factory=list)


class Signing(Strict):
    """Whether the run is signed (`attestation.intoto.jsonl`, README "Signed evidence"), and
    with which key, or the recorded opt-out."""

    mode: Literal["on", "off"]
    """`on`: signed with the Ed25519 key outside the runs root; `off`:
    CTO_HARNESS_SIGNING=off, unsigned (never real-model evidence)."""
    keyid: str | None = None
    """The key's id as securesystemslib computes it (SHA-256 of its canonical JSON)."""
    detail: str = ""


class Durations(Strict):
    total_s: float = 0.0
    """Wall time from the run's start to just before report.json is written: every stage,
    the leak scan and the artifact hashes included."""
    preflight_s: float = 0.0
    case_s: float | None = None
    checks_s: float | None = None
    baseline_s: float | None = None
    scan_s: float | None = None
    """The end-of-run leak scan and the artifact hashes."""


class UnscannedEntry(Strict):
    """A file (or folder) the leak scan did not read, and why: a form of the secret may be
    in it, so a run with one cannot pass."""

    file: str
    """Relative to the run, redacted."""
    reason: str


class SparseFile(Strict):
    """A file with holes: only its data was read (holes hold zeros, no form holds one)."""

    file: str
    size: int
    data_bytes: int
    """What was read: the blocks holding data."""


class ScanSummary(Strict):
    """What the end-of-run leak scan covered, within its budget (README, "Secret safety")."""

    complete: bool = True
    """Every entry of the run directory was looked at and every regular file read."""
    entries: int = 0
    files_read: int = 0
    bytes_read: int = 0
    seconds: float = 0.0
    budget_s: float | None = None
    budget_bytes: int | None = None
    unscanned_count: int = 0
    unscanned: list[UnscannedEntry] = Field(default_factory=list)
    """The first of them (up to 200); `unscanned_count` counts all."""
    sparse_count: int = 0
    sparse: list[SparseFile] = Field(default_factory=list)


class Report(Strict):
    """report.json, written once at the end, atomically: the run's verdict and its proof."""

    run_id: str
    status: RunStatus
    exit_code: int
    stage: int
    """The last stage reached: 1 preflight, 2 the Case's run on the task."""
    stage2_passed: bool
    failure_class: FailureClass | None = None
    """Whose fault it was, on every run that did not pass (None when it passed, and in
    reports from before the field)."""
    reasons: list[str] = Field(default_factory=list)
    task: str
    engine: Engine
    demo: bool = False
    retry_of: str | None = None
    case_model_provider: str
    case_model: str
    case_model_admission_status: AdmissionStatus
    endpoint_configured: bool
    case_process_started: bool
    case_exit_code: int | None = None
    case_network: CaseNetwork = "host"
    """`isolated`: the Case ran in its own network namespace where only the relay answers."""
    case_network_detail: str = "not recorded (a report from before network isolation)"
    """Why `host` (the opt-out, or why isolation was unavailable), or how it was isolated."""
    case_sandbox: CaseSandbox | None = None
    """None only in reports from before the sandbox."""
    signing: Signing | None = None
    """None only in reports from before signed evidence."""
    gateway: GatewayUse | None = Field(default=None, exclude_if=lambda value: value is None)
    """Set when the run's relay forwarded to a `cto-harness gateway` (CTO_HARNESS_GATEWAY_URL)
    instead of the endpoint; absent otherwise, so a run without one writes the same bytes as
    before the field (its report digest, the trace's last hash, unchanged)."""
    fallback_detected: bool
    fallback_evidence: list[Evidence] = Field(default_factory=list)
    fallback_warnings: list[Evidence] = Field(default_factory=list)
    """Fallback markers in the Case's output while its network was isolated: no hosted
    request could have been made, so they are recorded, not a trip (help text names
    hosted models)."""
    guard_state: GuardState
    case_setup: CaseSetup | None = None
    relay: RelayTotals = Field(default_factory=RelayTotals)
    checks: CheckCounts = Field(default_factory=CheckCounts)
    baseline: BaselineOutcome
    comparison: Comparison | None = None
    redaction: RedactionCounters = Field(default_factory=RedactionCounters)
    leak_detected: bool = False
    leaks: list[LeakFinding] = Field(default_factory=list)
    scan: ScanSummary = Field(default_factory=ScanSummary)
    xattrs_stripped: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Extended attributes found on what the Case (or its checks) left and "
                    "stripped when it came back, by path in the run: their names only, "
                    "values never read (core/evidence/defuse.py says why).")
    durations: Durations = Field(default_factory=Durations)
    started_at: str
    finished_at: str
    artifacts: dict[str, str] = Field(default_factory=dict)
    """SHA-256 of every file of the run but report.json and trace.jsonl, by relative path."""
    trace_head: dict[str, Any] = Field(default_factory=dict)
    """`seq` and `hash` of the last trace line before the report: the chain it vouches for."""
