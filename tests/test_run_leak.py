"""A Case that gets hold of the secret endpoint (only because this test hands it over) and
prints it in several forms, in small writes with pauses, and writes it into a workspace
file: nothing of it reaches any artifact, and the run reports the leak."""

from __future__ import annotations

import base64
import json
import secrets
from pathlib import Path

from core.endpoint import ScriptedEndpoint
from tests.conftest import Harness, all_bytes


def test_case_that_leaks_the_endpoint_is_caught_and_scrubbed(
    harness: Harness, upstream: ScriptedEndpoint, tmp_path: Path
) -> None:
    password = secrets.token_urlsafe(12)
    url = upstream.base_url.replace("http://", f"http://harness:{password}@")
    harness.env["CTO_HARNESS_CASE_LOCAL_BASE_URL"] = url
    handed = tmp_path / "handed-over"
    handed.write_text(url)
    harness.env["CTO_HARNESS_CASE_ARGS"] = (
        f"--mode leak --secret-file {handed} --workspace {{workspace}} --model {{model}}")
    code, out = harness.run_json("run", "--no-baseline")
    run_dir = Path(out["run_dir"])
    report = harness.report(run_dir)
    assert code == 1 and report["leak_detected"] is True
    assert any(f["file"] == "workspace/notes.txt" for f in report["leaks"])
    assert any("leak_detected" in r for r in report["reasons"])
    bare = url.split("://", 1)[1]
    forms = [url, bare, password, json.dumps(url)[1:-1],
             base64.b64encode(url.encode()).decode().rstrip("=")]
    for path, data in all_bytes(harness.runs_root):
        for form in forms:
            assert form.encode() not in data, f"{path} holds a form of the secret"
    log = (run_dir / "backend" / "case.log").read_text()
    assert log.count("[REDACTED:endpoint]") >= 3
    assert "[REDACTED:endpoint]" in (run_dir / "workspace" / "notes.txt").read_text()
    # The scrubbed run still validates as a whole: its evidence names the leak.
    code, result = harness.run_json("validate", str(run_dir))
    crit = {c["id"]: c for c in result["criteria"]}
    assert crit["endpoint_not_written"]["verdict"] == "failed"
    assert crit["evidence_intact"]["verdict"] == "ok"


def test_links_the_case_plants_are_never_followed(
    harness: Harness, upstream: ScriptedEndpoint, tmp_path: Path
) -> None:
    """A link to /proc/self/environ read by the harness is the harness's own environment,
    endpoint and hosted keys included: the leak scan and the artifact hashes must record the
    link itself, never open it, and never copy what it points at into the run."""
    handed = tmp_path / "handed-over"
    handed.write_text(upstream.base_url)
    harness.env["CTO_HARNESS_CASE_ARGS"] = (
        f"--mode links --secret-file {handed} --workspace {{workspace}} --model {{model}}")
    code, out = harness.run_json("run")
    run_dir = Path(out["run_dir"])
    report = harness.report(run_dir)
    assert code == 0 and report["leaks"] == [], report["reasons"]
    for name in ("env.txt", "endpoint.txt"):
        assert (run_dir / "workspace" / name).is_symlink()
        assert f"workspace/{name}" in report["artifacts"]
    hosted_key = harness.env["ANTHROPIC_API_KEY"]
    for path, data in all_bytes(harness.runs_root):
        if not path.is_symlink():
            assert hosted_key.encode() not in data, f"{path} holds the harness's environment"
    assert harness.run_json("validate", str(run_dir))[0] == 0
    (run_dir / "workspace" / "endpoint.txt").unlink()
    (run_dir / "workspace" / "endpoint.txt").symlink_to("/etc/hostname")
    code, result = harness.run_json("validate", str(run_dir))
    intact = next(c for c in result["criteria"] if c["id"] == "evidence_intact")
    assert code == 1 and "workspace/endpoint.txt" in intact["detail"]
