"""The commands that run something: `run` and `health`."""

from __future__ import annotations

import argparse
import dataclasses
import signal
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel

from core.cli.common import emit_json, runs_root
from core.errors import UsageError
from core.evidence.models import FailureClass
from core.evidence.validate import validate_run
from core.run.launch import RunRequest
from core.run.readiness import check_readiness
from core.run.runner import run_sync
from core.settings import DEFAULT_PROFILE, DEFAULT_TASK, PROFILES, resolve
from core.term import visible


class RunResult(BaseModel):
    """What `run --json` prints: enough to find and judge the run."""

    run_id: str
    run_dir: str
    status: str
    exit_code: int
    stage: int
    stage2_passed: bool
    failure_class: FailureClass | None = None
    """Whose fault it was, when the run did not pass (report.json's)."""
    demo: bool
    reasons: list[str]


class Progress:
    """Live stages on stderr: colour and symbols on a terminal, plain lines otherwise."""

    SYMBOLS: ClassVar[dict[str, str]] = {
        "run_blocked": "✗", "guard_tripped": "!", "leak_detected": "!", "run_finished": "■",
    }

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.t0 = time.monotonic()

    def __call__(self, event: dict[str, Any]) -> None:
        name = event["event"]
        detail = visible(self._detail(event))
        elapsed = f"{time.monotonic() - self.t0:6.1f}s"
        if self.tty:
            colour = "31" if name in self.SYMBOLS and name != "run_finished" else "36"
            sym = self.SYMBOLS.get(name, "•")
            line = f"\x1b[2m{elapsed}\x1b[0m \x1b[{colour}m{sym}\x1b[0m {name:<22} {detail}"
        else:
            line = f"{elapsed} {name} {detail}".rstrip()
        print(line, file=sys.stderr, flush=True)

    @staticmethod
    def _detail(e: dict[str, Any]) -> str:
        match e["event"]:
            case "run_started":
                return f"{e['run_id']} ({e['engine']}{', demo endpoint' if e.get('demo') else ''})"
            case "config_resolved":
                return (f"{e['provider']}/{e['model']}, endpoint "
                        f"{'configured' if e['endpoint_configured'] else 'missing'}")
            case "readiness_checked":
                return "ready" if e.get("ready") else "not ready"
            case "admission_checked":
                return str(e.get("status"))
            case "guard_verdict":
                return f"{e.get('state')} ({e.get('proven_requests', 0)} request(s) proven)"
            case "baseline_completed":
                checks = e.get("checks", {})
                return (f"fake engine {e.get('status')} "
                        f"({checks.get('passed', 0)}/{checks.get('total', 0)} checks)")
            case "run_blocked":
                names = [r.split(":", 1)[0] for r in e.get("reasons", [])]
                return f"by {', '.join(names)} (details below)"
            case "case_process_exited":
                return f"exit {e.get('exit_code')} after {e.get('duration_s')} s"
            case "checks_completed":
                return e.get("detail", "")
            case "guard_tripped":
                return e.get("evidence", {}).get("detail", "")
            case "run_finished":
                return f"{e['status']} (exit {e['exit_code']})"
        return ""


def cmd_run(args: argparse.Namespace) -> int:
    if not args.timeout > 0:  # NaN too: it would time the Case out at once
        raise UsageError("--timeout must be a positive number of seconds")
    resolved = resolve(args.profile)
    root = runs_root(args, resolved)
    request = RunRequest(profile=args.profile, task=args.task, engine=args.engine,
                         baseline=not args.no_baseline, timeout=args.timeout,
                         retry_of=args.retry_of, demo=args.demo, tasks_dir=args.tasks,
                         job_id=args.job_id, attempt=args.attempt,
                         node=args.node)
    with ExitStack() as stack:
        if args.demo:
            from core.standins.demo import demo_environment

            demo = stack.enter_context(demo_environment())
            resolved = dataclasses.replace(
                resolved, endpoint=demo.endpoint, endpoint_source="demo endpoint",
                endpoint_problem=None, api_key=None, api_key_problem=None,
                admission_file=demo.admission_file, case_bin=demo.case_bin,
                case_args=resolved.case_args, provider=PROFILES[args.profile][0],
                model=PROFILES[args.profile][1])
        listener = None if args.json else Progress()
        report, run_dir = run_sync(request, resolved, root, listener)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # sealed: what is left is saying so
    if args.json:
        emit_json(RunResult(run_id=report.run_id, run_dir=str(run_dir), status=report.status,
                            exit_code=report.exit_code, stage=report.stage,
                            stage2_passed=report.stage2_passed,
                            failure_class=report.failure_class, demo=report.demo,
                            reasons=report.reasons))
    else:
        whose = f" ({report.failure_class} failure)" if report.failure_class else ""
        print(visible(f"{report.status}{whose}: {run_dir}"), file=sys.stderr)
        for reason in report.reasons:
            print(visible(f"  - {reason}"), file=sys.stderr)
    return report.exit_code


class Health(BaseModel):
    ok: bool
    """Exit 0: the self-test passed and every readiness check is ok."""
    exit_code: int
    ready: bool
    readiness: dict[str, Any]
    self_test: dict[str, Any]


SELF_TEST_EXPECTED = ("the fake engine's run finishes (its naive solution fails the checks, "
                      "so 'failed' is the expected outcome) and validate accepts its evidence")


def cmd_health(args: argparse.Namespace) -> int:
    """Readiness plus a self-test: a fake-engine run in a temp root, then validate on it."""
    resolved = resolve(args.profile)
    readiness = check_readiness(resolved)
    with tempfile.TemporaryDirectory(prefix="cto-harness-health-") as tmp:
        request = RunRequest(profile=args.profile, engine="fake", baseline=False, timeout=120)
        report, run_dir = run_sync(request, resolved, Path(tmp))
        validation = validate_run(run_dir)
    self_ok = report.status in ("passed", "failed") and validation.ok
    code = 4 if not self_ok else 0 if readiness.ready else 3
    health = Health(
        ok=code == 0, exit_code=code, ready=readiness.ready,
        readiness=readiness.model_dump(mode="json"),
        self_test={"ok": self_ok, "expected": SELF_TEST_EXPECTED,
                   "fake_run_status": report.status, "validate_accepted": validation.ok,
                   "problems": validation.problems},
    )
    if args.json:
        emit_json(health)
    else:
        print(f"self-test: {'ok' if self_ok else 'FAILED'} (fake-engine run {report.status}"
              f"{', as expected' if report.status == 'failed' else ''}; validate "
              f"{'accepts' if validation.ok else 'does NOT accept'} its evidence)")
        for c in readiness.checks:
            print(visible(f"  {c.state:<8} {c.name:<20} {c.detail}"))
        print(f"ready: {'yes' if readiness.ready else 'no'}")
    return code


def register(sub: argparse._SubParsersAction) -> None:
    run = sub.add_parser("run", help="run a Case (or the fake engine) on a task")
    run.add_argument("--profile", default=DEFAULT_PROFILE, choices=sorted(PROFILES))
    run.add_argument("--task", default=DEFAULT_TASK,
                     help="a task id (bundled, or in --tasks DIR) or a path to a task folder")
    run.add_argument("--tasks", metavar="DIR",
                     help="a folder of task folders (default: CTO_HARNESS_TASKS_DIR, else the "
                          "bundled tasks)")
    run.add_argument("--job-id", help=argparse.SUPPRESS)  # set by `cto-harness job`
    run.add_argument("--attempt", type=int, help=argparse.SUPPRESS)
    run.add_argument("--node", help=argparse.SUPPRESS)  # set by a cluster job's worker
    run.add_argument("--engine", default="case", choices=["case", "fake"])
    run.add_argument("--no-baseline", action="store_true",
                     help="skip the same-run fake baseline (then no pass can be claimed)")
    run.add_argument("--timeout", type=float, default=1800.0, metavar="SECONDS")
    run.add_argument("--runs-root", metavar="DIR")
    run.add_argument("--retry-of", metavar="RUN_ID")
    run.add_argument("--demo", action="store_true",
                     help="use the embedded demo endpoint and the reference Case")
    run.add_argument("--json", action="store_true", help="one JSON object on stdout at the end")
    run.set_defaults(func=cmd_run)

    health = sub.add_parser("health", help="readiness plus a fake-engine self-test")
    health.add_argument("--profile", default=DEFAULT_PROFILE, choices=sorted(PROFILES))
    health.add_argument("--json", action="store_true")
    health.set_defaults(func=cmd_health)

