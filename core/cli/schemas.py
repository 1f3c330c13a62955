"""`cto-harness schema`: the JSON Schema of every file the harness writes or reads.

Here, at the top, because it gathers models from several layers (the run directory's from
core.evidence, task.json's from core.run, job.json's from core.jobs); in core.evidence it had
to import the upper two lazily (a models -> task -> rundir -> models circle)."""

from __future__ import annotations

from typing import Any

from core.evidence.gateway_check import GatewayRecord
from core.evidence.models import (
    Manifest,
    Readiness,
    RelayRecord,
    Report,
    TraceEvent,
)
from core.jobs.model import Job
from core.run.task import Task


def schemas() -> dict[str, dict[str, Any]]:
    """JSON Schema of the run-directory files, task.json and job.json, for other tools."""
    return {
        "manifest": Manifest.model_json_schema(),
        "trace_event": TraceEvent.model_json_schema(),
        "report": Report.model_json_schema(),
        "relay_record": RelayRecord.model_json_schema(),
        "gateway_record": GatewayRecord.model_json_schema(),
        "readiness": Readiness.model_json_schema(),
        "task": Task.model_json_schema(),
        "job": Job.model_json_schema(),
    }
