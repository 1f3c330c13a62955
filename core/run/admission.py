"""The admission file: which provider/model pairs a Case run may use.

A run may only claim a model that someone admitted in writing. The file is small JSON
edited by hand, so every way it can be wrong becomes a one-line verdict naming the file and
the line/column or field, never a traceback.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from core.evidence.models import AdmissionStatus

ADMISSION_VAR = "CTO_HARNESS_CASE_MODEL_ADMISSION_FILE"


class AdmissionEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    provider: str = Field(min_length=1)
    model: str = Field(min_length=1)
    status: Literal["admitted", "pending", "revoked"]
    expires: datetime | None = None
    """ISO-8601; a date alone means the start of that day, a time without offset is UTC."""

    def expired(self, now: datetime) -> bool:
        if self.expires is None:
            return False
        when = self.expires
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return when <= now


class AdmissionFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    admitted: list[AdmissionEntry]


@dataclass(frozen=True)
class AdmissionResult:
    status: AdmissionStatus
    detail: str


def example_entry(provider: str, model: str) -> str:
    entry = {"provider": provider, "model": model, "status": "admitted", "expires": None}
    return json.dumps({"admitted": [entry]})


def _field(loc: tuple[int | str, ...]) -> str:
    """`('admitted', 0, 'status')` -> `admitted[0].status`."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def load_admission(path: Path) -> AdmissionFile | AdmissionResult:
    """The parsed file, or the `invalid_file` verdict saying exactly where it is wrong."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return AdmissionResult("invalid_file", f"admission file {path} is not UTF-8 text")
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        return AdmissionResult("invalid_file", f"cannot read admission file {path} ({reason})")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        return AdmissionResult(
            "invalid_file",
            f"admission file {path} is not valid JSON: {exc.msg} "
            f"at line {exc.lineno}, column {exc.colno}",
        )
    try:
        parsed = AdmissionFile.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        return AdmissionResult(
            "invalid_file",
            f"admission file {path}: field {_field(first['loc'])}: {first['msg']}{more}",
        )
    seen: dict[tuple[str, str], int] = {}
    for index, entry in enumerate(parsed.admitted):
        key = (entry.provider, entry.model)
        if key in seen:
            return AdmissionResult(
                "invalid_file",
                f"admission file {path}: admitted[{seen[key]}] and admitted[{index}] both list "
                f"{entry.provider}/{entry.model}; keep one",
            )
        seen[key] = index
    return parsed


def check_admission(
    path: Path | None, provider: str, model: str, *, now: datetime | None = None
) -> AdmissionResult:
    """Whether `provider`/`model` is admitted by the file at `path` (None: not configured)."""
    pair = f"{provider}/{model}"
    if path is None:
        return AdmissionResult(
            "missing_file",
            f"{ADMISSION_VAR} is not set; point it at a JSON file such as "
            f"{example_entry(provider, model)}",
        )
    if not path.exists():
        return AdmissionResult("missing_file", f"admission file {path} does not exist")
    loaded = load_admission(path)
    if isinstance(loaded, AdmissionResult):
        return loaded
    entry = next((e for e in loaded.admitted if (e.provider, e.model) == (provider, model)), None)
    if entry is None:
        return AdmissionResult("not_admitted", f"admission file {path} does not list {pair}")
    if entry.status == "pending":
        return AdmissionResult("pending", f"{pair} is pending admission in {path}")
    if entry.status == "revoked":
        return AdmissionResult("revoked", f"{pair} was revoked in {path}")
    if entry.expires is not None and entry.expired(now or datetime.now(UTC)):
        return AdmissionResult(
            "expired", f"admission of {pair} in {path} expired at {entry.expires.isoformat()}"
        )
    until = f" until {entry.expires.isoformat()}" if entry.expires else ""
    return AdmissionResult("admitted", f"{pair} admitted by {path}{until}")
