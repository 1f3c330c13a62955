"""Bounded Cases: memory, processes and disk for the Case and everything it starts, and for
its checks and the fake baseline.

Why: a Case is untrusted and real agents are programs that can use gigabytes; in a job of
hundreds of trials at `--concurrency 8`, one runaway trial must not take the machine, the
dashboard and the other trials with it.

How, per run:

- **Memory and processes**: a cgroup per run, made when the sandbox is set up and removed at
  its end, and one more for its fake baseline, which runs beside the Case's checks: a limit
  one reaches ends and is counted against only its own processes. cgroup v1 where that is
  what the machine has (the `memory` and `pids` hierarchies, writable as root:
  `memory.limit_in_bytes` (+ `memsw` when present), `pids.max`), cgroup v2 where it is
  delegated (the harness's own cgroup with `memory` and `pids` in its
  `cgroup.subtree_control`, or the root cgroup as root). Each sandboxed process joins it
  before it execs anything (`/bin/sh` writes its own pid into `cgroup.procs`, then execs the
  sandbox: no window in which it could fork outside). A hit is read from the kernel's own
  counters (`memory.oom_control`'s or `memory.events`' `oom_kill`, `pids.events`' `max`),
  before and after each process.
- **Disk**: `RLIMIT_FSIZE` (no single file past the budget), the sandbox's `/tmp` a tmpfs of
  the budget's size (bwrap's `--size`; its pages are charged to the cgroup's memory too),
  and the workspace and private HOME watched while each process runs: past the budget, its
  processes are ended. Watching is polling, so a fast writer overshoots by what it writes
  in one poll (~0.1 s).
- A process that reaches its process limit or the disk budget is ended at once (a fork
  bomb would otherwise spin until its timeout); one the kernel's OOM killer ended is
  recorded as such.

`CTO_HARNESS_CASE_LIMITS=off` is the one opt-out, recorded in the report, flagged by
`validate` and never real-model evidence (as `CTO_HARNESS_CASE_SANDBOX=off`). When limits
are on and no cgroup can be made, the run is blocked with a reason starting `limits:`.
Settings: `CTO_HARNESS_CASE_MEMORY` (a size: `4GiB`, `512MiB`, `2G`; default the smaller of
4 GiB and half the machine's memory), `CTO_HARNESS_CASE_PIDS` (default NPROC + 64, so the
per-uid RLIMIT_NPROC stops a fork bomb first and the cgroup bounds what runs as other
uids), `CTO_HARNESS_CASE_DISK` (default 2 GiB). A value that is not a size exits 2 naming
the variable, before any run folder.

A harness killed outright cannot remove its cgroups: the warden (core/run/warden.py) empties
and removes them, and should it be gone too, the next run on the machine removes those whose
harness is gone (their name carries its pid and start time).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ByteSize, TypeAdapter, ValidationError

from core.sandbox.bwrap import NPROC
from core.sandbox.cgroups import Cgroup, LimitsUnavailable, Mode, make_cgroup
from core.settings import ConfigError

LIMITS_VAR = "CTO_HARNESS_CASE_LIMITS"
MEMORY_VAR = "CTO_HARNESS_CASE_MEMORY"
PIDS_VAR = "CTO_HARNESS_CASE_PIDS"
DISK_VAR = "CTO_HARNESS_CASE_DISK"
GiB = 1 << 30
MiB = 1 << 20
DEFAULT_MEMORY_CAP = 4 * GiB
DEFAULT_DISK = 2 * GiB
DEFAULT_PIDS = NPROC + 64
MIN_MEMORY = 32 * MiB
"""Below this the sandbox's own first process (a Python interpreter) cannot start."""
MIN_DISK = 1 * MiB
MIN_PIDS = 16
POLL_S = 0.1
JOIN = 'n=$1; shift; while [ "$n" -gt 0 ]; do echo $$ >"$1" || exit 125; shift; ' \
       'n=$((n-1)); done; ulimit -f "$1" || exit 125; shift; exec "$@"'
"""The sandboxed process's first step: join the run's cgroups, cap file sizes (512-byte
blocks), then become the sandbox. Exit 125 (the sandbox's `SETUP_FAILED`) if any fails."""
SHELL = "/bin/sh"
_SIZE = TypeAdapter(ByteSize)


@dataclass(frozen=True)
class Settings:
    enabled: bool
    memory: int
    pids: int
    disk: int


def machine_memory() -> int:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 2 * DEFAULT_MEMORY_CAP


def _size(env: Mapping[str, str], var: str, default: int, least: int) -> int:
    text = env.get(var, "").strip()
    if not text:
        return default
    try:
        value = int(_SIZE.validate_python(text))
    except ValidationError:
        value = -1
    if value < least:
        raise ConfigError(f"{var} must be a size of at least {least // MiB} MiB, like 4GiB, "
                          f"512MiB or 2G (got {text[:40]!r}); unset it for the default "
                          f"({default // MiB} MiB)")
    return value


def settings_from(env: Mapping[str, str]) -> Settings:
    """The limits the environment asks for; ConfigError (exit 2) naming the variable when
    one cannot be read."""
    choice = env.get(LIMITS_VAR, "on").strip().lower() or "on"
    if choice not in ("on", "off"):
        raise ConfigError(f"{LIMITS_VAR} must be 'on' (the default) or 'off', not "
                          f"{choice[:40]!r}")
    text = env.get(PIDS_VAR, "").strip()
    pids = DEFAULT_PIDS
    if text:
        if not text.isdigit() or int(text) < MIN_PIDS:
            raise ConfigError(f"{PIDS_VAR} must be a whole number of processes, at least "
                              f"{MIN_PIDS} (got {text[:40]!r}); unset it for the default "
                              f"({DEFAULT_PIDS})")
        pids = int(text)
    return Settings(enabled=choice == "on",
                    memory=_size(env, MEMORY_VAR, min(DEFAULT_MEMORY_CAP,
                                                      machine_memory() // 2), MIN_MEMORY),
                    pids=pids, disk=_size(env, DISK_VAR, DEFAULT_DISK, MIN_DISK))


def human(size: int) -> str:
    for unit, scale in (("GiB", GiB), ("MiB", MiB)):
        if size >= scale and size % (scale // 16) == 0:
            return f"{size / scale:g} {unit}"
    return f"{size} bytes"


# -- cgroups ------------------------------------------------------------------------------
# -- one run's limits --------------------------------------------------------------------
def disk_usage(paths: list[Path]) -> int:
    """Bytes allocated under `paths` (links not followed, each entry once per path)."""
    total = 0
    for root in paths:
        stack = [str(root)]
        while stack:
            folder = stack.pop()
            try:
                with os.scandir(folder) as entries:
                    for entry in entries:
                        try:
                            st = entry.stat(follow_symlinks=False)
                        except OSError:
                            continue
                        total += st.st_blocks * 512
                        if entry.is_dir(follow_symlinks=False):
                            stack.append(entry.path)
            except OSError:
                continue
    return total


@dataclass
class RunLimits:
    """The limits of one run's sandboxed processes: set up once, joined by each process,
    watched while it runs, removed at the end."""

    settings: Settings
    cgroup: Cgroup | None = None
    detail: str = ""
    hits: list[str] = field(default_factory=list)

    @property
    def active(self) -> bool:
        return self.cgroup is not None

    def setup(self) -> None:
        """Make the run's cgroup (LimitsUnavailable when none can be made); off: nothing."""
        s = self.settings
        if not s.enabled:
            self.detail = (f"{LIMITS_VAR}=off: no memory, process or disk limit beyond "
                           f"RLIMIT_NPROC {NPROC}; never evidence for a model")
            return
        try:
            self.cgroup = make_cgroup(s.memory, s.pids)
        except LimitsUnavailable as exc:
            raise LimitsUnavailable(f"{exc}; or set {LIMITS_VAR}=off (never evidence)") \
                from None
        self.detail = (f"{self.cgroup.mode}: memory {human(s.memory)}, {s.pids} processes, "
                       f"disk {human(s.disk)} (workspace + home watched, RLIMIT_FSIZE, "
                       f"/tmp tmpfs of {human(s.disk)})")

    @property
    def folders(self) -> list[Path]:
        """The run's cgroup folders (the warden removes them should the harness die)."""
        return list(self.cgroup.folders) if self.cgroup else []

    @property
    def tmp_size(self) -> int | None:
        return self.settings.disk if self.active else None

    def wrap(self, argv: list[str]) -> list[str]:
        """`argv` started inside the run's cgroup with file sizes capped."""
        if self.cgroup is None:
            return argv
        procs = [str(p) for p in self.cgroup.procs]
        return [SHELL, "-c", JOIN, "cto-harness-limits", str(len(procs)), *procs,
                str(-(-self.settings.disk // 512)), *argv]

    @contextlib.asynccontextmanager
    async def watch(self, who: str, paths: list[Path]) -> AsyncIterator[None]:
        """While `who` runs: end it at the disk budget or at its process limit; after it,
        record what it reached (an OOM kill included)."""
        if self.cgroup is None:
            yield
            return
        before = self.cgroup.counters()
        stop = asyncio.Event()
        watcher = asyncio.create_task(self._watch(who, paths, before[1], stop))
        try:
            yield
        finally:
            stop.set()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            oom, refused = self.cgroup.counters()
            if oom > before[0]:
                self._hit(f"memory: {who} reached {human(self.settings.memory)} "
                          f"({MEMORY_VAR}); the kernel killed {oom - before[0]} of its "
                          f"processes (oom_kill in {self._oom_file()})")
            if refused > before[1] and not any(h.startswith(f"pids: {who} ")
                                               for h in self.hits):
                self._hit(self._pids_hit(who, refused - before[1]))

    async def _watch(self, who: str, paths: list[Path], refused_before: int,
                     stop: asyncio.Event) -> None:
        assert self.cgroup is not None
        next_disk = 0.0
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), POLL_S)
                return
            refused = self.cgroup.counters()[1]
            if refused > refused_before:
                self._hit(self._pids_hit(who, refused - refused_before))
                await asyncio.to_thread(self.cgroup.kill)
                return
            now = time.monotonic()
            if paths and now >= next_disk:
                used = await asyncio.to_thread(disk_usage, paths)
                cost = time.monotonic() - now
                next_disk = time.monotonic() + max(POLL_S, 10 * cost)  # a huge tree: ~10%
                if used > self.settings.disk:
                    self._hit(f"disk: {who} wrote past {human(self.settings.disk)} "
                              f"({DISK_VAR}): {human(used)} in "
                              f"{', '.join(p.name for p in paths)}; its processes were ended")
                    await asyncio.to_thread(self.cgroup.kill)
                    return

    def _pids_hit(self, who: str, count: int) -> str:
        return (f"pids: {who} reached {self.settings.pids} processes ({PIDS_VAR}); "
                f"{count} fork(s) refused (max in pids.events); its processes were ended")

    def _oom_file(self) -> str:
        return "memory.oom_control" if self.cgroup and self.cgroup.mode == "cgroup-v1" \
            else "memory.events"

    def _hit(self, text: str) -> None:
        if text not in self.hits:
            self.hits.append(text)

    def record(self) -> dict[str, int]:
        s = self.settings
        if self.cgroup is None:
            return {}
        return {"memory_bytes": s.memory, "pids": s.pids, "disk_bytes": s.disk,
                "tmp_bytes": s.disk}

    @property
    def mode(self) -> Mode | None:
        if not self.settings.enabled:
            return "off"
        return self.cgroup.mode if self.cgroup else None

    def close(self) -> None:
        if self.cgroup is not None:
            self.cgroup.remove()
