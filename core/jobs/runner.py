"""Running a job: every trial a `cto-harness run` process of its own, at most N at once.

Why child processes rather than Runners in this process: a trial then takes exactly the
path a single run takes (its own relay, sandbox, baseline, redactor and signal handling),
a crash or hang in one trial cannot take the job or its siblings down, and cancelling is
what Ctrl-C on one run already is (SIGINT: the run ends its Case and writes a `cancelled`
report). Each child asks the kernel for SIGTERM when the job's process dies
(PR_SET_PDEATHSIG), so a job killed with SIGKILL still leaves every trial with a
`cancelled` report (or no run at all) for `--resume` to run again.

Each trial is forked from the job's warm launcher (core/jobs/warm.py), a process with the
harness already imported, rather than a fresh interpreter paying Python's start and the
harness's imports every time: the same `cto-harness run` from `main()` on, its own process
all the same. `CTO_HARNESS_JOB_LAUNCHER=cold` starts each trial as a fresh interpreter
(`warm`, the default); a launcher that cannot start, or dies, leaves the job starting them
cold, saying so on stderr.

job.json is rewritten atomically whenever a trial starts, finds its run folder, or ends.
One job process at a time holds a job (an flock on job.lock).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import json
import os
import re
import signal
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from core.evidence.attestation import sign_job
from core.evidence.keys import signing_setup
from core.evidence.liveness import harness_alive, process_start_ticks
from core.evidence.models import EXIT_CODES
from core.evidence.rundir import atomic_write_text, utcnow
from core.evidence.runs import (
    Unreadable,
    list_run_dirs,
    load_manifest,
    load_report,
)
from core.jobs.model import TO_RUN, Job, JobConfig, Trial, retried
from core.jobs.summary import (
    JOB_FILE,
    JobError,
    check_jobs_root,
    jobs_root,
    summarize,
    trial_facts,
)
from core.jobs.warm import LauncherGone, WarmChild, WarmLauncher, die_with_parent

JOB_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
POLL_S = 0.25
LOCK_FILE = "job.lock"
LAUNCHER_VAR = "CTO_HARNESS_JOB_LAUNCHER"
LAUNCHERS = ("warm", "cold")

Progress = Callable[[Job, Trial], None]
Child = asyncio.subprocess.Process | WarmChild


def launcher_choice() -> str:
    """CTO_HARNESS_JOB_LAUNCHER: `warm` (the default) or `cold`; JobError otherwise."""
    choice = os.environ.get(LAUNCHER_VAR, "warm").strip().lower() or "warm"
    if choice not in LAUNCHERS:
        raise JobError(f"{LAUNCHER_VAR} must be 'warm' (the default: trials forked from a "
                       f"process with the harness imported) or 'cold' (a fresh interpreter "
                       f"each), not {choice[:40]!r}")
    return choice


def new_job(runs_root: Path, config: JobConfig, skipped: list[str]) -> tuple[Path, Job]:
    """A fresh job folder `<runs_root>/jobs/<UTCSTAMP>-<name>` with every trial pending:
    first attempts of every task first, so early results cover the whole suite."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    root = jobs_root(runs_root)
    check_jobs_root(runs_root)
    try:
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        n, job_dir = 1, root / f"{stamp}-{config.name}"
        while True:
            try:
                job_dir.mkdir(mode=0o700)
                break
            except FileExistsError:
                n += 1
                job_dir = root / f"{stamp}-{config.name}.{n}"
    except OSError as exc:
        raise JobError(f"runs root {runs_root}: cannot create a job folder there "
                       f"({exc.strerror}); choose another with --runs-root or "
                       "CTO_HARNESS_RUNS_ROOT") from None
    now = utcnow()
    trials = [Trial(task=t.id, attempt=a) for a in range(1, config.attempts + 1)
              for t in config.tasks]
    job = Job(job_id=job_dir.name, created_at=now, updated_at=now, harness_pid=os.getpid(),
              harness_start_ticks=process_start_ticks(os.getpid()), config=config,
              trials=trials, skipped_tasks=skipped)
    job.summary = summarize(job)
    write_job(job_dir, job)
    return job_dir, job


def write_job(job_dir: Path, job: Job) -> str:
    """job.json written atomically; returns its text (what the job's attestation covers)."""
    job.updated_at = utcnow()
    text = job.model_dump_json(indent=2) + "\n"
    atomic_write_text(job_dir / JOB_FILE, text)
    return text


class JobLock:
    """Held while a process runs the job: a second `--resume` of it is refused, not raced.
    An flock is released by the kernel however its holder dies."""

    def __init__(self, job_dir: Path) -> None:
        try:
            self.fd = os.open(job_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC
                              | os.O_NOFOLLOW, 0o600)
        except OSError as exc:
            raise JobError(f"{job_dir}: cannot open {LOCK_FILE} ({exc.strerror})") from None
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self.fd)
            raise JobError(f"job {job_dir.name} is being run by another process; wait for it "
                           "or cancel it") from None

    def release(self) -> None:
        os.close(self.fd)


def needs_run(trial: Trial, retry_errors: bool) -> bool:
    return trial.status in TO_RUN or (retry_errors and retried(trial))


def run_folder_of(runs_root: Path, pid: int) -> Path | None:
    """A child's run folder, named `<stamp>-<task>-<pid>` (`.N` on a collision). Only a
    real folder of ours: in a runs root others may write into, another account could plant
    a link or a folder of its own under a name that would otherwise be taken for it."""
    suffix = f"-{pid}"
    me = os.geteuid()
    try:
        names = [e.name for e in os.scandir(runs_root) if e.is_dir(follow_symlinks=False)
                 and e.stat(follow_symlinks=False).st_uid == me]
    except OSError:
        return None
    mine = [n for n in names if n.endswith(suffix) or f"{suffix}." in n]
    return runs_root / max(mine) if mine else None


def reconcile(job: Job, runs_root: Path) -> None:
    """Bring a job read back from disk up to date with its runs: a trial whose run ended
    after job.json was last written (the job was killed) takes the run's report; a run
    whose harness is gone is interrupted. Runs are found by id, or (when the job died
    before learning it) by the job_id and attempt in their manifests."""
    unknown = {t.key for t in job.trials if t.run_id is None and t.status != "pending"}
    found: dict[tuple[str, int], str] = {}
    if unknown:
        for run_dir in list_run_dirs(runs_root):
            try:
                manifest = load_manifest(run_dir)
            except Unreadable:
                continue
            if manifest is None or manifest.job_id != job.job_id or manifest.attempt is None:
                continue
            key = (manifest.task, manifest.attempt)
            if key in unknown and key not in found:  # newest first
                found[key] = run_dir.name
    for i, trial in enumerate(job.trials):
        run_id = trial.run_id or found.get(trial.key)
        if run_id is None:
            if trial.status == "running":
                job.trials[i] = trial.model_copy(update={"status": "interrupted"})
            continue
        try:
            report = load_report(runs_root / run_id)
            manifest = load_manifest(runs_root / run_id) if report is None else None
        except Unreadable as exc:
            job.trials[i] = trial.model_copy(update={"run_id": run_id, "status": "interrupted",
                                                     "problem": str(exc)})
            continue
        if report is not None:
            job.trials[i] = trial_facts(trial, report)
        elif manifest is not None and harness_alive(manifest):
            raise JobError(f"trial {trial.task} #{trial.attempt} (run {run_id}) is still "
                           f"running (harness pid {manifest.harness_pid}); wait for it or "
                           "cancel it, then resume")
        else:
            job.trials[i] = trial.model_copy(update={"run_id": run_id, "status": "interrupted"})


class JobRunner:
    """Runs a job's trials that need a run, at most `concurrency` at once."""

    def __init__(self, job_dir: Path, job: Job, runs_root: Path, *, retry_errors: bool = False,
                 progress: Progress | None = None) -> None:
        self.job_dir = job_dir
        self.job = job
        self.runs_root = runs_root
        self.retry_errors = retry_errors
        self.progress = progress
        self.cancelled = False
        self.children: dict[int, Child] = {}
        self.started = time.monotonic()
        self.warm = launcher_choice() == "warm"
        self.launcher: WarmLauncher | None = None
        self._launching: asyncio.Future[None] | None = None
        """Started by the first trial (a cluster job, whose trials run elsewhere, never)."""

    def _save(self, sign: bool = False) -> None:
        """job.json; when the job ends (`sign`), its attestation beside it too: signed once,
        not at every write (each signature reads every trial's attestation)."""
        self.job.summary = summarize(self.job, round(time.monotonic() - self.started, 3))
        text = write_job(self.job_dir, self.job)
        if sign:
            self._sign(text)

    def _sign(self, job_text: str) -> None:
        """The job's summary signed as its runs are (README "Signed evidence"); with signing
        off or no usable key nothing is signed, and each trial's report already says why."""
        _record, key, _blocker = signing_setup(os.environ)
        if key is None:
            return
        trials = {t.run_id: self.runs_root / t.run_id for t in self.job.trials if t.run_id}
        try:
            sign_job(self.job_dir, job_text.encode("utf-8"),
                     self.job.summary.model_dump(mode="json"),
                     trials, key)
        except OSError as exc:
            print(f"cto-harness: {self.job_dir}/attestation.intoto.jsonl could not be "
                  f"written ({exc.strerror}): the job is unsigned", file=sys.stderr)

    def cancel(self) -> None:
        """Ctrl-C, SIGTERM: no new trial starts; each one in flight gets SIGINT and writes
        its `cancelled` report, as one run does on Ctrl-C."""
        if self.cancelled:
            return
        self.cancelled = True
        for proc in list(self.children.values()):
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGINT)

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        handled = []
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, self.cancel)
                handled.append(sig)
        job = self.job
        job.state, job.reasons = "running", []
        job.harness_pid = os.getpid()
        job.harness_start_ticks = process_start_ticks(os.getpid())
        self._save()
        try:
            gate = asyncio.Semaphore(job.config.concurrency)
            todo = [i for i, t in enumerate(job.trials) if needs_run(t, self.retry_errors)]
            watcher = asyncio.ensure_future(self._watch_run_folders())
            try:
                await asyncio.gather(*(self._trial(i, gate) for i in todo))
            finally:
                watcher.cancel()
                if self.launcher is not None:
                    await self.launcher.close()
            if self.cancelled:
                job.state = "cancelled"
                job.reasons = ["cancelled: trials in flight wrote cancelled reports; "
                               f"`cto-harness job --resume {job.job_id}` runs what is left"]
            else:
                job.state = "finished"
            self._save(sign=True)
        finally:
            for sig in handled:
                loop.remove_signal_handler(sig)
        if self.cancelled:
            return EXIT_CODES["cancelled"]
        # 0: every trial has its verdict (a pass, or a failure someone owns); 1: some
        # trial still needs a run (never ran, cut short, or an infrastructure failure).
        return 1 if any(t.status in TO_RUN or retried(t) for t in job.trials) else 0

    async def _start_launcher(self) -> None:
        try:
            self.launcher = await WarmLauncher.start(
                functools.partial(die_with_parent, os.getpid()))
        except LauncherGone as exc:
            print(f"cto-harness: {exc}; each trial starts as a fresh interpreter instead",
                  file=sys.stderr)

    async def _spawn(self, trial: Trial) -> Child:
        """The trial's `cto-harness run`: forked from the warm launcher, or (cold, or the
        launcher gone) a fresh interpreter; OSError when neither starts."""
        argv = self._argv(trial)
        if self.warm and self._launching is None:
            self._launching = asyncio.ensure_future(self._start_launcher())
        if self._launching is not None:
            await asyncio.shield(self._launching)
        if self.launcher is not None and self.warm:
            try:
                return await self.launcher.spawn(argv)
            except LauncherGone as exc:
                self.warm = False  # said once; its trials in flight end as they report
                print(f"cto-harness: the warm launcher is gone ({exc}); the trials left "
                      "start as fresh interpreters", file=sys.stderr)
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "core.cli", *argv, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            start_new_session=True, preexec_fn=functools.partial(die_with_parent, os.getpid()))

    def _argv(self, trial: Trial) -> list[str]:
        """The trial's `cto-harness` arguments (without the program)."""
        cfg = self.job.config
        folder = next(t.folder for t in cfg.tasks if t.id == trial.task)
        argv = ["run", "--json", "--profile", cfg.profile,
                "--task", folder, "--runs-root", str(self.runs_root), "--timeout",
                repr(cfg.timeout_s), "--job-id", self.job.job_id, "--attempt",
                str(trial.attempt)]
        if cfg.demo:
            argv.append("--demo")
        if trial.previous_runs:
            argv += ["--retry-of", trial.previous_runs[-1]]
        return argv

    async def _trial(self, index: int, gate: asyncio.Semaphore) -> None:
        async with gate:
            if self.cancelled:
                return
            trial = self.job.trials[index]
            previous = [*trial.previous_runs, *([trial.run_id] if trial.run_id else [])]
            trial = trial.model_copy(update={
                "status": "running", "run_id": None, "problem": None, "exit_code": None,
                "previous_runs": previous, "guard": None, "leaked": False, "baseline": None,
                "failure_class": None,
                "tokens": None, "duration_s": None})
            self.job.trials[index] = trial
            self._save()
            try:
                proc = await self._spawn(trial)
            except OSError as exc:
                self._ended(index, None, f"could not start cto-harness run: {exc.strerror}")
                return
            self.children[index] = proc
            if self.cancelled:  # cancelled while it was being started
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGINT)
            out, err = await proc.communicate()
            self.children.pop(index, None)
            run_dir = _run_dir_from(out) or run_folder_of(self.runs_root, proc.pid)
            lines = err.decode("utf-8", "replace").strip().splitlines()
            why = lines[-1] if lines else f"cto-harness run exited {proc.returncode}"
            self._ended(index, run_dir, why, proc.returncode)

    def _ended(self, index: int, run_dir: Path | None, why: str,
               code: int | None = None) -> None:
        trial = self.job.trials[index]
        report = None
        if run_dir is not None:
            with contextlib.suppress(Unreadable):
                report = load_report(run_dir)
        if report is not None:
            trial = trial_facts(trial, report)
        else:
            status = "cancelled" if self.cancelled else "interrupted" if run_dir else "error"
            trial = trial.model_copy(update={
                "run_id": run_dir.name if run_dir else None, "status": status,
                "exit_code": code, "problem": why[:500],
                # no report: the harness, not the agent, did not get as far as a verdict
                "failure_class": "infrastructure"})
        self.job.trials[index] = trial
        self._save()
        if self.progress is not None:
            self.progress(self.job, trial)

    async def _watch_run_folders(self) -> None:
        """Record each running trial's run id as soon as its folder appears (the dashboard
        opens a running trial's run from the matrix)."""
        while True:
            await asyncio.sleep(POLL_S)
            changed = False
            for index, proc in list(self.children.items()):
                trial = self.job.trials[index]
                if trial.run_id is None and (found := run_folder_of(self.runs_root, proc.pid)):
                    self.job.trials[index] = trial.model_copy(update={"run_id": found.name})
                    changed = True
            if changed:
                self._save()


def _run_dir_from(stdout: bytes) -> Path | None:
    """The run folder `run --json` printed, if it printed one."""
    try:
        data = json.loads(stdout)
    except ValueError:
        return None
    run_dir = data.get("run_dir") if isinstance(data, dict) else None
    return Path(run_dir) if isinstance(run_dir, str) else None
