"""The admission file: every status, and every malformed file named to its line or field."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from core.run.admission import check_admission

PROVIDER, MODEL = "qwen-local", "qwen3.6-35b-a3b"


def write(tmp_path: Path, entries: list[dict]) -> Path:
    return write_raw(tmp_path, {"admitted": entries})


def write_raw(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "admission.json"
    path.write_text(json.dumps(data, indent=2))
    return path


def entry(status: str = "admitted", expires: str | None = None, **over: str) -> dict:
    return {"provider": PROVIDER, "model": MODEL, "status": status, "expires": expires, **over}


def test_admitted_without_expiry(tmp_path: Path) -> None:
    result = check_admission(write(tmp_path, [entry()]), PROVIDER, MODEL)
    assert result.status == "admitted"
    assert f"{PROVIDER}/{MODEL}" in result.detail


def test_admitted_until_a_future_date(tmp_path: Path) -> None:
    later = (datetime.now(UTC) + timedelta(days=30)).isoformat()
    result = check_admission(write(tmp_path, [entry(expires=later)]), PROVIDER, MODEL)
    assert result.status == "admitted"
    assert "until" in result.detail


@pytest.mark.parametrize("expires", ["2020-01-01", "2020-01-01T00:00:00Z", "2020-01-01T08:00"])
def test_past_expiry_is_expired(tmp_path: Path, expires: str) -> None:
    result = check_admission(write(tmp_path, [entry(expires=expires)]), PROVIDER, MODEL)
    assert result.status == "expired"
    assert "2020-01-01" in result.detail


def test_expiry_is_compared_with_the_given_time(tmp_path: Path) -> None:
    path = write(tmp_path, [entry(expires="2030-06-01T12:00:00+02:00")])
    before = datetime(2030, 6, 1, 9, 59, tzinfo=UTC)
    after = datetime(2030, 6, 1, 10, 0, tzinfo=UTC)
    assert check_admission(path, PROVIDER, MODEL, now=before).status == "admitted"
    assert check_admission(path, PROVIDER, MODEL, now=after).status == "expired"


@pytest.mark.parametrize("status", ["pending", "revoked"])
def test_pending_and_revoked(tmp_path: Path, status: str) -> None:
    result = check_admission(write(tmp_path, [entry(status)]), PROVIDER, MODEL)
    assert result.status == status


def test_other_pairs_do_not_admit_this_one(tmp_path: Path) -> None:
    path = write(tmp_path, [entry(model="llama-3-8b"), entry(provider="hosted")])
    result = check_admission(path, PROVIDER, MODEL)
    assert result.status == "not_admitted"
    assert str(path) in result.detail and MODEL in result.detail


def test_no_file_configured_says_which_variable_and_shows_an_example() -> None:
    result = check_admission(None, PROVIDER, MODEL)
    assert result.status == "missing_file"
    assert "CTO_HARNESS_CASE_MODEL_ADMISSION_FILE" in result.detail
    assert '"status": "admitted"' in result.detail


def test_a_file_that_does_not_exist(tmp_path: Path) -> None:
    path = tmp_path / "nope.json"
    result = check_admission(path, PROVIDER, MODEL)
    assert result.status == "missing_file"
    assert str(path) in result.detail


def test_json_syntax_error_names_file_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "admission.json"
    path.write_text('{"admitted": [\n  {"provider": "qwen-local",\n   "model": "x",}\n]}\n')
    result = check_admission(path, PROVIDER, MODEL)
    assert result.status == "invalid_file"
    assert str(path) in result.detail
    assert "line 3, column 17" in result.detail


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"admitted": [entry(status="approved")]}, "admitted[0].status"),
        ({"admitted": [entry(), {"provider": PROVIDER, "status": "pending"}]}, "admitted[1].model"),
        ({"admitted": [entry(expires="next tuesday")]}, "admitted[0].expires"),
        ({"admitted": [{**entry(), "expiry": None}]}, "admitted[0].expiry"),
        ({"admited": []}, "admitted"),
        ({"admitted": {"provider": PROVIDER}}, "admitted"),
        ([entry()], "(top level)"),
    ],
)
def test_schema_errors_name_the_field(tmp_path: Path, data: object, field: str) -> None:
    path = write_raw(tmp_path, data)
    result = check_admission(path, PROVIDER, MODEL)
    assert result.status == "invalid_file"
    assert str(path) in result.detail
    assert f"field {field}:" in result.detail


def test_the_same_pair_twice_is_ambiguous(tmp_path: Path) -> None:
    path = write(tmp_path, [entry(), entry(model="other"), entry("revoked")])
    result = check_admission(path, PROVIDER, MODEL)
    assert result.status == "invalid_file"
    assert "admitted[0] and admitted[2]" in result.detail


def test_unreadable_files_are_invalid_not_a_crash(tmp_path: Path) -> None:
    binary = tmp_path / "admission.json"
    binary.write_bytes(b'{"admitted": ["\xff\xfe"]}')
    assert check_admission(binary, PROVIDER, MODEL).status == "invalid_file"
    folder = tmp_path / "folder.json"
    folder.mkdir()
    result = check_admission(folder, PROVIDER, MODEL)
    assert result.status == "invalid_file"
    assert str(folder) in result.detail
