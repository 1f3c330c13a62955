"""A job's trials over a Ray cluster (`cto-harness job --cluster`): the driver side.

Why Ray and this shape (issue 20): Ray places work on other machines and tells us when a
node is lost; we use it for that and nothing more. Each trial is still an ordinary
sandboxed `cto-harness run`, started on a worker node by a warm actor (one per slot: a node
started with `--resources '{"cto_worker": N}'` runs N at once; the head offers none and
never runs a trial), whose relay forwards to the job's gateway. Its run folder comes back
as tar bytes when it ends and is unpacked into this machine's runs root through the hostile
file rules (links never followed, only files, folders and links inside it, sizes and counts
bounded, then `defuse_tree`), so `validate` and the dashboard read it unchanged. While it
runs, the driver pulls what its folder has grown by about every PULL_S and writes it under
the run's own name (core.jobs.cluster_stream), so a trial in flight shows here as a local
one does; the final tar then takes that folder's place.

Nothing secret goes through Ray: Ray copies task arguments, return values, exception texts
and `runtime_env` values cluster-wide and any worker code can read any node. The driver
drops the endpoint's variables before it connects, sends only task folders, numbers, the
gateway's URL and fingerprint and the path of the token file, and never uses `runtime_env`.
Token auth is required: a driver without `RAY_AUTH_MODE=token`, or a node whose Ray runs
without it, is refused with the reason. Every wait on Ray is bounded (`CLUSTER_TIMEOUT_VAR`):
Ray itself waits forever for a resource no node offers.

Imports Ray only when called (the `[cluster]` extra): a local job never loads it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import BadInput, HarnessError
from core.jobs import cluster_probe
from core.jobs.cluster_stream import LiveRun
from core.jobs.cluster_transfer import Unpacked, inflate, pack_task, unpack_run
from core.jobs.cluster_worker import (
    GATEWAY_VARS,
    RESOURCE,
)
from core.jobs.model import Job
from core.jobs.runner import JobRunner, Progress

CLUSTER_TIMEOUT_VAR = "CTO_HARNESS_CLUSTER_TIMEOUT"
"""Seconds the driver waits for the cluster to answer (connect, ask every node), and for a
worker slot once no node offers `cto_worker` any more; default 30."""
DEFAULT_TIMEOUT_S = 30.0
PULL_S = 0.5
"""How often a running trial's folder is pulled from its node (each pull one actor call)."""
PULL_TIMEOUT_S = 10.0
ENDPOINT_VARS = ("CTO_HARNESS_CASE_LOCAL_BASE_URL", "CTO_HARNESS_CASE_LOCAL_BASE_URL_FILE",
                 "CTO_HARNESS_CASE_LOCAL_API_KEY", "CTO_HARNESS_CASE_LOCAL_API_KEY_FILE")
_HOSTPORT = re.compile(r"[A-Za-z0-9._-]+:\d{1,5}|\[[0-9A-Fa-f:]+\]:\d{1,5}")
START_WORKER = ("start workers with `RAY_AUTH_MODE=token ray start --address HEAD:PORT "
                f"--resources '{{\"{RESOURCE}\": N}}'` (README \"Beyond one machine\")")


class ClusterBlocked(HarnessError):
    """The cluster cannot run the job (unreachable, no auth, no worker, no harness on a
    worker): one line naming what and how to fix it; the job exits 3, no trial started."""


def cluster_timeout(env: dict[str, str] | os._Environ[str]) -> float:
    raw = env.get(CLUSTER_TIMEOUT_VAR, "")
    if not raw:
        return DEFAULT_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value < 86400:
        raise BadInput(f"{CLUSTER_TIMEOUT_VAR}={raw!r}: give seconds, e.g. 30")
    return value


def parse_cluster(value: str) -> str:
    """`--cluster`: `ray` or `auto` (the cluster of the node this machine is), `ray://HOST:PORT`
    (Ray Client, from a machine that is no node) or `HOST:PORT` (the head's GCS, from a node)."""
    if value in ("ray", "auto", "ray://auto"):
        return "auto"
    rest = value.removeprefix("ray://")
    if _HOSTPORT.fullmatch(rest):
        return value if value.startswith("ray://") else rest
    raise BadInput(f"--cluster {value!r}: give ray://HOST:PORT (the head's client port, "
                   "10001 by default), HOST:PORT (its GCS port) or auto")


def _require_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise BadInput("--cluster needs Ray: install the cluster extra (`uv sync --extra "
                       "cluster`, or pip install 'cto-harness[cluster]')") from None
    return ray


def _bounded(fn: Any, timeout: float, what: str) -> Any:
    """`fn()` on a daemon thread, given up after `timeout` s (Ray's calls can wait forever)."""
    box: dict[str, Any] = {}
    done = threading.Event()

    def work() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # carried to the caller's thread
            box["error"] = exc
        finally:
            done.set()

    threading.Thread(target=work, daemon=True, name="cluster-call").start()
    if not done.wait(timeout):
        raise ClusterBlocked(f"{what}: no answer in {timeout:g} s")
    if "error" in box:
        raise box["error"]
    return box.get("value")


@dataclass
class Cluster:
    """A connected cluster: its worker nodes and how many trial slots each offers."""

    address: str
    slots: dict[str, int]
    timeout: float


def connect(value: str, env: os._Environ[str] | dict[str, str]) -> Cluster:
    """Connect to the cluster and ask every node whether it runs with token auth and can
    run trials; ClusterBlocked (one line) when it cannot run the job."""
    address = parse_cluster(value)
    timeout = cluster_timeout(env)
    if env.get("RAY_AUTH_MODE", "").strip().lower() != "token":
        raise BadInput("--cluster: set RAY_AUTH_MODE=token here and on every node (the "
                       "cluster's token in RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token): "
                       "without token auth anyone on the cluster's network runs code on it")
    for name in ENDPOINT_VARS:  # nothing Ray starts or copies from here can hold them
        os.environ.pop(name, None)
    # Under `uv run`, Ray's client would make this folder the job's `working_dir` and
    # upload it whole into the cluster's GCS (and every node's runtime_resources): the
    # user's current folder, whatever it holds. Read by Ray at import, so set before it.
    os.environ["RAY_ENABLE_UV_RUN_RUNTIME_ENV"] = "0"
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    ray = _require_ray()

    def init() -> None:
        ray.init(address=address, log_to_driver=False, logging_level="error")

    what = (f"--cluster {value}: the cluster did not answer; is the head up and reachable, "
            "and is this machine's Ray token the cluster's")
    try:
        try:
            _bounded(init, timeout, what)
        except ConnectionAbortedError:
            # Ray Client's per-client server on the head failed to start (it does now and
            # then on a loaded head: "Initialization failure from server"): once more
            _bounded(init, timeout, what)
    except ClusterBlocked:
        raise
    except Exception as exc:  # Ray's errors are many; one line says which
        raise ClusterBlocked(f"--cluster {value}: cannot connect ({type(exc).__name__}: "
                             f"{_first_line(exc)}); check the address and that the head "
                             "is up") from None
    try:
        slots = _survey(ray, value, timeout)
    except ClusterBlocked:
        raise
    except Exception as exc:  # Ray's own failure (a node's runtime env, a lost node)
        raise ClusterBlocked(f"--cluster {value}: asking its nodes failed ("
                             f"{type(exc).__name__}: {_first_line(exc)})") from None
    return Cluster(address=value, slots=slots, timeout=timeout)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else "no detail"


def _survey(ray: Any, value: str, timeout: float) -> dict[str, int]:
    """Every alive node asked (by value: the head needs no harness) for its auth mode and
    whether it has the harness; the worker nodes' `cto_worker` slots."""
    from ray import cloudpickle
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    cloudpickle.register_pickle_by_value(cluster_probe)
    probe = ray.remote(num_cpus=0, max_retries=0)(cluster_probe.node_facts)
    nodes = [n for n in _bounded(ray.nodes, timeout, f"--cluster {value}: listing nodes")
             if n.get("Alive")]
    refs = {probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(
        n["NodeID"], soft=False)).remote(): n for n in nodes}
    ready, late = ray.wait(list(refs), num_returns=len(refs), timeout=timeout)
    if late:
        node = refs[late[0]]
        raise ClusterBlocked(f"--cluster {value}: node {_label(node)} did not answer in "
                             f"{timeout:g} s; is it overloaded or half-started?")
    slots: dict[str, int] = {}
    for ref in ready:
        node = refs[ref]
        facts = ray.get(ref)
        if facts.get("auth") != "token":
            raise ClusterBlocked(f"--cluster {value}: node {_label(node)} runs Ray without "
                                 "token auth; restart every node with RAY_AUTH_MODE=token")
        offered = int(node.get("Resources", {}).get(RESOURCE, 0))
        if offered and not facts.get("harness"):
            raise ClusterBlocked(f"--cluster {value}: worker node {_label(node)} cannot "
                                 "import cto-harness; install it there with the cluster "
                                 "extra (`uv sync --extra cluster`) and start its Ray from "
                                 "that environment")
        if offered:
            slots[_label(node)] = offered
    if not slots:
        raise ClusterBlocked(f"--cluster {value}: no worker node offers {RESOURCE}; "
                             + START_WORKER)
    return slots


def _label(node: dict[str, Any]) -> str:
    return f"{node.get('NodeManagerAddress', '?')}/{str(node.get('NodeID', ''))[:12]}"


def disconnect() -> None:
    with contextlib.suppress(Exception):
        import ray

        ray.shutdown()


# -- the runner ----------------------------------------------------------------------------


class ClusterRunner(JobRunner):
    """JobRunner whose trials run on the cluster's worker nodes: the same job.json, summary,
    resume and cancel; a trial's run comes back into `runs_root` when it ends."""

    def __init__(self, job_dir: Path, job: Job, runs_root: Path, cluster: Cluster, *,
                 gateway: dict[str, str], retry_errors: bool = False,
                 progress: Progress | None = None) -> None:
        super().__init__(job_dir, job, runs_root, retry_errors=retry_errors,
                         progress=progress)
        import ray

        self.ray = ray
        self.cluster = cluster
        self.gateway = {k: v for k, v in gateway.items() if k in GATEWAY_VARS}
        size = max(1, min(job.config.concurrency, sum(cluster.slots.values())))
        self.threads = ThreadPoolExecutor(max_workers=size + 1,
                                          thread_name_prefix="cluster-trial")
        self.pool: asyncio.Queue[Any] = asyncio.Queue()
        self.size = size
        self.inflight: dict[int, Any] = {}
        self.tasks: dict[str, Any] = {}
        self.lost: list[str] = []

    def _actor(self) -> Any:
        from core.jobs.cluster_worker import TrialWorker

        cls = self.ray.remote(TrialWorker)
        return cls.options(num_cpus=0, resources={RESOURCE: 1}, max_concurrency=3,
                           max_restarts=0).remote()

    def _task_ref(self, task_id: str) -> Any:
        if task_id not in self.tasks:
            folder = Path(next(t.folder for t in self.job.config.tasks if t.id == task_id))
            self.tasks[task_id] = self.ray.put(pack_task(folder))
        return self.tasks[task_id]

    async def run(self) -> int:
        for _ in range(self.size):
            self.pool.put_nowait(self._actor())
        try:
            code = await super().run()
        finally:
            self.threads.shutdown(wait=False, cancel_futures=True)
        if self.lost and self.job.state == "finished":
            self.job.reasons = [*self.lost[:3], f"`cto-harness job --resume "
                                f"{self.job.job_id}` runs the interrupted trials again"]
            self._save()
        return code

    def cancel(self) -> None:
        """Ctrl-C: no new trial starts; each one in flight is sent SIGINT on its node and
        writes its `cancelled` report, which comes back as any other."""
        if self.cancelled:
            return
        self.cancelled = True
        for actor in list(self.inflight.values()):
            with contextlib.suppress(Exception):
                actor.cancel.remote()

    def _spec(self, index: int) -> dict[str, Any]:
        trial = self.job.trials[index]
        cfg = self.job.config
        return {"profile": cfg.profile, "timeout_s": cfg.timeout_s, "job_id": self.job.job_id,
                "attempt": trial.attempt, "demo": cfg.demo,
                "retry_of": trial.previous_runs[-1] if trial.previous_runs else None,
                "gateway": self.gateway, "trial": f"{index}:{secrets.token_hex(6)}"}

    async def _trial(self, index: int, gate: asyncio.Semaphore) -> None:
        """One trial on a slot. Its concurrency gate is let go as soon as its result is
        back, before its folder is taken in (on a thread): the next trial starts meanwhile,
        rather than after the unpacking and defusing of this one's folder."""
        await gate.acquire()
        held = True
        try:
            if self.cancelled:
                return
            actor = await self.pool.get()
            if self.cancelled:
                self.pool.put_nowait(actor)
                return
            trial = self.job.trials[index]
            previous = [*trial.previous_runs, *([trial.run_id] if trial.run_id else [])]
            self.job.trials[index] = trial.model_copy(update={
                "status": "running", "run_id": None, "problem": None, "exit_code": None,
                "previous_runs": previous, "guard": None, "leaked": False, "baseline": None,
                "failure_class": None, "tokens": None, "duration_s": None, "node": None})
            self._save()
            self.inflight[index] = actor
            loop = asyncio.get_running_loop()
            live = LiveRun(self.runs_root)
            try:
                spec, task_ref = self._spec(index), self._task_ref(trial.task)
                kind, value = await loop.run_in_executor(
                    self.threads, self._wait, actor, spec, task_ref,
                    lambda: self._pull(actor, spec["trial"], live, index, loop))
            finally:
                self.inflight.pop(index, None)
                live.close()
            if kind == "lost":
                self.pool.put_nowait(self._actor())  # a fresh slot, wherever one is left
                self._interrupted(index, value, live)
                return
            self.pool.put_nowait(actor)
            gate.release()
            held = False
            run_dir, why = await loop.run_in_executor(self.threads, self._take_in, value, live)
            self._came_back(index, value, run_dir, why)
        finally:
            if held:
                gate.release()

    def _pull(self, actor: Any, key: str, live: LiveRun, index: int,
              loop: asyncio.AbstractEventLoop) -> None:
        """On the trial's thread: what its folder on the node has grown by, written here;
        the trial's run id recorded (on the loop) once that folder appears."""
        try:
            delta = self.ray.get(actor.pull.remote(key), timeout=PULL_TIMEOUT_S)
        except Exception:  # a slow or lost node: the trial's own wait says which
            return
        if live.apply(delta) and live.dir is not None:
            loop.call_soon_threadsafe(self._streaming, index, live.dir.name)

    def _streaming(self, index: int, name: str) -> None:
        trial = self.job.trials[index]
        if trial.status == "running" and trial.run_id is None:
            self.job.trials[index] = trial.model_copy(update={"run_id": name})
            self._save()

    def _wait(self, actor: Any, spec: dict[str, Any], task_ref: Any,
              pull: Any) -> tuple[str, Any]:
        """On a thread: the trial's result, or ("lost", why) when its node (or actor) died or
        no node offers a slot any more (checked at each pull: Ray would wait forever)."""
        ray = self.ray
        ref = actor.run.remote(spec, task_ref)
        gone_since: float | None = None
        while True:
            ready, _ = ray.wait([ref], timeout=PULL_S)
            if ready:
                try:
                    return "ok", ray.get(ref)
                except ray.exceptions.RayActorError as exc:
                    return "lost", f"its worker node was lost ({type(exc).__name__})"
                except ray.exceptions.RayError as exc:
                    return "lost", f"the cluster failed it ({type(exc).__name__})"
            pull()
            try:
                offered = ray.cluster_resources().get(RESOURCE, 0)
            except Exception:  # the head itself is gone: the same for a trial
                offered = 0
            if offered:
                gone_since = None
                continue
            gone_since = gone_since or time.monotonic()
            if time.monotonic() - gone_since > min(self.cluster.timeout, 5.0):
                with contextlib.suppress(Exception):
                    ray.kill(actor)
                return "lost", f"no worker node offers {RESOURCE} any more"

    def _interrupted(self, index: int, why: str, live: LiveRun) -> None:
        if live.published:
            live.abandon()  # no harness writes it any more: it reads `interrupted`
        else:
            live.discard()
        trial = self.job.trials[index].model_copy(update={
            "run_id": live.dir.name if live.dir is not None else None,
            "status": "cancelled" if self.cancelled else "interrupted",
            "problem": f"{why}; resumable", "failure_class": "infrastructure"})
        self.lost.append(f"{trial.task} #{trial.attempt}: {why}")
        self.job.trials[index] = trial
        self._save()
        if self.progress is not None:
            self.progress(self.job, trial)

    def _take_in(self, result: dict[str, Any], live: LiveRun) -> tuple[Path | None, str]:
        """On a thread: the trial's final folder in place of the streamed one (the run dir
        and the line to record); without a final folder the streamed one stays as its run
        (no report: `interrupted`)."""
        node = str(result.get("node") or "")[:120] or None
        why = str(result.get("why") or "")[:500]
        run_dir = None
        streamed = live.dir if live.published else None
        blob, name = result.get("tar"), result.get("run_name")
        if isinstance(blob, bytes) and isinstance(name, str):
            try:
                run_dir, left_out = unpack_run(inflate(blob), self.runs_root, name,
                                               replace=streamed)
            except Unpacked as exc:
                why = f"its run folder from node {node} was refused: {exc}"
            else:
                if left_out:
                    why = f"{len(left_out)} entr(ies) of its run left out: {left_out[0]}"
        if run_dir is None and streamed is not None and not why.startswith("its run folder"):
            live.abandon()
            run_dir = streamed
        elif run_dir != streamed or streamed is None:
            live.discard()
        return run_dir, why

    def _came_back(self, index: int, result: dict[str, Any], run_dir: Path | None,
                   why: str) -> None:
        node = str(result.get("node") or "")[:120] or None
        code = result.get("code")
        self._ended(index, run_dir, why, code if isinstance(code, int) else None)
        self.job.trials[index] = self.job.trials[index].model_copy(update={"node": node})
        self._save()
