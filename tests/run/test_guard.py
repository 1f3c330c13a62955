"""The guard (core/run/guard.py) in a real run: a Case asking for a hosted model, an upstream
swapping models, output naming a hosted model on the host network and in isolation."""

from __future__ import annotations

from pathlib import Path

from core.standins.endpoint import ScriptedEndpoint
from tests.support.case_runs import (
    events,
    mode,
)
from tests.support.harness import Harness


def test_case_asking_for_claude_is_refused_and_trips_the_guard(harness: Harness) -> None:
    mode(harness, "claude")
    code, out = harness.run_json("run", "--no-baseline")
    report = harness.report(out["run_dir"])
    assert code == 1 and report["fallback_detected"] is True
    assert report["guard_state"] == "tripped"
    assert report["relay"]["refused"] == 1
    ev = report["fallback_evidence"][0]
    assert ev["file"] == "backend/relay.jsonl" and ev["line"] == 1
    assert "guard_tripped" in events(harness, out["run_dir"])


def test_upstream_swapping_models_trips_the_guard(
    harness: Harness, upstream: ScriptedEndpoint
) -> None:
    upstream.answer_model = "claude-sonnet-4-6"
    _, out = harness.run_json("run", "--no-baseline")
    report = harness.report(out["run_dir"])
    assert report["guard_state"] == "tripped"
    assert "claude-sonnet-4-6" in report["fallback_evidence"][0]["detail"]


def test_case_output_naming_a_hosted_model_trips_the_guard_on_the_host_network(
        harness: Harness) -> None:
    mode(harness, "liar")
    harness.env["CTO_HARNESS_CASE_SANDBOX"] = "off"  # a hosted call was possible
    _, out = harness.run_json("run", "--no-baseline")
    report = harness.report(out["run_dir"])
    assert report["guard_state"] == "tripped" and not report["fallback_warnings"]
    ev = report["fallback_evidence"][0]
    assert ev["file"] == "backend/case.log"
    line = (Path(out["run_dir"]) / ev["file"]).read_text().splitlines()[ev["line"] - 1]
    assert "claude-sonnet-4-6" in line


def test_case_output_naming_a_hosted_model_is_a_warning_when_isolated(
        harness: Harness) -> None:
    """mini-swe-agent's setup screen lists `anthropic/claude-…`: with only the relay
    reachable no hosted call could be made, so the words are evidence, not a trip."""
    mode(harness, "liar")
    _, out = harness.run_json("run", "--no-baseline")
    report = harness.report(out["run_dir"])
    assert report["case_network"] == "isolated", report["case_network_detail"]
    assert report["guard_state"] == "clear" and report["fallback_detected"] is False
    ev = report["fallback_warnings"][0]
    assert ev["file"] == "backend/case.log" and "isolated" in ev["detail"]
    line = (Path(out["run_dir"]) / ev["file"]).read_text().splitlines()[ev["line"] - 1]
    assert "claude-sonnet-4-6" in line
    assert "guard_warning" in events(harness, out["run_dir"])
    assert "guard_tripped" not in events(harness, out["run_dir"])
    _, checked = harness.run_json("validate", out["run_dir"])
    no_fallback = next(c for c in checked["criteria"] if c["id"] == "no_fallback")
    assert no_fallback["verdict"] == "ok"
    assert "1 marker warning(s) while isolated" in no_fallback["detail"]
