"""The cgroup that bounds one run's memory and processes (core/sandbox/limits.py decides
the limits and watches the disk; this is the kernel's side of them).

cgroup v1 where the machine has it (the `memory` and `pids` hierarchies, writable as
root), v2 where a subtree with both controllers is delegated (or the root cgroup as root).
A cgroup's name carries its harness's pid and start time, so the next run on the machine
removes those whose harness was killed outright (`_sweep`).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from core.errors import HarnessError
from core.evidence.liveness import process_alive, process_start_ticks

CGROUP_FS = Path("/sys/fs/cgroup")
PREFIX = "cto-harness-"
KILL_ROUNDS = 50
Mode = Literal["cgroup-v1", "cgroup-v2", "off"]
_SEQ = itertools.count(1)


class LimitsUnavailable(HarnessError):
    """No limit can be set here; the message says what the machine lacks."""


def _own_paths() -> dict[str, str]:
    """This process's cgroup per v1 controller, and `""` for the v2 one."""
    found: dict[str, str] = {}
    with open("/proc/self/cgroup") as fh:
        for line in fh:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            for name in controllers.split(",") if controllers else [""]:
                found[name] = path
    return found


def _write(path: Path, value: str) -> None:
    with open(path, "w") as fh:
        fh.write(value)


def _counter(path: Path, key: str) -> int:
    """`key N` from a flat-keyed cgroup file; 0 when absent or unreadable."""
    try:
        for line in path.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return int(value)
    except (OSError, ValueError):
        pass
    return 0


@dataclass
class Cgroup:
    """One run's cgroup: a folder per v1 hierarchy (memory, pids), or one v2 folder."""

    mode: Mode
    folders: list[Path]
    memory: Path
    """The folder holding the memory files (v1: the memory hierarchy's)."""
    pids: Path

    @property
    def procs(self) -> list[Path]:
        return [f / "cgroup.procs" for f in self.folders]

    def counters(self) -> tuple[int, int]:
        """(OOM kills, refused forks) so far."""
        oom = self.memory / ("memory.oom_control" if self.mode == "cgroup-v1"
                             else "memory.events")
        return _counter(oom, "oom_kill"), _counter(self.pids / "pids.events", "max")

    def members(self) -> set[int]:
        found: set[int] = set()
        for procs in self.procs:
            with contextlib.suppress(OSError, ValueError):
                found |= {int(p) for p in procs.read_text().split()}
        return found

    def kill(self) -> None:
        """SIGKILL everything in it, round after round, until it is empty (a fork that
        raced a round is caught by the next; the process limit bounds the rounds)."""
        kill_file = self.folders[0] / "cgroup.kill"
        if self.mode == "cgroup-v2" and kill_file.exists():
            with contextlib.suppress(OSError):
                _write(kill_file, "1")
                return
        for _ in range(KILL_ROUNDS):
            members = self.members()
            if not members:
                return
            for pid in members:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)

    def remove(self) -> None:
        self.kill()
        for folder in self.folders:
            for _ in range(KILL_ROUNDS):  # a just-killed member may not be reaped yet
                try:
                    folder.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    self.kill()
                    time.sleep(0.01)


def _sweep(parent: Path) -> None:
    """Remove the cgroups left by harnesses that are gone (killed outright)."""
    with contextlib.suppress(OSError):
        for entry in parent.iterdir():
            if not entry.name.startswith(PREFIX):
                continue
            parts = entry.name[len(PREFIX):].split("-")
            if len(parts) == 3 and parts[0].isdigit() and parts[1].isdigit() \
                    and not process_alive(int(parts[0]), int(parts[1])):
                with contextlib.suppress(OSError):
                    for pid in (int(p) for p in (entry / "cgroup.procs").read_text().split()):
                        with contextlib.suppress(OSError):
                            os.kill(pid, signal.SIGKILL)
                    entry.rmdir()


def _name() -> str:
    pid = os.getpid()
    return f"{PREFIX}{pid}-{process_start_ticks(pid)}-{next(_SEQ)}"


def _make_v1(memory_max: int, pids_max: int, own: dict[str, str]) -> Cgroup:
    name = _name()
    made: list[Path] = []
    try:
        for controller in ("memory", "pids"):
            parent = CGROUP_FS / controller / own[controller].lstrip("/")
            _sweep(parent)
            folder = parent / name
            folder.mkdir(mode=0o755)
            made.append(folder)
        memory, pids = made
        _write(memory / "memory.limit_in_bytes", str(memory_max))
        if (memory / "memory.memsw.limit_in_bytes").exists():  # swap must not lift it
            _write(memory / "memory.memsw.limit_in_bytes", str(memory_max))
        _write(pids / "pids.max", str(pids_max))
    except OSError as exc:
        for folder in made:
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise LimitsUnavailable(f"cgroup v1: {exc.filename}: {exc.strerror}") from None
    return Cgroup(mode="cgroup-v1", folders=made, memory=memory, pids=pids)


def _v2_parents(own: str) -> list[Path]:
    """Where a v2 child with memory and pids can be made: our own cgroup when those are
    already enabled for its children (a delegated subtree), else the root as root."""
    mount = CGROUP_FS if (CGROUP_FS / "cgroup.controllers").exists() \
        else CGROUP_FS / "unified"
    parents = []
    for parent in (mount / own.lstrip("/"), *([mount] if os.geteuid() == 0 else [])):
        try:
            enabled = (parent / "cgroup.subtree_control").read_text().split()
        except OSError:
            continue
        if {"memory", "pids"} <= set(enabled) and os.access(parent, os.W_OK):
            parents.append(parent)
    return parents


def _make_v2(memory_max: int, pids_max: int, own: str) -> Cgroup:
    problems = []
    for parent in _v2_parents(own):
        _sweep(parent)
        folder = parent / _name()
        try:
            folder.mkdir(mode=0o755)
            _write(folder / "memory.max", str(memory_max))
            with contextlib.suppress(FileNotFoundError):
                _write(folder / "memory.swap.max", "0")
            _write(folder / "pids.max", str(pids_max))
        except OSError as exc:
            with contextlib.suppress(OSError):
                folder.rmdir()
            problems.append(f"{exc.filename}: {exc.strerror}")
            continue
        return Cgroup(mode="cgroup-v2", folders=[folder], memory=folder, pids=folder)
    raise LimitsUnavailable("cgroup v2: " + ("; ".join(problems) or
                                             "no delegated cgroup with memory and pids"))


def make_cgroup(memory_max: int, pids_max: int) -> Cgroup:
    """A run's cgroup bounding memory (bytes) and processes, v1 where the memory and pids
    hierarchies are mounted, else v2; LimitsUnavailable saying what each lacked and how to
    give the harness one."""
    try:
        own = _own_paths()
    except (OSError, ValueError) as exc:
        raise LimitsUnavailable(f"cannot read /proc/self/cgroup ({exc})") from None
    problems = []
    if "memory" in own and "pids" in own:
        try:
            return _make_v1(memory_max, pids_max, own)
        except LimitsUnavailable as exc:
            problems.append(str(exc))
    if "" in own:
        try:
            return _make_v2(memory_max, pids_max, own[""])
        except LimitsUnavailable as exc:
            problems.append(str(exc))
    raise LimitsUnavailable(
        ("; ".join(problems) or "no cgroup v1 memory/pids hierarchy nor cgroup v2 here")
        + f" (as {'root' if os.geteuid() == 0 else 'a user'}: run as root or delegate a "
        "cgroup v2 subtree with memory and pids)")
