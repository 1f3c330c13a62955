"""A Case that gets hold of the secret endpoint (only because this test hands it over) and
prints it in several forms, in small writes with pauses, and writes it into a workspace
file, into file and folder names, and into a link's target: nothing of it stays in any
artifact, and the run reports the leak."""

from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
import sys
import urllib.parse
from pathlib import Path

from core.standins.endpoint import ScriptedEndpoint
from tests.support.harness import ROOT, Harness, all_bytes, unprivileged


def hand_over(harness: Harness, upstream: ScriptedEndpoint, tmp_path: Path,
              mode: str) -> tuple[str, str]:
    """Configure the endpoint with an invented password and hand it to the Case in `mode`
    (only a test does that: it shows the Case the file through CTO_HARNESS_CASE_SANDBOX_RO,
    the sandbox hides everything else); (url, password)."""
    password = secrets.token_urlsafe(12)
    url = upstream.base_url.replace("http://", f"http://harness:{password}@")
    harness.env["CTO_HARNESS_CASE_LOCAL_BASE_URL"] = url
    handed = tmp_path / "handed-over"
    handed.write_text(url)
    harness.env["CTO_HARNESS_CASE_SANDBOX_RO"] = str(handed)
    harness.env["CTO_HARNESS_CASE_ARGS"] = (
        f"--mode {mode} --secret-file {handed} --workspace {{workspace}} --model {{model}}")
    return url, password


def test_case_that_leaks_the_endpoint_is_caught_and_scrubbed(
    harness: Harness, upstream: ScriptedEndpoint, tmp_path: Path
) -> None:
    url, password = hand_over(harness, upstream, tmp_path, "leak")
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
    harness.env["CTO_HARNESS_CASE_SANDBOX_RO"] = str(handed)
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


def secret_bytes_under(root: Path, forms: list[bytes]) -> list[str]:
    """Every place under `root` (names, link targets, file bytes) holding one of `forms`,
    walked as bytes so a non-UTF-8 name is seen as written."""
    found = []
    for folder, dirs, files in os.walk(os.fsencode(root)):
        for name in (*dirs, *files):
            path = os.path.join(folder, name)
            places = [("name", name.lower())]
            if os.path.islink(path):
                places.append(("link target", os.readlink(path).lower()))
            elif os.path.isfile(path):
                places.append(("content", Path(os.fsdecode(path)).read_bytes().lower()))
            found += [f"{os.fsdecode(path)}: {place}" for place, data in places
                      if any(form in data for form in forms)]
    return found


def test_case_that_writes_the_endpoint_into_names_and_link_targets_is_scrubbed(
    harness: Harness, upstream: ScriptedEndpoint, tmp_path: Path
) -> None:
    url, password = hand_over(harness, upstream, tmp_path, "names")
    host_port = urllib.parse.urlsplit(url).netloc.rpartition("@")[2]
    code, out = harness.run_json("run", "--no-baseline")
    run_dir = Path(out["run_dir"])
    report = harness.report(run_dir)
    assert code == 1 and report["leak_detected"] is True
    assert any("leak_detected" in r for r in report["reasons"])
    places = {(f["file"], f["where"]) for f in report["leaks"]}
    mark = "[REDACTED:endpoint]"
    assert {(f"workspace/{mark}", "name"), (f"workspace/{mark}/{mark}.txt", "name"),
            ("workspace/endpoint-link", "link_target")} == places
    assert all(f["line"] == 0 for f in report["leaks"])
    # Renamed children first, then their folder; the link points at the masked text.
    assert (run_dir / "workspace" / mark / f"{mark}.txt").read_text() == "nothing secret in here\n"
    assert os.readlink(run_dir / "workspace" / "endpoint-link") == mark
    events = [e for e in harness.trace(run_dir) if e["event"] == "leak_detected"]
    assert [{k: e[k] for k in f} for e, f in zip(events, report["leaks"], strict=True)
            ] == report["leaks"]
    forms = [f.lower().encode() for f in (url, url.split("://", 1)[1], host_port, password,
                                          urllib.parse.quote(url, safe=""))]
    assert secret_bytes_under(harness.runs_root, forms) == []
    code, result = harness.run_json("validate", str(run_dir))
    crit = {c["id"]: c for c in result["criteria"]}
    assert crit["endpoint_not_written"]["verdict"] == "failed"
    assert crit["evidence_intact"]["verdict"] == "ok", crit["evidence_intact"]["detail"]
    assert {"workspace/odd-\\xff-name.txt", "workspace/odd-\\\\xff-name.txt"} <= set(
        report["artifacts"]), "a name that is not UTF-8 and its look-alike: two keys"


def test_a_secret_locked_behind_file_modes_is_still_found_and_scrubbed(
    harness: Harness, upstream: ScriptedEndpoint, tmp_path: Path
) -> None:
    # As a user file modes apply to (root reads anything): the Case's chmod 000 must not
    # hide the secret from the scan, nor a 0500 folder stop the scrub.
    url, _ = hand_over(harness, upstream, tmp_path, "locked")
    proc = subprocess.run(
        unprivileged([sys.executable, "-m", "core.cli", "run", "--no-baseline", "--json"]),
        env=harness.env, capture_output=True, text=True, timeout=120, cwd=ROOT)
    out = json.loads(proc.stdout)
    report = harness.report(out["run_dir"])
    assert proc.returncode == 1 and report["status"] == "failed", report["reasons"]
    assert [f["file"] for f in report["leaks"]] == ["workspace/locked/notes.txt"]
    assert secret_bytes_under(harness.runs_root, [url.lower().encode()]) == []
