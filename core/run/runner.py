"""One run, start to verdict: preflight (Stage 1), the Case on the task with its checks and
the same-run fake baseline (Stage 2), the guard's verdict, the leak scan, the report.

Every stage leaves its trace event as it happens; whatever goes wrong, a report is written.
This module orders the stages; its neighbours hold the parts: `launch` (the request, the
run made ready, the Case's command and environment), `case_stage` (the relay up and the
Case run through it, mixed in), `supervise` (a process run with its output redacted and
watched), `verdict` (pure: the status and reasons from the collected
state) and `report` (the leak scan and `report.json`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core import __version__
from core.evidence.attestation import sign_run
from core.evidence.defuse import defuse_tree
from core.evidence.keys import SigningKey, signing_setup
from core.evidence.liveness import process_start_ticks
from core.evidence.models import (
    BaselineOutcome,
    CheckCounts,
    Evidence,
    Manifest,
    Readiness,
    RelayRecord,
    Report,
    RunStatus,
    ScanSummary,
    Signing,
)
from core.evidence.rundir import artifact_hashes, fresh_dir, utcnow
from core.run.admission import check_admission
from core.run.case_stage import CaseStage
from core.run.checks import run_checks
from core.run.guard import Guard
from core.run.launch import (
    Prepared,
    RunRequest,
    prepare,
)
from core.run.outcome import LIMIT_PREFIX
from core.run.process import warden_forgets, warden_removes
from core.run.readiness import check_readiness
from core.run.report import RunRecord, build_report, scan_for_leaks, unavailable_text
from core.run.supervise import Supervisor
from core.run.task import Task, TaskError
from core.run.verdict import (
    FAKE,
    baseline_status,
    guard_state_for,
    preflight_blockers,
    verdict,
)
from core.run.watchdog import CANCEL_GRACE_S, WATCHDOG_GRACE_S, watch
from core.sandbox.run import RunSandbox
from core.secrets.runscan import scan_seconds
from core.settings import Resolved

Listener = Callable[[dict[str, Any]], None]


class Runner(CaseStage):
    """One run's stages, in order. Made by `Runner.prepare` (which does the I/O a run needs
    before it starts); the constructor only assembles."""

    def __init__(self, prepared: Prepared, listener: Listener | None = None) -> None:
        p = prepared
        self.request, self.resolved, self.task = p.request, p.resolved, p.task
        self.listener = listener
        self.cancel = asyncio.Event()
        self.token = p.token
        self.scan_bytes = p.scan_bytes
        self.scan_seconds = scan_seconds(p.request.timeout)
        self.case_timeout = p.request.timeout - self.scan_seconds
        """--timeout bounds the Case and the leak scan together (README, "Secret safety")."""
        self.redactor = p.redactor
        self.paths = p.paths
        self.repository = p.repository
        self.state = p.state
        self.writer = p.writer
        self.started = time.monotonic()
        self.started_at = utcnow()
        self.guard = Guard(p.resolved.model, p.resolved.fallback_markers,
                           on_trip=self._on_trip, on_warning=self._on_warning)
        self.sandbox: RunSandbox = p.sandbox
        self.signer: SigningKey | None = None
        self.sealed: Report | None = None
        """The report once written and signed: what the run's exit code follows."""
        self.signing = Signing(mode="on", detail="not set up yet")
        self.supervisor = Supervisor(self.redactor, self.guard, self.cancel, self.state,
                                     self.event)

    @classmethod
    def prepare(cls, request: RunRequest, resolved: Resolved, runs_root: Path,
                listener: Listener | None = None) -> Runner:
        """A run made ready (its task, folder, writer; a warning when the runs root is in
        a git repository): TaskError or ConfigError, and no run, when it cannot be."""
        return cls(prepare(request, resolved, runs_root), listener)

    # -- trace ----------------------------------------------------------------------
    def event(self, name: str, **fields: Any) -> None:
        record = self.writer.event(name, **fields)
        if self.listener is not None:
            self.listener(record)

    def _on_trip(self, evidence: Evidence) -> None:
        self.event("guard_tripped", evidence=evidence.model_dump(exclude_none=True))

    def _on_warning(self, evidence: Evidence) -> None:
        self.event("guard_warning", evidence=evidence.model_dump(exclude_none=True))

    def _on_record(self, record: RelayRecord) -> None:
        self.state.records.append(record)
        self.guard.on_relay(record, len(self.state.records))

    # -- the run --------------------------------------------------------------------
    async def run(self) -> Report:
        loop = asyncio.get_running_loop()
        handled = []
        # Ctrl-C, kill, or the terminal closing: end the Case's group and still report.
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, self.cancel.set)
                handled.append(sig)
        try:
            try:
                status = await self._watched()
            except Exception as exc:  # the harness's own failure still gets a report
                self.state.reasons.append(f"harness error: {type(exc).__name__}: {exc}")
                status = "error"
            finally:
                self.sandbox.close()
                for folder in self.sandbox.limit_folders:
                    warden_forgets(folder)
            # Still under our handlers: a Ctrl-C now must not cut the leak scan's scrub or
            # the report short (the run is over; the report says how it ended).
            return self._finish(status)
        finally:
            for sig in handled:
                if self.sealed is None:
                    loop.remove_signal_handler(sig)
                else:  # the report says how the run ended; a key pressed now changes nothing
                    loop.add_signal_handler(sig, lambda: None)

    def watchdog_budget(self) -> float:
        """Seconds the stages may take in all: each stage's own timeout, plus the stated
        grace (core/run/watchdog.py) for what has none."""
        req, checks = self.request, self.task.check_timeout_s
        budget = self.case_timeout + checks
        if req.engine != FAKE and req.baseline:
            budget += self.case_timeout + checks
        return budget + WATCHDOG_GRACE_S

    async def _watched(self) -> RunStatus:
        """The stages under the watchdog: cut short, the run still goes to its report."""
        budget = self.watchdog_budget()
        watched = await watch(self._run(), budget, self.cancel)
        if watched.result is not None:
            return watched.result
        if watched.abandoned_on_cancel:
            self.state.reasons.append(
                f"cancelled: the stages did not end within {CANCEL_GRACE_S:g} s of the "
                "cancel, so the watchdog ended them")
            return "cancelled"
        self.state.reasons.append(
            f"watchdog: the run's stages did not end within {budget:g} s (their timeouts "
            f"plus {WATCHDOG_GRACE_S:g} s), so the watchdog ended them")
        return "timed_out"

    async def _run(self) -> RunStatus:
        req, res, task = self.request, self.resolved, self.task
        self.sandbox.start()  # set up while the preflight runs: off the critical path
        self.writer.write_json(self.paths.manifest, Manifest(
            run_id=self.paths.run_id, task=task.id, engine=req.engine, profile=req.profile,
            provider=res.provider, model=res.model, harness_version=__version__,
            started_at=self.started_at, harness_pid=os.getpid(),
            harness_start_ticks=process_start_ticks(os.getpid()), retry_of=req.retry_of,
            demo=req.demo, argv=sys.argv,
            case_bin_name=Path(res.case_bin).name if res.case_bin and req.engine != FAKE
            else None,
            task_folder=None if task.bundled else str(task.folder), job_id=req.job_id,
            attempt=req.attempt, node=req.node,
        ))
        self.event("run_started", run_id=self.paths.run_id, task=task.id, engine=req.engine,
                   profile=req.profile, demo=req.demo, retry_of=req.retry_of)
        signing_blocker = self._setup_signing()
        self.event("config_resolved", endpoint_configured=res.endpoint_usable,
                   endpoint_source=res.endpoint_source, case_bin=res.case_bin,
                   admission_file=str(res.admission_file) if res.admission_file else None,
                   provider=res.provider, model=res.model,
                   redaction_forms=len(self.redactor.forms),
                   unmaskable_forms=self.redactor.unmaskable,
                   runs_root_in_repository=str(self.repository) if self.repository else None,
                   signing=self.signing.mode, signing_keyid=self.signing.keyid)
        blockers = await self._preflight()
        if signing_blocker:
            blockers.append(signing_blocker)
        for folder in self.sandbox.limit_folders:  # removed by the warden if we die
            warden_removes(folder)
        self.state.durations.preflight_s = round(time.monotonic() - self.started, 3)
        if self.cancel.is_set():
            self.state.reasons.append("cancelled before the Case started")
            return "cancelled"
        if blockers:
            self.state.reasons.extend(blockers)
            self.writer.write_text(self.paths.unavailable, unavailable_text(blockers))
            self.event("run_blocked", reasons=blockers,
                       marker=str(self.paths.unavailable.relative_to(self.paths.root)))
            return "blocked"
        self.state.stage = 2
        return await self._stage2(task)

    def _setup_signing(self) -> str | None:
        """The key loaded (made on first use) before anything runs, or why the run is
        blocked: a run never goes silently unsigned."""
        self.signing, self.signer, blocker = signing_setup(os.environ)
        return blocker

    async def _preflight(self) -> list[str]:
        res = self.resolved
        admission = check_admission(res.admission_file, res.provider, res.model)
        if self.request.engine == FAKE:
            self.event("readiness_checked", ready=True, skipped="fake engine calls no model")
            self.state.admission = admission.status
            self.event("admission_checked", status=admission.status, detail=admission.detail)
            sandbox = await self.sandbox.blocker()
            return [sandbox] if sandbox else []
        readiness: Readiness = await asyncio.to_thread(check_readiness, res,
                                                       redact=self.redactor.redact)
        self.writer.write_json(self.paths.readiness, readiness)
        self.event("readiness_checked", ready=readiness.ready,
                   checks={c.name: c.state for c in readiness.checks})
        self.state.admission = admission.status
        self.event("admission_checked", status=admission.status, detail=admission.detail)
        blockers = preflight_blockers(readiness, admission)
        sandbox = await self.sandbox.blocker()
        return [*blockers, sandbox] if sandbox else blockers

    async def _stage2(self, task: Task) -> RunStatus:
        req, _res = self.request, self.resolved
        task_dir = self.paths.root / "task"
        task_dir.mkdir()
        task_file = task_dir / task.prompt_file.name
        try:  # checked when the task loaded; a task folder changed since is refused too
            task_file.write_bytes(task.prompt_bytes())
        except TaskError as exc:
            self._block_late(f"task: {exc}")
            return "blocked"
        task.fresh_workspace(self.paths.workspace)
        # the start the Changes tab diffs against, taken from the very copy the Case gets
        shutil.copytree(self.paths.workspace, self.paths.start_workspace, symlinks=True)
        if req.engine == FAKE:
            self._network("fake engine: asks no model; " + (
                "no network in its sandbox" if self.sandbox.enabled else "the host network"))
            self.state.case = await self.supervisor.fake_engine(
                task, task_file, self.paths.workspace, self.paths.case_log, self.sandbox,
                self.case_timeout, scan=True)
        else:
            outcome = await self._case(task_file)
            if outcome is None:
                return "blocked"
            self.state.case = outcome
            refusal = self._gateway_refusal()
            if refusal is not None:
                self._came_back(self.paths.workspace, self.paths.root / "home")
                self.state.reasons.append(refusal)
                return "blocked"
        self._came_back(self.paths.workspace, self.paths.root / "home")
        case = self.state.case
        self.state.durations.case_s = round(case.duration_s, 3)
        if setup := self._setup_failure(case):
            self._block_late(setup)  # never the Case's fault: it did not run
            return "blocked"
        if req.engine == FAKE:
            self.state.case_started = True
        if self.cancel.is_set():
            self.state.reasons.append("cancelled while the Case ran")
            return "cancelled"
        if case.timed_out:
            self.state.reasons.append(
                f"the Case ran past its timeout ({self.case_timeout:g} s of the run's "
                f"--timeout {req.timeout:g} s; the rest is the leak scan's)")
        # The same-run baseline needs nothing of the Case's checks (its own fresh workspace,
        # its own folder, its own sandboxes): it runs beside them rather than after, so a
        # trial takes the longer of the two, not their sum. Its end is traced after the
        # checks' whichever finishes first, so the trace reads the same every run.
        baseline = None
        if req.engine != FAKE and req.baseline:
            # traced here, not in the task: a task first runs at the checks' first await,
            # and checks that end without one put checks_completed before it (the order
            # then differed between runs of one Case)
            self.event("baseline_started", engine=FAKE)
            baseline = asyncio.ensure_future(self._baseline(task, task_file))
        try:
            t0 = time.monotonic()
            self.state.checks = await run_checks(task, self.paths.workspace, self.paths.checks,
                                                 self.redactor.redact, self.cancel,
                                                 self._boxes())
            self.state.durations.checks_s = round(time.monotonic() - t0, 3)
            self.event("checks_completed", **self.state.checks.model_dump())
        except BaseException:  # the watchdog, or our own failure: the baseline ends too
            if baseline is not None:
                baseline.cancel()
                with contextlib.suppress(BaseException):
                    await baseline
            raise
        if baseline is not None:
            await baseline
            assert self.state.baseline is not None
            self.event("baseline_completed", status=self.state.baseline.status,
                       checks=self.state.baseline.checks.model_dump())
        if self.cancel.is_set():
            return "cancelled"
        return "timed_out" if case.timed_out else "failed"  # refined by the verdict

    def _block_late(self, reason: str) -> None:
        self.state.stage = 1
        self.state.reasons.append(reason)
        self.writer.write_text(self.paths.unavailable, unavailable_text([reason]))
        self.event("run_blocked", reasons=[reason])

    async def _baseline(self, task: Task, task_file: Path) -> None:
        """The fake engine and the checks on its workspace, into the run's state (its start
        and its end are traced by the caller, around the Case's checks')."""
        base = self.paths.baseline
        t0 = time.monotonic()
        fresh_dir(base)  # the Case may have planted it (a link out of the run, say)
        task.fresh_workspace(base / "workspace")
        box = self.sandbox.for_baseline()
        outcome = await self.supervisor.fake_engine(
            task, task_file, base / "workspace", base / "case.log", box,
            self.case_timeout, scan=self.request.engine == FAKE)
        checks = CheckCounts(detail="not run")
        if outcome.exit_code == 0:
            checks = await run_checks(task, base / "workspace", base / "checks",
                                      self.redactor.redact, self.cancel,
                                      box if box.enabled else None, who="the baseline's checks")
        status = baseline_status(outcome, checks)
        self.state.baseline = BaselineOutcome(status=status, exit_code=outcome.exit_code,
                                              checks=checks)
        self.state.durations.baseline_s = round(time.monotonic() - t0, 3)

    def _came_back(self, *folders: Path) -> None:
        """What the sandbox leaves made harmless on the host (core/evidence/defuse.py): as
        soon as the Case is done with a folder, and over the whole run at its end."""
        for folder in folders:
            if os.path.lexists(folder):
                self.state.xattrs_stripped.update(defuse_tree(folder, self.paths.root))

    # -- the end ----------------------------------------------------------------------
    def _finish(self, status: RunStatus) -> Report:
        """The guard's verdict, the leak scan, the verdict, then `report.json`: whatever
        happened before, a report is written."""
        s, req = self.state, self.request
        guard = guard_state_for(req.engine, self.guard.state())
        if s.stage == 2 or s.case_started:
            self.event("guard_verdict", state=guard, evidence=len(self.guard.evidence),
                       proven_requests=self.guard.proven_requests)
        t0 = time.monotonic()
        self._came_back(self.paths.root)  # the checks' and baseline's too, however it ended
        try:
            scan_for_leaks(self.paths, self.redactor, self.scan_seconds, self.scan_bytes, s)
            for finding in s.leaks:
                self.event("leak_detected", **finding.model_dump())
        except Exception as exc:
            s.reasons.append(f"leak scan failed: {type(exc).__name__}")
            s.scan = ScanSummary(complete=False)
            status = "error"
        if not s.scan.complete:
            s.reasons.append(
                f"unscanned: {s.scan.unscanned_count} entries of the run were not scanned for "
                "leaks (see scan.unscanned), so it cannot claim the endpoint was not written")
        if not s.checks.ran and not s.checks.detail:  # say why, not an empty "not run ()"
            s.checks.detail = f"the run ended ({status}) before the checks"
        status, reasons = verdict(status, s, req.engine, self.guard.state(),
                                  self.guard.unproven_reason())
        s.reasons.extend(reasons)
        if status != "passed":  # a limit reached and coped with leaves a pass standing
            s.reasons.extend(f"{LIMIT_PREFIX} {hit}" for hit in self.sandbox.limits_hit)
        artifacts = artifact_hashes(self.paths, known=s.digests, unhashed=s.unhashed,
                                    unhashed_folders=s.unhashed_folders)
        s.durations.scan_s = round(time.monotonic() - t0, 3)
        s.durations.total_s = round(time.monotonic() - self.started, 3)  # the wall time
        record = RunRecord(run_id=self.paths.run_id, task_id=self.task.id, request=req,
                           resolved=self.resolved, guard=self.guard, guard_state=guard,
                           sandbox=self.sandbox.record(), redactor=self.redactor,
                           started_at=self.started_at, trace_head=self.writer.head,
                           signing=self.signing)
        report = build_report(status, s, record, artifacts)
        text = self.writer.write_json(self.paths.report, report)
        self.event("report_written", status=status,
                   report_sha256=hashlib.sha256(text.encode("utf-8")).hexdigest())
        self.event("run_finished", status=status, exit_code=report.exit_code)
        self.writer.close()
        if self.signer is not None:
            self._sign(text)
        self.sealed = report
        return report

    def _sign(self, report_text: str) -> None:
        """The attestation over the finished run, from the report as written (redacted):
        nothing in it that the report does not already say. A failure to write it leaves
        the run unsigned, which validate names (the report says it was to be signed)."""
        assert self.signer is not None
        try:
            sign_run(self.paths.root, Report.model_validate_json(report_text), report_text,
                     self.signer)
        except OSError as exc:
            print(f"cto-harness: {self.paths.attestation} could not be written "
                  f"({exc.strerror}): the run is unsigned", file=sys.stderr)


def run_sync(request: RunRequest, resolved: Resolved, runs_root: Path,
             listener: Listener | None = None) -> tuple[Report, Path]:
    """One run to its report. A Ctrl-C that lands once the report is sealed (the run's
    handlers gone, the loop closing) leaves it standing: the report says how the run
    ended, not the key pressed after."""
    prepared: list[Runner] = []

    async def main() -> tuple[Report, Path]:
        prepared.append(Runner.prepare(request, resolved, runs_root, listener))
        return await prepared[0].run(), prepared[0].paths.root

    try:
        return asyncio.run(main())
    except KeyboardInterrupt:
        if not prepared or prepared[0].sealed is None:
            raise
        return prepared[0].sealed, prepared[0].paths.root
