"""Tasks are folders: `task.json`, the prompt, a workspace to copy, hidden checks, and an
optional `naive/` solution the fake engine writes. Adding a task is adding a folder."""

from __future__ import annotations

import shutil
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from core.rundir import fresh_dir

TASKS_DIR = Path(__file__).parent / "tasks"


class TaskError(Exception):
    """A task that cannot be found or read; the message names it and the file."""


class Task(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    prompt: str = "TASK.md"
    workspace: str = "workspace"
    checks: str = "checks"
    naive: str = "naive"
    check_timeout_s: float = 120.0

    @property
    def folder(self) -> Path:
        return TASKS_DIR / self.id

    @property
    def prompt_file(self) -> Path:
        return self.folder / self.prompt

    @property
    def checks_dir(self) -> Path:
        return self.folder / self.checks

    @property
    def naive_dir(self) -> Path:
        return self.folder / self.naive

    def fresh_workspace(self, dest: Path) -> None:
        """A fresh copy of the task's workspace: the Case never touches anything else."""
        fresh_dir(dest)
        shutil.copytree(self.folder / self.workspace, dest, dirs_exist_ok=True)


def available() -> list[str]:
    return sorted(p.name for p in TASKS_DIR.iterdir() if (p / "task.json").is_file())


def load_task(task_id: str) -> Task:
    folder = TASKS_DIR / task_id
    if "/" in task_id or task_id.startswith(".") or not (folder / "task.json").is_file():
        raise TaskError(f"unknown task {task_id!r}; available: {', '.join(available())}")
    try:
        task = Task.model_validate_json((folder / "task.json").read_bytes())
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        raise TaskError(f"{folder / 'task.json'}: field {where}: {err['msg']}") from None
    if task.id != task_id:
        raise TaskError(f"{folder / 'task.json'}: field id is {task.id!r}, expected {task_id!r}")
    return task
