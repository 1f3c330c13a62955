"""`validate RUN --gateway-ledger FILE`: the run's relay ledger and the gateway's ledger must
agree request by request.

Why: across machines, the run's own ledger is written on a worker the gateway's host does
not control, and the gateway's on a host the run cannot reach. Each request the relay
forwarded must appear once in the gateway's ledger under the run's id (X-Cto-Run), with the
same method, route and model, and an outcome that follows from the gateway's (its status
passed through, or its token refusal as the relay's `gateway:` error); and the gateway must
have no request of the run's that the relay did not send. Either side alone could be
edited; the two agreeing is the proof across machines.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import ValidationError

from core.evidence.criteria import Criterion
from core.evidence.models import Evidence, RelayRecord, Report, Strict
from core.evidence.rundir import NotRegularFile, RunPaths, open_regular
from core.evidence.runs import Unreadable, load_report

CRITERION = "gateway_ledger_agrees"
ACCEPTANCE = ("Each request the run's relay forwarded appears once in the gateway's ledger "
              "with the same route, model and outcome, and the gateway has none the relay "
              "did not send.")
MAX_SHOWN = 5


class GatewayRecord(Strict):
    """One line of a gateway's ledger (`cto-harness gateway serve`'s state dir): a request a
    run's relay sent it, refusals included. `job` is the job its token was issued for (the
    gateway's own knowledge); `run` and `sent_job` are what the relay said (X-Cto-Run,
    X-Cto-Job). Never the endpoint, never the token."""

    ts: str
    job: str | None
    run: str | None = None
    sent_job: str | None = None
    method: str
    path: str
    model: str | None = None
    """The model the request asked for."""
    model_answered: str | None = None
    status: int
    bytes: int = 0
    """Answer bytes passed back to the relay."""
    latency_ms: float
    stream: bool = False
    refused: str | None = None
    error: str | None = None
    transport: Literal["tls", "plain-http"] = "tls"
    """`plain-http`: the gateway was served with --insecure-plain-http (the opt-out)."""



def _read_lines(path: Path, what: str, needle: str | None
                ) -> tuple[list[tuple[int, str]], str | None]:
    try:
        fh = open_regular(path)
    except FileNotFoundError:
        return [], f"{what} {path} does not exist"
    except (NotRegularFile, OSError) as exc:
        return [], f"{what} {path} cannot be read ({getattr(exc, 'strerror', exc)})"
    with fh:
        text = fh.read().decode("utf-8", "replace")
    lines = [(n, line) for n, line in enumerate(text.splitlines(), 1)
             if line.strip() and (needle is None or needle in line)]
    return lines, None


def _forwarded(record: RelayRecord) -> bool:
    """Whether the request reached the gateway: the relay did not refuse it and the
    connection was made (an unreachable gateway has no line of it)."""
    return record.refused is None and not (record.error or "").startswith(
        ("upstream unreachable", "upstream timed out ("))


def _agrees(relay: RelayRecord, gateway: GatewayRecord) -> bool:
    if (relay.error or "").startswith("gateway:"):
        return gateway.status in (401, 403) and gateway.refused is not None
    if gateway.status >= 500 or relay.status >= 500:
        return relay.status >= 500 and gateway.status >= 500
    return relay.status == gateway.status and relay.model_answered == gateway.model_answered


def check_gateway_ledger(run_dir: Path, ledger: Path) -> Criterion:
    """The criterion: ok when both ledgers agree request by request, each problem named
    with its file and line."""
    paths = RunPaths(run_dir)
    report: Report | None
    try:
        report = load_report(paths.root)
    except Unreadable:
        report = None
    run_id = report.run_id if report is not None else paths.run_id
    problems: list[str] = []
    evidence = [Evidence(file="backend/relay.jsonl"), Evidence(file=str(ledger))]
    if report is not None and report.gateway is None:
        problems.append("the report does not say the run went through a gateway "
                        "(report.gateway is null)")
    relay_lines, problem = _read_lines(paths.relay, "the relay ledger", None)
    gateway_lines, gproblem = _read_lines(ledger, "the gateway ledger", f'"{run_id}"')
    problems += [p for p in (problem, gproblem) if p]
    relay: list[tuple[int, RelayRecord]] = []
    for n, line in relay_lines:
        try:
            relay.append((n, RelayRecord.model_validate_json(line)))
        except ValidationError:
            problems.append(f"backend/relay.jsonl line {n} is not a relay record")
    gateway: list[tuple[int, GatewayRecord]] = []
    for n, line in gateway_lines:
        try:
            seen = GatewayRecord.model_validate_json(line)
        except ValidationError:
            problems.append(f"{ledger.name} line {n} is not a gateway record")
            continue
        if seen.run == run_id:
            gateway.append((n, seen))
    unmatched = list(gateway)
    missing: list[str] = []
    for n, record in relay:
        if not _forwarded(record):
            continue
        same = next((g for g in unmatched if g[1].method == record.method
                     and g[1].path == record.path and g[1].model == record.model_asked), None)
        if same is None:
            missing.append(f"backend/relay.jsonl line {n} ({record.method} {record.path}) "
                           "has no request in the gateway's ledger")
            continue
        unmatched.remove(same)
        if not _agrees(record, same[1]):
            missing.append(f"backend/relay.jsonl line {n} says HTTP {record.status}, the "
                           f"gateway's line {same[0]} HTTP {same[1].status}")
    extra = [f"{ledger.name} line {n} ({g.method} {g.path}) was never sent by the run's relay"
             for n, g in unmatched]
    problems += missing[:MAX_SHOWN] + extra[:MAX_SHOWN]
    if len(missing) + len(extra) > 2 * MAX_SHOWN:
        problems.append(f"… {len(missing) + len(extra)} disagreements in all")
    if problems:
        return Criterion(id=CRITERION, acceptance=ACCEPTANCE, verdict="failed",
                         detail="; ".join(problems), evidence=evidence)
    count = sum(1 for _, r in relay if _forwarded(r))
    return Criterion(id=CRITERION, acceptance=ACCEPTANCE, verdict="ok",
                     detail=f"{count} forwarded request(s), each once in the gateway's ledger "
                            f"under run {run_id}, agreeing", evidence=evidence)
