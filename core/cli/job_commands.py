"""The commands of suites: `tasks` (list and check tasks), `job` (run or resume one) and
`jobs` (list them). Bad input is one line and exit 2, and never touches a job's files."""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import sys
from pathlib import Path

from pydantic import BaseModel

from core.cli.common import emit_json, runs_root
from core.errors import UsageError
from core.jobs.cluster import Cluster, ClusterBlocked, ClusterRunner, connect, disconnect
from core.jobs.cluster_gateway import precheck_gateway
from core.jobs.cluster_worker import TOKEN_FILE_VAR
from core.jobs.model import Job, JobConfig, JobSummary, JobTask, Trial
from core.jobs.runner import (
    JOB_NAME,
    JobLock,
    JobRunner,
    launcher_choice,
    new_job,
    reconcile,
    write_job,
)
from core.jobs.summary import JobError, class_counts, find_job, list_jobs, read_job
from core.run.readiness import check_readiness
from core.run.task import list_tasks, load_task, tasks_dir
from core.sandbox.limits import settings_from as limits_from
from core.settings import DEFAULT_PROFILE, PROFILES, resolve
from core.term import visible

DEFAULT_TIMEOUT_S = 1800.0


class JobResult(BaseModel):
    """What `job --json` prints: where the job is, how it ended, and its summary."""

    job_id: str
    job_dir: str
    state: str
    exit_code: int
    summary: JobSummary
    skipped_tasks: list[str]
    reasons: list[str]


def cmd_tasks(args: argparse.Namespace) -> int:
    root = tasks_dir(args.tasks)
    rows = list_tasks(root)
    if args.json:
        emit_json([r.model_dump(mode="json") for r in rows])
    else:
        if not rows:
            print(visible(f"no task folders in {root}"))
        for r in rows:
            line = f"ok   {r.id:<28} {r.title}" if r.ok else f"BAD  {r.id:<28} {r.problem}"
            print(visible(line.rstrip()))
    return 0 if all(r.ok for r in rows) else 1


def _check_numbers(args: argparse.Namespace) -> None:
    for flag, value in (("--attempts", args.attempts), ("--concurrency", args.concurrency)):
        if value is not None and value < 1:
            raise UsageError(f"{flag} must be 1 or more (got {value})")
    if args.timeout is not None and not (args.timeout > 0 and math.isfinite(args.timeout)):
        raise UsageError("--timeout must be a positive number of seconds")
    if args.name is not None and not JOB_NAME.fullmatch(args.name):
        raise UsageError(f"--name {args.name!r}: use 1-64 letters, digits, '.', '_' or '-'")


def _plan(args: argparse.Namespace) -> tuple[JobConfig, list[str]]:
    """The job's config from the arguments; a task named with --task that cannot run is a
    usage error, a broken folder in a folder of tasks is skipped with its line."""
    skipped: list[str] = []
    folder = tasks_dir(args.tasks)
    if args.task:
        tasks = [load_task(ref, args.tasks) for ref in args.task]
    else:
        rows = list_tasks(folder)
        skipped = [r.problem or r.id for r in rows if not r.ok]
        tasks = [load_task(str(Path(r.folder).resolve())) for r in rows if r.ok]
    if not tasks:
        raise UsageError(f"no task to run in {folder}" + (f": {skipped[0]}" if skipped else ""))
    seen: set[str] = set()
    for task in tasks:
        if task.id in seen:
            raise UsageError(f"--task {task.id} is named twice; use --attempts for repeats")
        seen.add(task.id)
    config = JobConfig(
        name=args.name or "job",
        tasks=[JobTask(id=t.id, folder=str(t.folder.resolve())) for t in tasks],
        attempts=args.attempts or 1, concurrency=args.concurrency or 1,
        timeout_s=args.timeout or DEFAULT_TIMEOUT_S, demo=args.demo, profile=args.profile,
        tasks_dir=str(folder.resolve()) if args.tasks or not tasks[0].bundled else None,
        cluster=args.cluster, gateway=args.gateway)
    return config, skipped


def _ready(config: JobConfig) -> bool:
    """Readiness once per job (each trial still proves its own, as any run does). A cluster
    job's trials prove theirs on their nodes: this machine need not reach the endpoint."""
    if config.demo or config.cluster:
        return True
    readiness = check_readiness(resolve(config.profile))
    if not readiness.ready:
        print("cto-harness: the job is blocked: not ready (no trial started)", file=sys.stderr)
        for c in readiness.checks:
            if c.state not in ("ok", "skipped"):
                print(visible(f"  - {c.name}: {c.detail}"), file=sys.stderr)
    return readiness.ready


def _progress(job: Job, trial: Trial) -> None:
    s = job.summary
    print(visible(f"[{s.done}/{s.trials}] {trial.task} #{trial.attempt} {trial.status}"
                  + (f"  {trial.run_id}" if trial.run_id else "")
                  + (f"  ({trial.problem})" if trial.problem else "")),
          file=sys.stderr, flush=True)


def _open(args: argparse.Namespace, root: Path) -> tuple[Path, Job, JobLock]:
    """The job to run: a new one, or the one --resume names (reconciled with its runs)."""
    if args.resume is None:
        config, skipped = _plan(args)
        if not _ready(config):
            raise _Blocked
        job_dir, job = new_job(root, config, skipped)
        for line in skipped:
            print(visible(f"cto-harness: skipped: {line}"), file=sys.stderr)
        return job_dir, job, JobLock(job_dir)
    given = [flag for flag, value in (("--task", args.task), ("--tasks", args.tasks),
                                      ("--attempts", args.attempts), ("--name", args.name),
                                      ("--demo", args.demo)) if value]
    if given:
        raise UsageError(f"--resume runs the job as it was configured; drop {', '.join(given)}")
    job_dir = find_job(root, args.resume)
    job = read_job(job_dir)
    lock = JobLock(job_dir)
    try:
        reconcile(job, root)
        updates = {k: v for k, v in (("concurrency", args.concurrency),
                                     ("timeout_s", args.timeout), ("cluster", args.cluster),
                                     ("gateway", args.gateway)) if v is not None}
        job.config = job.config.model_copy(update=updates)
        if not _ready(job.config):
            raise _Blocked
    except BaseException:
        lock.release()
        raise
    return job_dir, job, lock


def _connect(value: str, gateway: str | None, demo: bool, profile: str) -> Cluster:
    """The gateway and then the cluster, asked before any job folder is made (or, on a
    resume, before any trial runs): a gateway that refuses the job, a cluster unreachable,
    without auth or without a worker is one line and exit 3."""
    if not gateway and not demo:
        raise UsageError("--cluster needs --gateway URL (the gateway on the endpoint's host, "
                         "README \"Beyond one machine\"), or --demo")
    if gateway and not demo and not os.environ.get(TOKEN_FILE_VAR):
        raise UsageError(f"--gateway: set {TOKEN_FILE_VAR} to the job's token file (`cto-"
                         "harness gateway token --job NAME`), copied 0600 to the same path "
                         "on every worker node")
    if gateway and not demo:
        precheck_gateway(gateway, profile)
    return connect(value, os.environ)


def _gateway(config: JobConfig) -> dict[str, str]:
    """What a worker's run needs to reach the gateway: its URL and fingerprint and the path
    of the token file (never the token: it stays in the file on each node)."""
    if not config.gateway:
        return {}
    token_file = os.environ.get(TOKEN_FILE_VAR, "")
    return {"CTO_HARNESS_GATEWAY_URL": config.gateway,
            "CTO_HARNESS_GATEWAY_FINGERPRINT":
                os.environ.get("CTO_HARNESS_GATEWAY_FINGERPRINT", ""),
            TOKEN_FILE_VAR: str(Path(token_file).absolute()) if token_file else ""}


class _Blocked(Exception):
    """Readiness failed: no trial started."""


def cmd_job(args: argparse.Namespace) -> int:
    root = runs_root(args)
    if args.job_ref is not None:
        if not args.export:
            raise UsageError(f"JOB {args.job_ref}: name a job only to export it "
                             "(--export atif DIR); --resume JOB runs it again")
        return _export(args, root, find_job_or_usage(root, args.job_ref))
    _check_numbers(args)
    limits_from(os.environ)  # a limit that is not a size: exit 2 before any trial or folder
    try:
        launcher_choice()  # the same for a launcher that is none
    except JobError as exc:
        raise UsageError(str(exc)) from None
    real_stdout = sys.stdout
    try:
        return _job(args, root)
    finally:
        sys.stdout = real_stdout


def _job(args: argparse.Namespace, root: Path) -> int:
    """`job` once its arguments are checked. While a cluster is connected, this process's
    stdout is its stderr: Ray's driver prints the cluster's own error messages (a node that
    died, ...) to stdout, which is `--json`'s alone."""
    real_stdout = sys.stdout
    cluster = None
    if args.cluster is not None:
        sys.stdout = sys.stderr
    try:
        if args.cluster is not None and args.resume is None:
            cluster = _connect(args.cluster, args.gateway, args.demo, args.profile)
        job_dir, job, lock = _open(args, root)
    except _Blocked:
        return 3
    except ClusterBlocked as exc:
        print(visible(f"cto-harness: the job is blocked: {exc}"), file=sys.stderr)
        return 3
    except JobError as exc:
        raise UsageError(str(exc)) from None
    try:
        progress = None if args.json else _progress
        if job.config.cluster:
            sys.stdout = sys.stderr
            if cluster is None:
                cluster = _connect(job.config.cluster, job.config.gateway, job.config.demo,
                                   job.config.profile)
            runner: JobRunner = ClusterRunner(
                job_dir, job, root, cluster, gateway=_gateway(job.config),
                retry_errors=args.retry_errors, progress=progress)
        else:
            runner = JobRunner(job_dir, job, root, retry_errors=args.retry_errors,
                               progress=progress)
        code = asyncio.run(runner.run())
    except ClusterBlocked as exc:
        print(visible(f"cto-harness: the job is blocked: {exc}"), file=sys.stderr)
        return 3
    except KeyboardInterrupt:  # before its handlers were in place: still resumable
        job.state = "cancelled"
        write_job(job_dir, job)
        code = 130
    finally:
        lock.release()
        if cluster is not None:
            disconnect()
        sys.stdout = real_stdout
    if args.json:
        emit_json(JobResult(job_id=job.job_id, job_dir=str(job_dir), state=job.state,
                            exit_code=code, summary=job.summary,
                            skipped_tasks=job.skipped_tasks, reasons=job.reasons))
    else:
        print(render_summary(job, job_dir))
    if args.export:
        _export(args, root, job_dir)
    return code


def find_job_or_usage(root: Path, ref: str) -> Path:
    try:
        return find_job(root, ref)
    except JobError as exc:
        raise UsageError(str(exc)) from None


def _export(args: argparse.Namespace, root: Path, job_dir: Path) -> int:
    """`--export FORMAT DIR`: every trial's trajectory (core/cli/transcript.py)."""
    from core.cli.transcript import export_job

    fmt, out = args.export
    try:
        return export_job(job_dir, root, fmt, Path(out))
    except JobError as exc:
        raise UsageError(str(exc)) from None


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def render_summary(job: Job, job_dir: Path) -> str:
    s = job.summary
    lines = [f"job {job.job_id}: {job.state}  ({job_dir})",
             f"{'task':<28} {'runs':>4} {'pass':>4} {'pass@1':>6} {'pass@' + str(s.k):>6}  "
             f"{'baseline':<18} {'tokens':>7} {'time':>7}"]
    for t in s.tasks:
        tokens = "?" if t.tokens is None else str(t.tokens)
        lines.append(f"{t.task:<28} {t.scored:>4} {t.passes:>4} {_pct(t.pass_at_1):>6} "
                     f"{_pct(t.pass_at_k):>6}  {t.baseline:<18} {tokens:>7} {t.time_s:>6.1f}s")
    tokens = "?" if s.tokens is None else str(s.tokens)
    lines.append(f"{'all':<28} {s.scored:>4} {s.passes:>4} {_pct(s.pass_at_1):>6} "
                 f"{_pct(s.pass_at_k):>6}  {s.discriminating_tasks}/{len(s.tasks)} discrim.  "
                 f"{tokens:>7} {s.time_s:>6.1f}s")
    lines.append(f"trials {s.trials}: done {s.done}, blocked {s.blocked}, errors {s.errors}, "
                 f"cancelled {s.cancelled}, interrupted {s.interrupted}, unproven "
                 f"{s.unproven}, tripped {s.tripped}, leaked {s.leaked}")
    if s.failure_classes:
        lines.append(f"not passed, whose fault: {class_counts(s.failure_classes)}  "
                     "(pass@k counts passes and agent failures only)")
    if s.nodes:
        lines.append("trials per node: " + ", ".join(f"{n} {c}" for n, c in
                                                      sorted(s.nodes.items())))
    lines += [f"  {r}" for r in job.reasons]
    return visible("\n".join(lines))


def cmd_jobs(args: argparse.Namespace) -> int:
    try:
        rows = list_jobs(runs_root(args))
    except JobError as exc:
        raise UsageError(str(exc)) from None
    if args.json:
        emit_json([r.model_dump(mode="json") for r in rows])
        return 0
    if not rows:
        print("no jobs yet (cto-harness job --demo starts one)")
    for r in rows:
        rate = "" if r.pass_at_1 is None else f" pass@1 {r.pass_at_1:.0%}"
        print(visible(f"{r.job_id:<44} {r.state:<11} {r.done}/{r.trials} done, "
                      f"{r.passes} passed{rate}" + (" demo" if r.demo else "")
                      + (f"  ({r.problem})" if r.problem else "")
                      + (f"  not passed: {classes}"
                         if (classes := class_counts(r.failure_classes)) else "")))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    tasks = sub.add_parser("tasks", help="list the tasks and check each can run")
    tasks.add_argument("--tasks", metavar="DIR",
                       help="a folder of task folders (default: CTO_HARNESS_TASKS_DIR, else "
                            "the bundled tasks)")
    tasks.add_argument("--json", action="store_true")
    tasks.set_defaults(func=cmd_tasks)

    job = sub.add_parser("job", help="run a Case on a suite of tasks, several attempts each")
    job.add_argument("--tasks", metavar="DIR", help="a folder of task folders (default: "
                     "CTO_HARNESS_TASKS_DIR, else the bundled tasks)")
    job.add_argument("--task", action="append", metavar="ID",
                     help="a task id or task folder (repeatable; default: every task)")
    job.add_argument("--attempts", type=int, metavar="K", help="attempts per task (default 1)")
    job.add_argument("--concurrency", type=int, metavar="N",
                     help="trials at once, so Cases the endpoint sees at once (default 1)")
    job.add_argument("--timeout", type=float, metavar="SECONDS",
                     help=f"per trial (default {DEFAULT_TIMEOUT_S:g})")
    job.add_argument("--profile", default=DEFAULT_PROFILE, choices=sorted(PROFILES))
    job.add_argument("--name", help="the job folder's name after its stamp (default: job)")
    job.add_argument("--demo", action="store_true",
                     help="every trial against the embedded demo endpoint")
    job.add_argument("--resume", metavar="JOB",
                     help="run a job's trials that have no report or were cut short")
    job.add_argument("--retry-errors", action="store_true",
                     help="with --resume: run trials that failed for the infrastructure's "
                     "fault (sandbox, endpoint, harness; blocked or errored) again too")
    job.add_argument("--cluster", metavar="ray://HOST:PORT|HOST:PORT|auto",
                     help="run the trials on a Ray cluster's worker nodes (the cluster "
                     "extra; RAY_AUTH_MODE=token; workers offer the cto_worker resource)")
    job.add_argument("--gateway", metavar="URL",
                     help="with --cluster: the `cto-harness gateway` the trials' relays "
                     "forward to (token: CTO_HARNESS_GATEWAY_TOKEN_FILE)")
    job.add_argument("--runs-root", metavar="DIR")
    job.add_argument("--json", action="store_true", help="the summary as JSON on stdout")
    job.add_argument("job_ref", nargs="?", metavar="JOB",
                     help="an existing job (id or folder) to export with --export, "
                          "without running anything")
    job.add_argument("--export", nargs=2, metavar=("FORMAT", "DIR"),
                     help="write each trial's trajectory (atif or json) under DIR: after "
                          "the job ran, or of JOB")
    job.set_defaults(func=cmd_job)

    jobs = sub.add_parser("jobs", help="every job under the runs root")
    jobs.add_argument("--runs-root", metavar="DIR")
    jobs.add_argument("--json", action="store_true")
    jobs.set_defaults(func=cmd_jobs)
