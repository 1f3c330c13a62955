"""The SOT parser on the seed itself (flattened), its multi-line form, and malformed files."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.planning.sot import Section, SotError, SotLine, parse_sot
from tests.support.harness import SEED

"""A byte-exact copy of ../shared/seed/000_83b213521af4b263.txt: one line, newlines flattened."""

SEED_MULTILINE = """\
---
title: CTO Case Spark Endpoint Config Issues
status: draft
lifecycle_classification: sot
owner: jp
created: 2026-06-01
last_reviewed: 2026-06-01
core_promotion_status: not-promoted
route: cto
---
# CTO Case Spark Endpoint Config Issues
Local planning SOT only. Not a Core Protocol. Not active Core authority.
## CTO-WORK-030 - Spark Local Provider Endpoint Config
Status: blocked.
Supply explicit Spark OpenAI-compatible endpoint config for the selected `qwen-local` / \
`qwen3.6-35b-a3b` Case path, without storing endpoint secrets in SOT or commits.
Acceptance:
- `CTO_HARNESS_CASE_LOCAL_BASE_URL` is supplied at runtime for the real Qwen Case Stage 2 retry.
- Missing endpoint config blocks before `case_process_started`.
- Missing endpoint config writes `backend/provider-local-config-unavailable.txt`.
- Endpoint values are not written to SOT, task file, argv, backend logs, report, trace, \
generated config, or commit.
- Harness report proves `case_model_provider`: `qwen-local`.
- Harness report proves `case_model`: `qwen3.6-35b-a3b`.
- Harness report proves `case_model_admission_status`: `admitted`.
- Harness report proves no fallback to `anthropic` or `claude-sonnet-4-6`.
- Real Case Stage 2 pass evidence exists only through the Harness Evidence Interface.
- A configured endpoint alone does not validate `CTO-WORK-016`, `CTO-WORK-020`, \
`CTO-WORK-022`, or `CTO-WORK-028`.
- No Target Repository path may be inspected or copied.
- Same-run fake baseline comparison remains required for any pass claim.
- `CTO-WORK-016` remains blocked until real Case Stage 2 pass evidence exists.
- `CTO-WORK-022` remains blocked until explicit endpoint config and real Case Stage 2 pass \
evidence exist.
Blocked by:
- Spark endpoint availability.
- Runtime-safe way to provide `CTO_HARNESS_CASE_LOCAL_BASE_URL` without recording secret values.
Current evidence:
- Non-secret readiness check on 2026-06-01 showed `CTO_HARNESS_CASE_LOCAL_BASE_URL=missing`.
- Existing Hermes harness blocks missing local provider config before `case_process_started`.
## Hermes Case Qwen Loop Evidence - 2026-06-01
- Hermes commit: `6c453ee Add Case Qwen loop entrypoint`.
- New command: `harness/evals/case-qwen-loop.sh --json`.
- The command sets fixed non-secret Case/Qwen routing knobs for `qwen-local` / `qwen3.6-35b-a3b`.
- The command requires `CTO_HARNESS_CASE_BIN` and `CTO_HARNESS_CASE_MODEL_ADMISSION_FILE` from \
the caller.
- The command delegates to `run-case.sh --engine case` so runtime artifacts keep the Harness \
Evidence Interface shape.
- The command must not print `CTO_HARNESS_CASE_LOCAL_BASE_URL`.
- Focused validator passed: `python3 harness/runner/validate-case-provider-adapter.py \
--harness-root harness --json`.
- Focused validator artifact: \
`/home/svrnty/.hermes/profiles/cto-planb/harness-runs/20260601T022022Z-r1-string-slugify-2694767`.
- Pre-merge aggregate validator passed: `harness/evals/health.sh --json`.
- Pre-merge aggregate validator artifact: \
`/home/svrnty/.hermes/profiles/cto-planb/harness-runs/20260601T022036Z-r1-string-slugify-2695716`.
- Post-merge aggregate validator passed: `harness/evals/health.sh --json`.
- Post-merge aggregate validator artifact: \
`/home/svrnty/.hermes/profiles/cto-planb/harness-runs/20260601T022100Z-r1-string-slugify-2697229`.
- `CTO-WORK-030` remains blocked until `CTO_HARNESS_CASE_LOCAL_BASE_URL` is supplied at runtime \
and a real Stage 2 pass report exists.
"""


def write(tmp_path: Path, text: str, name: str = "sot.md") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def shape(section: Section) -> dict:
    """A section without positions, to compare the two forms of one document."""
    def texts(lines: list[SotLine]) -> list[str]:
        return [ln.text for ln in lines]
    return {"id": section.id, "title": section.title, "status": section.status,
            "acceptance": texts(section.acceptance), "blocked_by": texts(section.blocked_by),
            "current_evidence": texts(section.current_evidence), "prose": texts(section.prose),
            "lists": {k: texts(v) for k, v in section.lists.items()}}


def test_the_multiline_literal_is_the_seed_with_its_newlines_back() -> None:
    assert " ".join(SEED_MULTILINE.splitlines()) == SEED.read_text(encoding="utf-8").strip()


def test_seed_parses_as_flattened_with_front_matter_item_and_evidence_section() -> None:
    sot = parse_sot(SEED)
    assert sot.flattened
    assert sot.front_matter == {
        "title": "CTO Case Spark Endpoint Config Issues", "status": "draft",
        "lifecycle_classification": "sot", "owner": "jp", "created": "2026-06-01",
        "last_reviewed": "2026-06-01", "core_promotion_status": "not-promoted", "route": "cto"}
    assert sot.title == "CTO Case Spark Endpoint Config Issues"
    assert [p.text for p in sot.prose] == [
        "Local planning SOT only. Not a Core Protocol. Not active Core authority."]
    assert [it.id for it in sot.items] == ["CTO-WORK-030"]
    item = sot.items[0]
    assert item.title == "Spark Local Provider Endpoint Config"
    assert item.status == "blocked"
    assert len(item.acceptance) == 14
    assert item.acceptance[0].text == ("`CTO_HARNESS_CASE_LOCAL_BASE_URL` is supplied at runtime "
                                       "for the real Qwen Case Stage 2 retry.")
    assert item.acceptance[-1].text.startswith("`CTO-WORK-022` remains blocked until explicit")
    assert item.blocked_by[0].text == "Spark endpoint availability."
    assert len(item.blocked_by) == 2 and len(item.current_evidence) == 2
    assert item.prose[0].text.startswith("Supply explicit Spark OpenAI-compatible")
    [evidence] = sot.sections
    assert evidence.title == "Hermes Case Qwen Loop Evidence - 2026-06-01"
    assert evidence.id is None and len(evidence.lists[""]) == 13
    assert evidence.lists[""][-1].text.startswith("`CTO-WORK-030` remains blocked until")


def test_flattened_positions_point_at_the_text_in_the_file() -> None:
    raw = SEED.read_text(encoding="utf-8")
    sot = parse_sot(SEED)
    lines = [*sot.prose, *(ln for s in [*sot.items, *sot.sections] for ln in s.all_lines())]
    assert len(lines) == 33
    for ln in lines:
        assert ln.line == 1
        assert raw[ln.column - 1:].startswith(ln.text), ln
    item = sot.items[0]
    assert raw[item.column - 1:].startswith(f"## {item.heading} Status:")
    assert raw[item.status_line.column - 1:].startswith("Status: blocked.")


def test_multiline_form_reads_the_same_as_the_flattened_seed(tmp_path: Path) -> None:
    flat = parse_sot(SEED)
    multi = parse_sot(write(tmp_path, SEED_MULTILINE))
    assert not multi.flattened
    assert multi.front_matter == flat.front_matter and multi.title == flat.title
    assert [shape(s) for s in multi.items] == [shape(s) for s in flat.items]
    assert [shape(s) for s in multi.sections] == [shape(s) for s in flat.sections]
    assert multi.items[0].line == 13 and multi.items[0].acceptance[1].line == 18


def test_blank_lines_crlf_and_bom_change_nothing(tmp_path: Path) -> None:
    spaced = SEED_MULTILINE.replace("\nAcceptance:\n", "\n\nAcceptance:\n\n").replace(
        "\n## ", "\n\n## ")
    path = tmp_path / "crlf.md"
    path.write_bytes(b"\xef\xbb\xbf" + spaced.replace("\n", "\r\n").encode())
    sot = parse_sot(path)
    assert [shape(s) for s in sot.items] == [shape(s) for s in parse_sot(SEED).items]


def test_tolerates_missing_sections_extra_prose_and_other_lists(tmp_path: Path) -> None:
    sot = parse_sot(write(tmp_path, """\
Some notes before any heading.

## ABC-1 - No status, no lists

Just prose here.
### A sub-heading stays inside the item
More prose.

## ABC-2: colon separated
Status: In progress. Waiting for hardware.
Notes:
- first note
  continued on the next line
* second note
Owner: jp
- a bullet after prose belongs to no label

## Plain section
- loose bullet
"""))
    assert not sot.flattened and sot.front_matter == {} and sot.title is None
    assert [p.text for p in sot.prose] == ["Some notes before any heading."]
    first, second = sot.items
    assert first.status is None and first.acceptance == [] and first.blocked_by == []
    assert [p.text for p in first.prose] == [
        "Just prose here.", "A sub-heading stays inside the item", "More prose."]
    assert second.title == "colon separated" and second.status == "in progress"
    assert [p.text for p in second.prose] == ["Waiting for hardware.", "Owner: jp"]
    assert [n.text for n in second.lists["notes"]] == [
        "first note continued on the next line", "second note"]
    assert [n.text for n in second.lists[""]] == ["a bullet after prose belongs to no label"]
    assert sot.sections[0].title == "Plain section"


def test_front_matter_list_values_and_comments(tmp_path: Path) -> None:
    sot = parse_sot(write(tmp_path, """\
---
# a comment
title: "Quoted title"
tags:
  - one
  - two
---
## X-1 - item
"""))
    assert sot.front_matter == {"title": "Quoted title", "tags": "one, two"}


def test_a_multiline_file_is_never_re_split(tmp_path: Path) -> None:
    sot = parse_sot(write(tmp_path, "## A-1 - dash - in title\nSee ## 2 - and - more.\n"))
    assert not sot.flattened
    assert sot.items[0].title == "dash - in title"
    assert [p.text for p in sot.items[0].prose] == ["See ## 2 - and - more."]


def test_flattened_cuts_never_fall_inside_code_spans(tmp_path: Path) -> None:
    sot = parse_sot(write(tmp_path, "--- title: T --- # T ## X-7 - Dash `a - b ## c` title "
                                    "Status: open. Acceptance: - run `x - y` twice - done"))
    item = sot.items[0]
    assert sot.flattened and item.title == "Dash `a - b ## c` title"
    assert item.status == "open"
    assert [a.text for a in item.acceptance] == ["run `x - y` twice", "done"]


def test_flattened_heading_without_front_matter_title_ends_at_its_first_sentence(
        tmp_path: Path) -> None:
    sot = parse_sot(write(tmp_path, "# Plan for the quarter. Keep it short. ## Q-1 - Go "
                                    "Status: done."))
    assert sot.title == "Plan for the quarter."
    assert [p.text for p in sot.prose] == ["Keep it short."]
    assert sot.items[0].status == "done"


@pytest.mark.parametrize(("text", "message"), [
    ("---\ntitle: x\n## A-1 - t\n", "sot.md:1: front matter opened here is never closed"),
    ("---\ntitle: x\nnot a pair\n---\n", "sot.md:3: front matter line is not `key: value`"),
    ("---\na: 1\na: 2\n---\n", "sot.md:3: front matter key `a` appears twice (first at line 2)"),
    ("## A-1 - one\nStatus: open.\n\n## A-1 - again\n",
     "sot.md:4: duplicate item id A-1 (first at line 1)"),
    ("## A-1 - one\n## - no id\n", "sot.md:2: heading `- no id` has no item id"),
    ("## A-1 - one\n## Looks like an item\nStatus: blocked.\n",
     "sot.md:3: `Status:` belongs to a work item, but the heading at line 2 "
     "(`Looks like an item`) has no item id"),
    ("## Evidence\nAcceptance:\n- x\n", "sot.md:2: `Acceptance:` belongs to a work item"),
    ("Status: blocked.\n## A-1 - one\n", "sot.md:1: `Status:` comes before any work-item"),
    ("## A-1 - one\nStatus: open.\nStatus: done.\n",
     "sot.md:3: second `Status:` for A-1 (first at line 2)"),
    ("## A-1 - one\nStatus:   \n", "sot.md:2: `Status:` of A-1 has no value"),
    ("## A-1 - one\n##\n", "sot.md:2: heading has no text"),
    ("--- title: T --- ## A-1 - one Status: open. ## A-1 - two",
     "sot.md:1:45: duplicate item id A-1 (first at line 1, col 18)"),
    ("--- title: T --- ## Notes Status: open.",
     "sot.md:1:27: `Status:` belongs to a work item, but the heading at line 1, col 18"),
])
def test_malformed_files_fail_with_file_and_line(tmp_path: Path, text: str,
                                                 message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(SotError) as err:
        parse_sot(path)
    assert str(err.value).startswith(str(tmp_path / message.split(":")[0]))
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_unreadable_files_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(SotError, match=r"missing\.md: cannot read the SOT file \(No such file"):
        parse_sot(tmp_path / "missing.md")
    with pytest.raises(SotError, match=r": cannot read the SOT file \(Is a directory\)"):
        parse_sot(tmp_path)
    path = tmp_path / "latin1.md"
    path.write_bytes("## A-1 - ok\nStatus: caf\xe9\n".encode("latin-1"))
    with pytest.raises(SotError, match=r"latin1\.md:2: not UTF-8 text"):
        parse_sot(path)


def test_parsing_never_writes_the_file() -> None:
    before = SEED.read_bytes(), SEED.stat().st_mtime_ns
    parse_sot(SEED)
    assert (SEED.read_bytes(), SEED.stat().st_mtime_ns) == before
