"""The dashboard driving real runs: `cto-harness run` children against a loopback upstream
with the test Case and the fake engine; retry, cancel, quit, the typed endpoint, --demo."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from core.evidence.runs import load_report
from core.settings import ENDPOINT_VAR, resolve
from tests.support.harness import Harness
from tests.support.pilot import SIZE, until
from tests.support.signing import harness_setting
from tui.app import Dashboard
from tui.cli import build_app
from tui.screens.dialogs import ConfirmScreen, QuitScreen
from tui.widgets.case_log import CaseLog
from tui.widgets.status_panel import StatusPanel


def use_env(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], **changes: str) -> None:
    for name in list(os.environ):
        if harness_setting(name) and name not in env:
            monkeypatch.delenv(name)
    for name, value in {**env, **changes}.items():
        monkeypatch.setenv(name, value)


def reported(app: Dashboard) -> Callable[[], bool]:
    return lambda: app.live_run is not None and (app.live_run / "report.json").exists()


async def test_retry_starts_a_real_child_run_with_retry_of(harness: Harness,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    first = harness.run("run", "--engine", "fake", "--runs-root", str(harness.runs_root))
    assert first.returncode in (0, 1), first.stderr
    original = next(harness.runs_root.iterdir())
    use_env(monkeypatch, harness.env)
    app = Dashboard(harness.runs_root, run_id=original.name, resolved=resolve())
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("r")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("enter")
        await until(pilot, lambda: app.live_run not in (None, original))
        await until(pilot, reported(app))
        assert app.live_run is not None
        report = load_report(app.live_run)
        assert report is not None and report.retry_of == original.name
        assert report.engine == "fake" and report.task == "r1-string-slugify"
        log = app.screen.query_one(CaseLog)
        await until(pilot, lambda: app.screen.view.report is not None)  # type: ignore[attr-defined]
        assert log.border_title == f"Case log · {app.live_run.name}"


async def test_cancel_sends_sigint_and_the_run_reports_cancelled(
        harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    use_env(monkeypatch, harness.env, CTO_HARNESS_CASE_ARGS="--mode hang --task-file "
            "{task_file} --workspace {workspace} --model {model}")
    app = Dashboard(harness.runs_root, resolved=resolve())
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("r")
        assert "No run yet" in app.screen.question  # type: ignore[attr-defined]
        await pilot.press("enter")
        await until(pilot, lambda: app.live_run is not None)
        guard = app.screen.query_one("#guard", StatusPanel)
        await until(pilot, lambda: guard.panel.state == "clear")  # the hang Case asked once
        assert app.screen.query_one("#readiness", StatusPanel).panel.state == "ready"
        await pilot.press("c")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("enter")
        await until(pilot, reported(app))
        report = load_report(app.live_run)  # type: ignore[arg-type]
        assert report is not None and report.status == "cancelled"
        await until(pilot, lambda: not app._running_children())


async def test_quit_while_a_run_goes_asks_and_can_cancel_it(
        harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    use_env(monkeypatch, harness.env, CTO_HARNESS_CASE_ARGS="--mode hang --task-file "
            "{task_file} --workspace {workspace} --model {model}")
    app = Dashboard(harness.runs_root, resolved=resolve())
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("r", "enter")
        await until(pilot, lambda: app.live_run is not None)
        child = app.started_runs[0]
        await pilot.press("q")
        assert isinstance(app.screen, QuitScreen)
        await pilot.press("escape")
        assert not isinstance(app.screen, QuitScreen) and child.running
        await pilot.press("q", "c")
    child.process.wait(timeout=30)
    report = load_report(app.live_run)  # type: ignore[arg-type]
    assert report is not None and report.status == "cancelled"


async def test_typed_endpoint_reaches_the_run_through_its_environment_only(
        harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    endpoint = harness.env[ENDPOINT_VAR]
    stale = harness.runs_root.parent / "stale-endpoint"  # what the typed one replaces
    stale.write_text("http://127.0.0.1:9/v1\n")
    env = {k: v for k, v in harness.env.items() if k != ENDPOINT_VAR}
    env[f"{ENDPOINT_VAR}_FILE"] = str(stale)
    use_env(monkeypatch, env)
    monkeypatch.delenv(ENDPOINT_VAR, raising=False)
    app = Dashboard(harness.runs_root, resolved=resolve())
    async with app.run_test(size=SIZE) as pilot:
        readiness = app.screen.query_one("#readiness", StatusPanel)
        await until(pilot, lambda: readiness.panel.state == "blocked")
        await pilot.press("e", *endpoint, "enter")
        await until(pilot, lambda: readiness.panel.state == "ready")
        await pilot.press("r", "enter")
        await until(pilot, reported(app), timeout=60)
        report = load_report(app.live_run)  # type: ignore[arg-type]
        assert report is not None and report.endpoint_configured
        assert report.relay.forwarded >= 1, "the Case reached the model through the relay"
        manifest = json.loads((app.live_run / "manifest.json").read_text())  # type: ignore[operator]
        assert not any(endpoint in arg for arg in manifest["argv"])
    for path in harness.runs_root.rglob("*"):
        if path.is_file():
            assert endpoint.encode() not in path.read_bytes(), path


async def test_demo_option_streams_a_demo_run_live(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    use_env(monkeypatch, {})
    app = build_app(["--demo", "--runs-root", str(tmp_path / "runs")])
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.live_run is not None)
        info = app.screen.query_one("#run-info")
        await until(pilot, lambda: "demo endpoint" in str(info.content))
        await until(pilot, reported(app), timeout=90)
        view = app.screen.view  # type: ignore[attr-defined]
        await until(pilot, lambda: view.report is not None)
        assert view.report.demo and view.report.status == "passed"
        assert app.screen.query_one(CaseLog).lines, "the reference Case's log streamed"
        assert app.screen.query_one("#guard", StatusPanel).panel.state == "clear"
