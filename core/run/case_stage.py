"""Stage 2's Case: the relay up (to the endpoint, or a gateway), the Case's command and
environment judged and built, the Case run in its sandbox (or on the host, when the user
opted out), the relay down — and why a Case never ran, when it did not (its setup's fault,
never its own). Mixed into the Runner (core/run/runner.py), which orders the stages.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path

from core.errors import BadInput
from core.evidence.exchange_store import max_bytes_from_env
from core.evidence.models import RelayRecord
from core.evidence.rundir import RunPaths
from core.relay.bodies import BodyRules
from core.relay.server import Relay
from core.run.caseconf import CaseConfigError, seed_home
from core.run.guard import Guard
from core.run.launch import (
    CaseCommand,
    RunRequest,
    case_command,
    case_environment,
    case_paths,
    socket_dir,
)
from core.run.process import Outcome
from core.run.supervise import Supervisor
from core.run.verdict import RunState
from core.sandbox.home import SANDBOX_HOME, prepare_home
from core.sandbox.paths import PathProblem
from core.sandbox.run import RunSandbox
from core.secrets.redact import Redactor
from core.settings import Resolved, upstream_verify
from core.settings.gateway import JOB_HEADER, RUN_HEADER


class CaseStage:
    """What the Case's part of a run needs of the Runner, declared so it type-checks here."""

    request: RunRequest
    resolved: Resolved
    token: str
    redactor: Redactor
    paths: RunPaths
    state: RunState
    guard: Guard
    supervisor: Supervisor
    sandbox: RunSandbox
    case_timeout: float
    event: Callable[..., None]
    _block_late: Callable[[str], None]
    _on_record: Callable[[RelayRecord], None]

    async def _case(self, task_file: Path) -> Outcome | None:
        res, box = self.resolved, self.sandbox
        inside = box.enabled
        # Judged before the relay starts (its port is not known yet; the URL's shape is).
        if self._case_command(task_file, "http://127.0.0.1:0/v1") is None:
            return None
        home = prepare_home(self.paths.root)
        seed_home(res.case_home_template, home)
        sock_dir = None
        if inside:
            try:
                sock_dir = socket_dir()
            except PathProblem as exc:
                self._block_late(f"sandbox: {exc}")
                return None
        uds = sock_dir / "relay.sock" if sock_dir else None
        try:
            exchanges_max = max_bytes_from_env()
        except BadInput as exc:
            self._block_late(f"config: {exc}")
            return None
        assert res.endpoint is not None  # preflight blocks a run without one
        relay = Relay(upstream=res.endpoint, api_key=res.api_key, model=res.model,
                      token=self.token, ledger=self.paths.relay, redact=self.redactor.redact,
                      on_record=self._on_record, uds=uds,
                      exchanges=None if exchanges_max is None else self.paths.exchanges,
                      exchanges_max_bytes=exchanges_max or 0,
                      rules=BodyRules(max_n=res.relay_max_n,
                                      remote_media=res.relay_remote_media),
                      streams=self.redactor.stream,
                      verify=upstream_verify(res.endpoint, res.gateway),
                      identity=self._gateway_identity(), via_gateway=res.gateway is not None)
        try:
            await relay.start()
            self.event("relay_started", url=relay.base_url,
                       door="tcp (token)" if relay.tcp else "unix socket (sandbox only)")
            command = self._case_command(task_file, relay.base_url)
            assert command is not None, "judged above with the same settings"
            argv, extra_env, stdin = command.argv, command.extra_env, command.stdin
            task_at, workspace_at = self._case_paths(task_file)
            env = case_environment(relay.base_url, self.token, res, task_at, workspace_at,
                                   SANDBOX_HOME if inside else str(home), sandboxed=inside)
            env.update(extra_env)
            self.guard.check_env(env)
            self.guard.markers_warn = inside
            if not inside:
                self._network(box.detail)
                return await self.supervisor.run(argv, env, self.paths.workspace,
                                                 self.paths.case_log, self.case_timeout,
                                                 scan=True, stdin=stdin)
            assert uds is not None
            uds.chmod(0o666)  # its folder is 0700: only the sandbox's uid gets this far
            try:
                program, spec = box.case(argv[0], env.get("PATH", ""), self.paths.workspace,
                                         task_file, home, (uds, relay.port))
            except PathProblem as exc:
                self._block_late(f"sandbox: {exc}")
                return None
            argv[0] = program
            env["PATH"] = box.path_inside(env.get("PATH", ""), spec)
            self._network("own network namespace: only the relay is reachable")
            box.sandboxes.hand_over(self.paths.workspace, home)
            try:
                return await self.supervisor.run(argv, env, self.paths.workspace,
                                                 self.paths.case_log, self.case_timeout,
                                                 scan=True, launch=box.launch(spec, argv),
                                                 stdin=stdin, watch=box.watch(
                                                     "the Case", self.paths.workspace, home))
            finally:
                box.sandboxes.take_back(self.paths.workspace, home)
        finally:
            await relay.stop()
            if sock_dir is not None:
                with contextlib.suppress(OSError):
                    (sock_dir / "relay.sock").unlink(missing_ok=True)
                    sock_dir.rmdir()

    def _gateway_identity(self) -> dict[str, str]:
        """The trial identity a gateway records beside each request (none to an endpoint)."""
        if self.resolved.gateway is None:
            return {}
        said = {RUN_HEADER: self.paths.run_id}
        if self.request.job_id:
            said[JOB_HEADER] = self.request.job_id
        return said

    def _gateway_refusal(self) -> str | None:
        """The gateway's refusal of the run's token while the Case ran (expired or revoked
        mid-run), as the run's `gateway:` reason: the setup's fault, not the Case's."""
        return next((r.error for r in self.state.records
                     if r.error is not None and r.error.startswith("gateway:")), None)

    def _setup_failure(self, case: Outcome) -> str | None:
        """Why the run's engine never ran, as a blocking reason (`sandbox:` when its sandbox
        could not be set up or started, `config:` when its program could not be started
        on the host), or None: what it did next is its own."""
        if case.setup_error:
            return case.setup_error
        if case.start_error:
            if self.sandbox.enabled:
                return f"sandbox: the sandbox could not be started: {case.start_error}"
            return (f"config: the Case could not be started ({case.start_error}); check "
                    "CTO_HARNESS_CASE_BIN names an executable you may run")
        return None

    def _case_command(self, task_file: Path, base_url: str) -> CaseCommand | None:
        """The Case's command; None (the run blocked, naming the variable) when the
        settings are unusable or would hand the Case a secret or a hosted provider."""
        try:
            command = case_command(self.resolved, self.redactor, task_file,
                                   self._case_paths(task_file), base_url)
        except CaseConfigError as exc:
            self._block_late(str(exc))
            return None
        self.state.case_setup = command.setup
        return command

    def _case_paths(self, task_file: Path) -> tuple[str, str]:
        return case_paths(task_file, self.paths.workspace, self.sandbox.enabled)

    def _network(self, detail: str) -> None:
        self.state.network = "isolated" if self.sandbox.enabled else "host"
        self.state.network_detail = detail

    def _boxes(self) -> RunSandbox | None:
        return self.sandbox if self.sandbox.enabled else None
