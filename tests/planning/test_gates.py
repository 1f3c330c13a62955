"""`cto-harness gates`: rules from the seed's words or a file, acceptance lines mapped onto
`validate`'s criteria, and the gates judged against real runs made here by the CLI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from core.planning.gates import CRITERIA, RulesError, match_criterion, rules_for
from core.planning.sot import parse_sot
from tests.support.harness import ROOT, SEED
from tests.support.signing import harness_setting

if TYPE_CHECKING:
    from tests.support.harness import Harness

NOT_ALONE = ["CTO-WORK-016", "CTO-WORK-020", "CTO-WORK-022", "CTO-WORK-028"]
ENDPOINT_VAR = "CTO_HARNESS_CASE_LOCAL_BASE_URL"


@pytest.fixture
def seed(tmp_path: Path) -> Path:
    """The seed copied into a folder of its own, so rules files beside it are the test's."""
    folder = tmp_path / "planning"
    folder.mkdir()
    path = folder / "cto-case-spark.md"
    shutil.copyfile(SEED, path)
    return path


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not harness_setting(k)}
    return subprocess.run([sys.executable, "-m", "core.cli", *args], env=env or base,
                          capture_output=True, text=True, timeout=60, cwd=ROOT)


def gates_json(seed: Path, runs_root: Path, *extra: str) -> dict:
    proc = cli("gates", str(seed), "--runs-root", str(runs_root), "--json", *extra)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def by_id(report: dict) -> dict[str, dict]:
    return {item["id"]: item for item in report["items"]}


def test_rules_are_derived_from_the_seed_words_when_no_file_exists(seed: Path) -> None:
    rules = rules_for(parse_sot(seed), None)
    assert rules.origin == "sot-text"
    assert "cto-case-spark.gates.toml, gates.toml" in rules.note
    assert {r.item: r.requires for r in rules.rules} == {
        "CTO-WORK-016": ["stage2-pass"],
        "CTO-WORK-022": ["endpoint-config", "stage2-pass"],
        "CTO-WORK-030": ["endpoint-config", "stage2-pass"],
    }
    assert sorted(rules.not_alone) == NOT_ALONE
    assert rules.rule("CTO-WORK-030").source == "SOT line 1, col 3279"


def test_derived_rules_merge_sentences_and_flag_conditions_they_cannot_read(
        tmp_path: Path) -> None:
    sot = tmp_path / "plan.md"
    sot.write_text("## P-1 - first\nStatus: blocked.\nAcceptance:\n"
                   "- P-1 remains blocked until explicit endpoint config exists.\n"
                   "- A configured endpoint alone does not validate P-2.\n"
                   "## Notes\n- P-1 remains blocked until a real Stage 2 pass report exists.\n"
                   "- P-2 remains blocked until the moon is full.\n")
    rules = rules_for(parse_sot(sot), None)
    assert [(r.item, r.requires, r.source) for r in rules.rules] == [
        ("P-1", ["endpoint-config", "stage2-pass"], "SOT line 4; SOT line 7")]
    assert rules.not_alone == {"P-2": "SOT line 5"}
    assert rules.unread == ['SOT line 8: "P-2 remains blocked until ..." names no evidence '
                            "kind gates knows; declare P-2 in a rules file"]


def test_a_rules_file_beside_the_sot_is_found_and_the_named_one_preferred(seed: Path) -> None:
    (seed.parent / "gates.toml").write_text('CTO-WORK-016 = ["stage2-pass"]\n')
    rules = rules_for(parse_sot(seed), None)
    assert rules.origin == "file" and rules.path == str(seed.parent / "gates.toml")
    own = seed.parent / "cto-case-spark.gates.toml"
    own.write_text('# for this SOT only\nCTO-WORK-030 = ["endpoint-config"]\n'
                   'CTO-WORK-016 = ["endpoint-config", "stage2-pass"]\n')
    rules = rules_for(parse_sot(seed), None)
    assert rules.path == str(own)
    assert {r.item: (r.requires, r.source) for r in rules.rules} == {
        "CTO-WORK-030": (["endpoint-config"], f"{own}:2"),
        "CTO-WORK-016": (["endpoint-config", "stage2-pass"], f"{own}:3"),
    }
    assert sorted(rules.not_alone) == NOT_ALONE, "the SOT's not-alone rule still applies"
    explicit = seed.parent / "other.toml"
    explicit.write_text('CTO-WORK-028 = ["stage2-pass"]\n')
    assert [r.item for r in rules_for(parse_sot(seed), explicit).rules] == ["CTO-WORK-028"]


@pytest.mark.parametrize(("text", "message"), [
    ('CTO-WORK-020 = ["endpoint-config"]\n',
     'rules.toml:1: CTO-WORK-020 = ["endpoint-config"] contradicts the SOT (SOT line 1, '
     'col 1275): a configured endpoint alone does not validate CTO-WORK-020'),
    ('CTO-WORK-016 = ["stage2-pass"]\n\nCTO-WORK-022 = ["endpoint-config"]\n',
     "rules.toml:3: CTO-WORK-022 = [\"endpoint-config\"] contradicts the SOT"),
    ('CTO-WORK-016 = "stage2-pass"\n', "rules.toml:1: CTO-WORK-016 must be a non-empty list"),
    ("CTO-WORK-016 = []\n", "rules.toml:1: CTO-WORK-016 must be a non-empty list"),
    ('CTO-WORK-016 = ["stage3"]\n', "rules.toml:1: CTO-WORK-016: unknown evidence kind "
                                    "'stage3'; known: endpoint-config, stage2-pass"),
    ('work16 = ["stage2-pass"]\n', "rules.toml:1: `work16` is not a work-item id"),
    ('CTO-WORK-016 = ["stage2-pass"\n', "rules.toml: not valid TOML"),
])
def test_bad_rules_files_are_refused_naming_file_and_line(seed: Path, text: str,
                                                          message: str) -> None:
    rules = seed.parent / "rules.toml"
    rules.write_text(text)
    with pytest.raises(RulesError) as err:
        rules_for(parse_sot(seed), rules)
    assert str(err.value).startswith(str(rules))
    assert message in str(err.value)


def test_acceptance_lines_map_one_to_one_onto_validate_criteria() -> None:
    lines = [ln.text for ln in parse_sot(SEED).items[0].acceptance]
    mapped = {text: match_criterion(text) for text in lines}
    assert sorted(cid for cid in mapped.values() if cid) == sorted(CRITERIA)
    for cid, text in CRITERIA.items():
        assert mapped[text] == cid, "word for word the seed's line"
        assert match_criterion(text.replace("`", "").upper()) == cid
    assert [text for text, cid in mapped.items() if cid is None] == [
        lines[9], lines[10], lines[12], lines[13]]
    assert match_criterion('**Missing endpoint config**  blocks before "case_process_started"'
                           ) == "blocked_before_case"
    assert match_criterion("Harness report proves `case_model`: `qwen-local`.") is None
    assert match_criterion("Missing endpoint config blocks before `case_process_exited`.") is None


def test_gates_without_runs_lists_every_item_and_never_edits_the_sot(seed: Path,
                                                                     tmp_path: Path) -> None:
    before = seed.read_bytes(), seed.stat().st_mtime_ns
    proc = cli("gates", str(seed), "--runs-root", str(tmp_path / "no-runs"))
    assert proc.returncode == 0, proc.stderr
    assert "rules  derived from the SOT's own words (no rules file" in proc.stdout
    rows = [line.split()[:4] for line in proc.stdout.splitlines()
            if line.startswith("CTO-WORK-") and " acceptance " not in line]
    assert rows == [["CTO-WORK-030", "blocked", "still", "blocked"],
                    ["CTO-WORK-016", "(not", "here)", "still"],
                    ["CTO-WORK-020", "(not", "here)", "no"],
                    ["CTO-WORK-022", "(not", "here)", "still"],
                    ["CTO-WORK-028", "(not", "here)", "no"]]
    report = gates_json(seed, tmp_path / "no-runs")
    assert report["flattened"] and report["latest_real_run"] is None and report["runs"] == []
    rows = report["acceptance"]["CTO-WORK-030"]
    assert len(rows) == 14 and all(r["verdict"] is None for r in rows)
    assert rows[10]["detail"].startswith("not provable by a run: proven by "
                                         "tests/test_no_target_repo.py")
    assert (seed.read_bytes(), seed.stat().st_mtime_ns) == before
    assert sorted(p.name for p in seed.parent.iterdir()) == ["cto-case-spark.md"]


@pytest.mark.parametrize(("name", "content", "message"), [
    ("absent.md", None, "absent.md: cannot read the SOT file"),
    ("dup.md", "## A-1 - x\n## A-1 - y\n", "dup.md:2: duplicate item id A-1"),
    ("empty.md", "# Nothing\n", "empty.md: no work items"),
])
def test_bad_sot_is_one_line_and_exit_2(tmp_path: Path, name: str, content: str | None,
                                        message: str) -> None:
    if content is not None:
        (tmp_path / name).write_text(content)
    proc = cli("gates", str(tmp_path / name), "--runs-root", str(tmp_path))
    assert proc.returncode == 2
    assert proc.stdout == "" and "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1 and message in proc.stderr


def test_a_bad_rules_file_is_exit_2(seed: Path, tmp_path: Path) -> None:
    (seed.parent / "gates.toml").write_text('CTO-WORK-028 = ["endpoint-config"]\n')
    proc = cli("gates", str(seed), "--runs-root", str(tmp_path))
    assert proc.returncode == 2 and "gates.toml:1: CTO-WORK-028" in proc.stderr


def make_run(harness: Harness, *args: str, env: dict[str, str] | None = None) -> dict:
    proc = subprocess.run([sys.executable, "-m", "core.cli", "run", "--runs-root",
                           str(harness.runs_root), "--json", *args],
                          env=env or harness.env, capture_output=True, text=True,
                          timeout=120, cwd=ROOT)
    assert "Traceback" not in proc.stderr, proc.stderr
    return json.loads(proc.stdout)


def verdicts(report: dict) -> dict[str, str | None]:
    return {r["criterion"]: r["verdict"] for r in report["acceptance"]["CTO-WORK-030"]
            if r["criterion"]}


@pytest.mark.slow
def test_gates_follow_real_runs_blocked_demo_fallback_pass_tampered(
        harness: Harness, seed: Path) -> None:
    before = seed.read_bytes()
    root = harness.runs_root

    blocked_env = {k: v for k, v in harness.env.items() if k != ENDPOINT_VAR}
    blocked = make_run(harness, env=blocked_env)
    assert blocked["status"] == "blocked"
    report = gates_json(seed, root)
    assert report["latest_real_run"] == blocked["run_id"]
    item = by_id(report)["CTO-WORK-030"]
    assert item["could_be"] == "still blocked"
    assert item["missing"] == ["endpoint-config", "stage2-pass"]
    v = verdicts(report)
    assert v["endpoint_config_supplied"] == "failed"
    assert v["blocked_before_case"] == "ok" and v["unavailable_marker"] == "ok"
    assert v["endpoint_not_written"] == "ok" and v["provider_proven"] == "not_applicable"

    demo = make_run(harness, "--demo", "--no-baseline")
    assert demo["demo"] is True
    report = gates_json(seed, root)
    assert report["latest_real_run"] == blocked["run_id"], "a demo run is never the real one"
    [demo_row] = [r for r in report["runs"] if r["run_id"] == demo["run_id"]]
    assert demo_row["proves"] == [] and "demo" in demo_row["note"]
    assert by_id(report)["CTO-WORK-030"]["could_be"] == "still blocked"

    fallback_env = dict(harness.env, CTO_HARNESS_CASE_ARGS="--mode claude --task-file "
                        "{task_file} --workspace {workspace} --model {model}")
    fallback = make_run(harness, "--no-baseline", env=fallback_env)
    assert fallback["status"] != "passed"
    report = gates_json(seed, root)
    assert report["latest_real_run"] == fallback["run_id"]
    assert verdicts(report)["no_fallback"] == "failed"
    items = by_id(report)
    for item_id in ("CTO-WORK-016", "CTO-WORK-022", "CTO-WORK-030"):
        assert items[item_id]["could_be"] == "still blocked", item_id
    assert items["CTO-WORK-022"]["proven_by"] == {"endpoint-config": fallback["run_id"]}
    assert items["CTO-WORK-022"]["missing"] == ["stage2-pass"], "endpoint alone never enough"
    rules = seed.parent / "loose.toml"
    rules.write_text('CTO-WORK-030 = ["endpoint-config"]\n')
    loose = by_id(gates_json(seed, root, "--rules", str(rules)))
    assert loose["CTO-WORK-030"]["could_be"] == "unblockable"
    assert loose["CTO-WORK-022"]["could_be"] == "no rule"

    passed = make_run(harness)
    assert passed["status"] == "passed" and passed["stage2_passed"]
    report = gates_json(seed, root)
    assert report["latest_real_run"] == passed["run_id"]
    items = by_id(report)
    for item_id in ("CTO-WORK-016", "CTO-WORK-022", "CTO-WORK-030"):
        assert items[item_id]["could_be"] == "unblockable", item_id
    assert items["CTO-WORK-030"]["proven_by"] == {"endpoint-config": passed["run_id"],
                                                  "stage2-pass": passed["run_id"]}
    assert items["CTO-WORK-020"]["could_be"] == "no rule"
    v = verdicts(report)
    assert {cid for cid, verdict in v.items() if verdict == "ok"} == set(CRITERIA) - {
        "blocked_before_case", "unavailable_marker"}
    text = cli("gates", str(seed), "--runs-root", str(root)).stdout
    assert "the evidence unblocks it; the SOT still says blocked" in text

    log = Path(passed["run_dir"]) / "backend" / "case.log"
    log.write_bytes(log.read_bytes() + b"edited afterwards\n")
    report = gates_json(seed, root)
    assert by_id(report)["CTO-WORK-030"]["could_be"] == "still blocked"
    [tampered] = [r for r in report["runs"] if r["run_id"] == passed["run_id"]]
    assert tampered["proves"] == [] and "case.log" in tampered["note"]
    assert any("case.log" in p for p in report["latest_real_problems"])
    assert seed.read_bytes() == before
