"""Tasks are folders: `task.json`, the prompt, a workspace to copy, hidden checks, and an
optional `naive/` solution the fake engine writes. Adding a task is adding a folder.

Tasks come from the bundled folder (`core/run/tasks/`), or from the user's: `--tasks DIR` or
`CTO_HARNESS_TASKS_DIR` names a folder of task folders, and `--task` takes an id from it or
a path to one task folder. A task is checked when it is loaded: a missing prompt, workspace
or checks folder is one line naming the folder and the field, and the task is not run.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path, PurePosixPath

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

from core.errors import BadInput
from core.evidence.rundir import fresh_dir
from core.evidence.untrusted import NotRegularFile, describe, read_bounded

BUNDLED_TASKS_DIR = Path(__file__).parent / "tasks"
TASKS_VAR = "CTO_HARNESS_TASKS_DIR"
PROMPT_LIMIT = 4 * 2**20
"""Bytes of prompt read at most (and of task.json)."""
TASK_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
"""A task id names run folders (`<stamp>-<task>-<pid>`): letters, digits, `.`, `_`, `-`."""


class TaskError(BadInput):
    """A task that cannot be found or read; the message names it and the file."""


class Task(BaseModel):
    """`task.json`: the task's id and where, inside its folder, each part lives."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(description="The task's name; equal to its folder's name.")
    title: str = Field("", description="One line saying what the task asks (shown by "
                                       "`cto-harness tasks`).")
    prompt: str = Field("TASK.md", description="The prompt the Case is given (a file).")
    workspace: str = Field("workspace", description="The folder the Case starts from; each "
                                                    "run gets a fresh copy.")
    checks: str = Field("checks", description="The hidden checks (pytest files), copied next "
                                              "to the workspace only when checks run.")
    naive: str = Field("naive", description="Optional: the files the fake engine writes for "
                                            "the same-run baseline; they must fail the checks.")
    check_timeout_s: float = Field(120.0, gt=0, description="Seconds the checks may take.")

    _folder: Path = PrivateAttr(default=BUNDLED_TASKS_DIR)

    @field_validator("id")
    @classmethod
    def _id_is_a_name(cls, value: str) -> str:
        if not TASK_ID.fullmatch(value):
            raise ValueError("must be 1-64 letters, digits, '.', '_' or '-', starting with a "
                             "letter or digit")
        return value

    @field_validator("prompt", "workspace", "checks", "naive")
    @classmethod
    def _inside_the_folder(cls, value: str) -> str:
        path = PurePosixPath(value)
        if not value or path.is_absolute() or ".." in path.parts:
            raise ValueError("must be a relative path inside the task's folder")
        return value

    @property
    def folder(self) -> Path:
        return self._folder

    @property
    def prompt_file(self) -> Path:
        return self.folder / self.prompt

    @property
    def workspace_dir(self) -> Path:
        return self.folder / self.workspace

    @property
    def checks_dir(self) -> Path:
        return self.folder / self.checks

    @property
    def naive_dir(self) -> Path:
        return self.folder / self.naive

    @property
    def bundled(self) -> bool:
        return self.folder.parent == BUNDLED_TASKS_DIR

    def fresh_workspace(self, dest: Path) -> None:
        """A fresh copy of the task's workspace: the Case never touches anything else. A
        link (made after the task was checked) is copied as a link, never followed."""
        fresh_dir(dest)
        shutil.copytree(self.workspace_dir, dest, symlinks=True, dirs_exist_ok=True)

    def prompt_bytes(self) -> bytes:
        """The prompt, read as the untrusted file it is: not followed (no folder on the way
        either), not waited on, at most PROMPT_LIMIT bytes. TaskError naming it."""
        try:
            return read_bounded(self.prompt, PROMPT_LIMIT, beneath=self.folder)
        except OSError as exc:
            raise TaskError(f"task {self.folder}: field prompt: {self.prompt!r} cannot be read "
                            f"({exc.strerror or exc})") from None


def tasks_dir(given: str | Path | None = None) -> Path:
    """The folder of tasks: `given` (--tasks), else CTO_HARNESS_TASKS_DIR, else the
    bundled one. TaskError when it is not a readable folder, naming where it came from."""
    if given is not None and str(given) != "":
        source, folder = "--tasks", Path(given)
    elif os.environ.get(TASKS_VAR):
        source, folder = TASKS_VAR, Path(os.environ[TASKS_VAR])
    else:
        return BUNDLED_TASKS_DIR
    if not folder.exists():
        raise TaskError(f"{source}: no folder at {folder}")
    if not folder.is_dir():
        raise TaskError(f"{source}: {folder} is a file, not a folder of task folders")
    if not os.access(folder, os.R_OK | os.X_OK):
        raise TaskError(f"{source}: {folder} cannot be read (permission denied); fix its "
                        "permissions or choose another folder")
    return folder


def _is_path(ref: str) -> bool:
    """A --task with a path separator (or `.`, `~`) is a folder; otherwise an id."""
    return "/" in ref or ref.startswith((".", "~"))


def read_task(folder: Path) -> Task:
    """The task in `folder`, checked: TaskError naming the folder and the field at fault."""
    try:
        raw = read_bounded("task.json", PROMPT_LIMIT, beneath=folder)
    except FileNotFoundError:
        raise TaskError(f"task {folder}: no task.json (not a task folder)") from None
    except NotRegularFile as exc:
        raise TaskError(f"task {folder}: task.json is {exc.strerror}") from None
    except OSError as exc:
        raise TaskError(f"task {folder}: cannot read task.json ({exc.strerror})") from None
    try:
        task = Task.model_validate_json(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        raise TaskError(f"task {folder}: task.json field {where}: {err['msg']}") from None
    if task.id != folder.name:
        raise TaskError(f"task {folder}: task.json field id is {task.id!r}, but the folder is "
                        f"named {folder.name!r}; they must be the same")
    task._folder = folder
    for field, path, want_dir in (("prompt", task.prompt_file, False),
                                  ("workspace", task.workspace_dir, True),
                                  ("checks", task.checks_dir, True)):
        ok = path.is_dir() if want_dir else path.is_file()
        if not ok:
            kind = "folder" if want_dir else "file"
            raise TaskError(f"task {folder}: field {field}: no {kind} at "
                            f"{getattr(task, field)!r} in the task's folder")
    if not any(task.checks_dir.glob("test_*.py")) and not any(task.checks_dir.glob("*_test.py")):
        raise TaskError(f"task {folder}: field checks: {task.checks!r} holds no test_*.py file")
    refuse_strange_entries(folder)
    return task


def refuse_strange_entries(folder: Path) -> None:
    """TaskError naming the first link, FIFO, socket or device in a task folder. A task
    folder (a downloaded suite) is untrusted input: a link in its workspace or its naive
    solution would hand the Case, or the baseline's copy, whatever it points at (the
    endpoint's `*_FILE`, `~/.ssh`); a FIFO would stall the copy. Found by listing, nothing
    followed or opened."""
    stack = [folder]
    while stack:
        here = stack.pop()
        try:
            with os.scandir(here) as entries:
                listed = sorted(entries, key=lambda e: e.name)
        except OSError as exc:
            raise TaskError(f"task {folder}: {here.relative_to(folder) or '.'} cannot be "
                            f"listed ({exc.strerror})") from None
        for entry in listed:
            path = Path(entry.path)
            rel = path.relative_to(folder)
            if entry.is_symlink():
                raise TaskError(f"task {folder}: {rel} is {describe(path)}; a task folder "
                                "may not hold links (put the file itself there)")
            if entry.is_dir(follow_symlinks=False):
                stack.append(path)
            elif not entry.is_file(follow_symlinks=False):
                raise TaskError(f"task {folder}: {rel} is {describe(path)}; a task folder "
                                "holds only files and folders")


def load_task(ref: str, tasks: str | Path | None = None) -> Task:
    """`ref` is an id in the folder of tasks (see tasks_dir) or a path to one task folder."""
    if not ref:
        raise TaskError("--task is empty: give a task id or a path to a task folder")
    if _is_path(ref):
        folder = Path(ref).expanduser()
        if not folder.is_dir():
            raise TaskError(f"--task {ref}: no task folder there")
        return read_task(folder.resolve())
    root = tasks_dir(tasks)
    if not TASK_ID.fullmatch(ref) or not (root / ref).is_dir():
        known = ", ".join(available(root)) or "none"
        raise TaskError(f"unknown task {ref!r} in {root}; available: {known} (or give a path "
                        "to a task folder)")
    return read_task(root / ref)


class TaskListing(BaseModel):
    """One row of `cto-harness tasks`: a task folder and whether it can run."""

    id: str
    folder: str
    ok: bool
    title: str = ""
    problem: str | None = None


def task_folders(root: Path) -> list[Path]:
    """Sub-folders of the folder of tasks, by name (hidden ones and files left out)."""
    try:
        entries = sorted(root.iterdir())
    except OSError as exc:
        raise TaskError(f"folder of tasks {root} cannot be listed ({exc.strerror})") from None
    return [p for p in entries if p.is_dir() and not p.name.startswith((".", "_"))]


def available(root: Path = BUNDLED_TASKS_DIR) -> list[str]:
    try:
        return [p.name for p in task_folders(root) if (p / "task.json").is_file()]
    except TaskError:
        return []


def list_tasks(root: Path) -> list[TaskListing]:
    """Every task folder under `root`, each checked as a run would load it."""
    rows = []
    for folder in task_folders(root):
        try:
            task = read_task(folder)
        except TaskError as exc:
            rows.append(TaskListing(id=folder.name, folder=str(folder), ok=False,
                                    problem=str(exc)))
        else:
            rows.append(TaskListing(id=task.id, folder=str(folder), ok=True, title=task.title))
    return rows
