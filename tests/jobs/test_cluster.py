"""`cto-harness job --cluster`: trials over a real two-node Ray cluster on this machine.

One module-scoped cluster (a head and one worker offering `cto_worker`, each `--num-cpus 1`
and its own `--temp-dir`, token auth on), started by the test with `ray start --block` in
its own session and stopped by PID (never `ray stop`: it stops every Ray of the account).
The job's driver is a real `cto-harness job` process whose environment holds an endpoint
(a scripted one, its URL invented at run time): nothing Ray wrote or holds may show any form
of it. The trials are demo runs: each an ordinary sandboxed `cto-harness run` on the worker.
Skips only outside CI (`CI=true`: a missing Ray fails, tests/support `missing_machinery`).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from core.evidence.keys import KEY_FILE_VAR
from core.evidence.models import Manifest
from core.evidence.runs import read_trace, summarize
from core.evidence.validate import validate_run
from core.jobs.cluster_stream import LiveRun
from core.jobs.cluster_worker import grown
from core.jobs.summary import read_job
from core.standins.endpoint import ScriptedEndpoint
from tests.support.harness import CASE, QWEN, ROOT, Harness, answer, missing_machinery
from tests.support.secret_forms import survivors

SLUG = "r1-string-slugify"
GOOD_ARGS = "--mode good --task-file {task_file} --workspace {workspace} --model {model}"
RAY = Path(sys.executable).parent / "ray"
NODE_ID = re.compile(rb"node_id=([0-9a-f]{56})")
MAX_SCAN = 8 << 20


def short_dir(name: str) -> Path:
    """A node's --temp-dir: Ray's sockets live under it and a Unix socket's path is bounded
    (107 bytes), so not under a test's long tmp_path; removed when the node stops."""
    return Path(tempfile.mkdtemp(prefix=f"cto-ray-{name}-", dir="/tmp"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def session_pids(leader: int) -> list[int]:
    """Every process of the node's session (`ray start --block` leads it)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[3]) == leader:  # session id
            pids.append(int(entry))
    return pids


@dataclass
class Node:
    proc: subprocess.Popen[bytes]
    temp: Path
    log: Path
    scratch: Path | None = None
    """A worker's CTO_HARNESS_CLUSTER_SCRATCH: its trials' run folders while they run."""

    def cases_started(self) -> int:
        """Trials whose Case is running on this node (their run folders say so)."""
        if self.scratch is None:
            return 0
        return sum(b"case_process_started" in t.read_bytes()
                   for t in self.scratch.glob("cto-harness-trial-*/runs/*/trace.jsonl"))

    def up(self) -> bool:
        """`ray start --block` says so once the node has joined (or it has exited)."""
        return self.proc.poll() is not None or b"Ray runtime started" in self.log.read_bytes()

    def node_id(self) -> str:
        for out in self.temp.glob("session_*/logs/raylet.out"):
            if m := NODE_ID.search(out.read_bytes()):
                return m.group(1).decode()
        raise AssertionError(f"no node id in {self.temp}")

    def pids(self) -> list[int]:
        return session_pids(self.proc.pid)

    def kill(self) -> None:
        """The machine lost: every process of the node SIGKILLed at once, no goodbye."""
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def stop(self) -> None:
        """By PID: SIGTERM to `ray start --block` (it stops its node), then SIGKILL to
        whatever of its session is left."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=20)
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        shutil.rmtree(self.temp, ignore_errors=True)


@dataclass
class Cluster:
    port: int
    ray_env: dict[str, str]
    """The nodes' environment (Ray's settings), for a node that joins later."""
    gcs: str
    """The head's GCS address: the jobs here connect as a driver on a node (this host). Ray
    Client (`ray://`) starts a server per client on the head whose start fails now and then
    with two heads' worth of processes on 2 cores ("Initialization failure from server");
    that path is Ray's, and what the harness does is the same either way."""
    client: str
    env: dict[str, str]
    """Ray's own settings (auth on, the cluster's token file) for a driver."""
    head: Node
    worker: Node
    worker_id: str
    extra: list[Node] = field(default_factory=list)

    def nodes(self) -> list[Node]:
        return [self.head, self.worker, *self.extra]


def ray_env(tmp: Path, token: Path, auth: bool = True) -> dict[str, str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp / "home"),
           "RAY_USAGE_STATS_ENABLED": "0", "PYTHONPATH": str(ROOT), "LANG": "C.UTF-8",
           # the nodes descend from `uv run pytest`: without this Ray's uv hook would make
           # the repository every client job's working_dir (README says so for users)
           "RAY_ENABLE_UV_RUN_RUNTIME_ENV": "0"}
    (tmp / "home").mkdir(exist_ok=True)
    if auth:
        env |= {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token)}
    return env


def start_head(tmp: Path, env: dict[str, str], name: str) -> tuple[Node, int, int]:
    port, client = free_port(), free_port()
    temp, log = short_dir(name), tmp / f"{name}.log"
    head_env = env | {  # a lost node is noticed in seconds, not half a minute
        "RAY_health_check_period_ms": "500", "RAY_health_check_timeout_ms": "1000",
        "RAY_health_check_failure_threshold": "3", "RAY_health_check_initial_delay_ms": "500"}
    proc = subprocess.Popen(
        [str(RAY), "start", "--head", "--block", "--num-cpus", "1", "--temp-dir", str(temp),
         "--port", str(port), "--ray-client-server-port", str(client),
         "--node-ip-address", "127.0.0.1", "--include-dashboard", "false",
         "--dashboard-agent-listen-port", "0", "--object-store-memory", "80000000",
         "--disable-usage-stats"], env=head_env, stdout=log.open("wb"),
        stderr=subprocess.STDOUT, start_new_session=True)
    return Node(proc, temp, log), port, client


def case_settings(tmp: Path) -> dict[str, str]:
    """A worker's harness settings: the test Case and its admission, never an endpoint."""
    admission = tmp / "admission.json"
    admission.write_text(json.dumps({"admitted": [
        {"provider": "qwen-local", "model": QWEN, "status": "admitted", "expires": None}]}))
    return {"CTO_HARNESS_CASE_BIN": str(CASE), "CTO_HARNESS_CASE_ARGS": GOOD_ARGS,
            "CTO_HARNESS_CASE_MODEL_ADMISSION_FILE": str(admission),
            KEY_FILE_VAR: os.environ[KEY_FILE_VAR]}


def start_worker(tmp: Path, env: dict[str, str], port: int, name: str,
                 ray: tuple[str, ...] = (str(RAY),)) -> Node:
    temp, log = short_dir(name), tmp / f"{name}.log"
    scratch = tmp / f"{name}-scratch"
    worker_env = env | case_settings(tmp) | {"CTO_HARNESS_CLUSTER_SCRATCH": str(scratch)}
    proc = subprocess.Popen(
        [*ray, "start", "--address", f"127.0.0.1:{port}", "--block", "--num-cpus", "1",
         "--resources", json.dumps({"cto_worker": 2}), "--temp-dir", str(temp),
         "--node-ip-address", "127.0.0.1", "--dashboard-agent-listen-port", "0",
         "--object-store-memory", "80000000", "--disable-usage-stats"],
        env=worker_env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
        start_new_session=True)
    return Node(proc, temp, log, scratch)


def wait_for(predicate, what: str, timeout: float = 120.0) -> None:  # type: ignore[no-untyped-def]
    """Until `predicate()` holds (each try is a real probe, so no sleep between them beyond
    a short yield); a bound so a broken cluster fails the test instead of hanging it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    if shutil.which(str(RAY)) is None:
        missing_machinery("Ray is not installed here (the cluster extra: uv sync --extra "
                          "cluster); the cluster tests need it")
    tmp = tmp_path_factory.mktemp("ray", numbered=True)
    token = tmp / "ray-token"
    token.write_text(secrets.token_hex(32))
    token.chmod(0o600)
    env = ray_env(tmp, token)
    head, port, client = start_head(tmp, env, "head")
    nodes = [head]
    try:
        wait_for(head.up, "the head")
        assert head.proc.poll() is None, head.log.read_text()
        worker = start_worker(tmp, env, port, "worker")
        nodes.append(worker)
        wait_for(worker.up, "the worker to join")
        assert worker.proc.poll() is None, worker.log.read_text()
        found = Cluster(port=port, ray_env=env, gcs=f"127.0.0.1:{port}", client=f"ray://127.0.0.1:{client}",
                        env={k: env[k] for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN_PATH")},
                        head=head, worker=worker, worker_id=worker.node_id())
        yield found
        nodes = found.nodes()
    finally:
        for node in reversed(nodes):
            node.stop()


@dataclass
class Driver:
    """The job's machine, and the gateway on the endpoint's host."""

    harness: Harness
    secret: str
    """The endpoint's URL, with an invented password: the secret no Ray node may see."""
    gateway_url: str
    gateway_state: Path
    token_file: Path
    endpoint: ScriptedEndpoint
    gate: threading.Event
    """Set: the endpoint answers. Cleared by a test: a Case's request waits at the endpoint
    (its trial stays in flight) until the test sets it."""

    def gateway(self, *args: str) -> dict:
        """`cto-harness gateway VERB ...` on the gateway's state, as its host would run it."""
        made = subprocess.run([sys.executable, "-m", "core.cli", "gateway", *args, "--state",
                               str(self.gateway_state), "--json"], env=self.harness.env,
                              capture_output=True, text=True, timeout=60, cwd=ROOT)
        assert made.returncode == 0, made.stderr
        return json.loads(made.stdout)


@pytest.fixture
def driver(tmp_path: Path, cluster: Cluster) -> Iterator[Driver]:
    """A gateway process holding the endpoint (a scripted one), a token for the job, and the
    job's machine: its environment holds the endpoint too (a driver on the endpoint's host
    must not pass it on), the gateway's settings, Ray's auth settings and its runs root."""
    gate = threading.Event()
    gate.set()

    def respond(messages: list[dict]) -> str:
        gate.wait(timeout=300)
        return answer(messages)

    with ScriptedEndpoint(responder=respond, model_id=QWEN) as endpoint:
        secret = endpoint.base_url.replace("http://", f"http://h:{secrets.token_hex(8)}@")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CTO_HARNESS_", "RAY_"))}
        env |= case_settings(tmp_path) | {"CTO_HARNESS_CASE_LOCAL_BASE_URL": secret,
                                          "PYTHONPATH": str(ROOT)}
        state = tmp_path / "gateway"
        gateway = subprocess.Popen(
            [sys.executable, "-m", "core.cli", "gateway", "serve", "--listen", "127.0.0.1:0",
             "--state", str(state), "--json"], env=env, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, cwd=ROOT)
        try:
            assert gateway.stdout is not None
            first = gateway.stdout.readline()  # printed once it listens
            assert first, gateway.stderr.read() if gateway.stderr else "no output"
            facts = json.loads(first)
            made = subprocess.run(
                [sys.executable, "-m", "core.cli", "gateway", "token", "--job", "cluster",
                 "--state", str(state), "--json"], env=env, capture_output=True, text=True,
                timeout=60, cwd=ROOT)
            assert made.returncode == 0, made.stderr
            token_file = Path(json.loads(made.stdout)["token_file"])
            env |= cluster.env | {
                "CTO_HARNESS_RUNS_ROOT": str(tmp_path / "runs"),
                "CTO_HARNESS_CLUSTER_TIMEOUT": "60",
                "CTO_HARNESS_GATEWAY_FINGERPRINT": facts["fingerprint"],
                "CTO_HARNESS_GATEWAY_TOKEN_FILE": str(token_file)}
            yield Driver(Harness(env=env, runs_root=tmp_path / "runs"), secret, facts["url"],
                         state, token_file, endpoint, gate)
        finally:
            gate.set()
            gateway.terminate()
            gateway.communicate(timeout=30)


def ray_wrote(cluster: Cluster, since: float) -> Iterator[tuple[str, bytes]]:
    """Every file under the nodes' temp dirs, every /dev/shm file made since the cluster
    started, and every Ray process's environment and command line."""
    roots = [n.temp for n in cluster.nodes()]
    for root in roots:
        for path in root.rglob("*"):
            if path.is_file() and not path.is_symlink() and not path.is_socket():
                yield str(path), path.read_bytes()[:MAX_SCAN]
    for path in Path("/dev/shm").iterdir():
        try:
            st = path.lstat()
        except OSError:
            continue
        if path.is_file() and not path.is_symlink() and st.st_mtime >= since - 1:
            with open(path, "rb") as f:
                yield str(path), f.read(MAX_SCAN)
    for node in cluster.nodes():
        for pid in node.pids():
            for what in ("environ", "cmdline"):
                try:
                    yield f"/proc/{pid}/{what}", Path(f"/proc/{pid}/{what}").read_bytes()
                except OSError:
                    continue


def test_trials_run_on_the_worker_through_the_gateway_and_no_form_of_the_endpoint_reaches_ray(
        cluster: Cluster, driver: Driver) -> None:
    harness = driver.harness
    started = min(n.temp.stat().st_mtime for n in cluster.nodes())
    code, out = harness.run_json("job", "--task", SLUG, "--attempts", "3", "--concurrency",
                                 "2", "--cluster", cluster.gcs, "--gateway",
                                 driver.gateway_url, timeout=300)
    assert code == 0, out
    assert out["state"] == "finished"
    summary = out["summary"]
    assert summary["passes"] == 3 and summary["done"] == 3, summary
    (node, count), = summary["nodes"].items()  # every trial on one node: the worker
    assert count == 3 and node.endswith("/" + cluster.worker_id[:12]), (node, cluster)
    job = json.loads((Path(out["job_dir"]) / "job.json").read_text())
    for trial in job["trials"]:
        assert trial["node"] == node and trial["status"] == "passed", trial
        run_dir = harness.runs_root / trial["run_id"]
        assert json.loads((run_dir / "manifest.json").read_text())["node"] == node
        report = json.loads((run_dir / "report.json").read_text())
        gateway = report["gateway"]  # it went through the gateway, pinned
        assert gateway["url"] == driver.gateway_url and gateway["fingerprint"], gateway
        assert gateway["run"] == trial["run_id"], gateway
        assert validate_run(run_dir).ok, run_dir
    ledger = [json.loads(line) for line in
              (driver.gateway_state / "ledger.jsonl").read_text().splitlines()]
    # each trial's requests (readiness's probe says no run yet)
    assert {e["run"] for e in ledger if e["run"]} == {t["run_id"] for t in job["trials"]}
    assert {e["job"] for e in ledger} == {"cluster"}  # the token's job, as the gateway knows
    assert "trials per node" not in out  # JSON: the summary carries it
    # nothing of the driver's folder went up (Ray's client uploads it as the job's
    # working_dir under `uv run` unless told not to)
    assert not [p for n in cluster.nodes() for p in n.temp.rglob("_ray_pkg_*")]
    leaks = []
    events = gcs_task_events(cluster)
    assert "TrialWorker.run" in events and "TrialWorker.pull" in events  # the real events
    for where, data in [*ray_wrote(cluster, started), ("GCS task events", events.encode())]:
        found = survivors(data.decode("latin-1"), {"endpoint": driver.secret})
        leaks += [f"{where}: {f}" for f in found]
    assert leaks == []


GCS_EVENTS = """
import sys
from ray._private.grpc_utils import init_grpc_channel
from ray.core.generated import gcs_service_pb2, gcs_service_pb2_grpc

stub = gcs_service_pb2_grpc.TaskInfoGcsServiceStub(init_grpc_channel(sys.argv[1]))
reply = stub.GetTaskEvents(gcs_service_pb2.GetTaskEventsRequest(limit=100000), timeout=60)
sys.stdout.write(str(reply))
"""


def gcs_task_events(cluster: Cluster) -> str:
    """Every task event the GCS holds (what `ray.util.state.list_tasks(detail=True)` serves
    any cluster client: names, arguments' descriptions, states, and the exceptions' texts
    of failed tasks, `error_info`), as protobuf text, asked of the GCS directly (the test's
    head runs no dashboard, which the state API goes through)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CTO_HARNESS_", "RAY_"))}
    proc = subprocess.run([sys.executable, "-c", GCS_EVENTS, cluster.gcs],
                          env=env | cluster.env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_a_gateway_that_refuses_the_job_is_one_line_before_any_trial(
        cluster: Cluster, driver: Driver) -> None:
    """A token the gateway never issued, one revoked, one expired, a wrong pin: the driver
    asks the gateway first, so each is one `gateway:` line and exit 3, and no job folder
    (so no trial) was made."""
    harness = driver.harness
    stranger = driver.token_file.with_name("stranger.token")
    stranger.write_text("ctogw_" + secrets.token_urlsafe(32) + "\n")
    stranger.chmod(0o600)
    revoked = driver.token_file.with_name("revoked.token")
    driver.gateway("token", "--job", "revoked", "--out", str(revoked))
    assert driver.gateway("revoke", "--job", "revoked")["revoked"] == 1
    expired = driver.token_file.with_name("expired.token")
    ends = driver.gateway("token", "--job", "expired", "--ttl", "1s", "--out",
                          str(expired))["expires"]
    wait_for(lambda: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()) >= ends,
             "the token to expire", timeout=10)
    token_var, pin_var = "CTO_HARNESS_GATEWAY_TOKEN_FILE", "CTO_HARNESS_GATEWAY_FINGERPRINT"
    for change, words in (({token_var: str(stranger)}, "not one this gateway issued"),
                          ({token_var: str(revoked)}, "revoked"),
                          ({token_var: str(expired)}, "expired"),
                          ({pin_var: "ab" * 32}, pin_var)):
        proc = Harness(env=harness.env | change, runs_root=harness.runs_root).run(
            "job", "--task", SLUG, "--cluster", cluster.gcs, "--gateway", driver.gateway_url,
            timeout=120)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 3 and len(lines) == 1, (change, proc.stderr)
        assert "gateway:" in lines[0] and words in lines[0], (change, lines)
        assert "Traceback" not in proc.stderr
        assert not (harness.runs_root / "jobs").exists(), change


def chat_asked(endpoint: ScriptedEndpoint) -> bool:
    return any(r.path.endswith("/chat/completions") for r in endpoint.received)


def test_a_remote_trial_in_flight_streams_back_and_a_token_revoked_mid_job_blocks_the_next(
        cluster: Cluster, driver: Driver) -> None:
    """While the first trial's Case waits on the endpoint (the test holds its answer), its
    run folder is on the job's machine, `running`, with its events so far, and job.json
    names it, as for a local trial. The token is then revoked: the trial in flight still
    gets its answer and passes (its request was admitted), the next one is blocked by its
    own check of the gateway (the job's pre-check had passed)."""
    harness = driver.harness
    driver.gate.clear()
    proc = harness.start("job", "--task", SLUG, "--attempts", "2", "--concurrency", "1",
                         "--cluster", cluster.gcs, "--gateway", driver.gateway_url, "--json")
    try:
        wait_for(lambda: chat_asked(driver.endpoint) or proc.poll() is not None,
                 "the first trial's Case to ask the model")
        assert proc.poll() is None, proc.communicate()
        seen: dict[str, object] = {}

        def streamed() -> bool:
            jobs = list((harness.runs_root / "jobs").glob("*/job.json"))
            if not jobs:
                return False
            with contextlib.suppress(Exception):
                first = read_job(jobs[0].parent).trials[0]
                run_dir = harness.runs_root / (first.run_id or "-")
                events = [e.event for e in read_trace(run_dir)]
                seen.update(trial=first.status, run=summarize(run_dir).status, events=events)
                return (first.status == "running" and seen["run"] == "running"
                        and "case_process_started" in events)
            return False

        wait_for(streamed, "the trial's run folder to stream back", timeout=60)
        assert "report_written" not in seen["events"], seen  # type: ignore[operator]
        # forked from the node's warm launcher, as a local job's trials are
        (remote,) = cluster.worker.scratch.glob(  # type: ignore[union-attr]
            "cto-harness-trial-*/runs/*/manifest.json")
        pid = json.loads(remote.read_text())["harness_pid"]
        parent = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1]
        assert b"core.cli.warm" in Path(f"/proc/{parent}/cmdline").read_bytes()
        driver.gateway("revoke", "--job", "cluster")
    finally:
        driver.gate.set()
    out, err = proc.communicate(timeout=300)
    assert "Traceback" not in err, err
    result = json.loads(out)
    assert result["state"] == "finished", result
    job = json.loads((Path(result["job_dir"]) / "job.json").read_text())
    first, second = job["trials"]
    assert first["status"] == "passed", first
    run_dir = harness.runs_root / first["run_id"]
    assert validate_run(run_dir).ok  # the final folder, not the streamed view
    assert summarize(run_dir).status == "passed"
    assert second["status"] == "blocked", second
    report = json.loads((harness.runs_root / second["run_id"] / "report.json").read_text())
    assert any("gateway" in r and "revoked" in r for r in report["reasons"]), report["reasons"]
    assert not [p for p in harness.runs_root.iterdir() if p.name.startswith(".")]


def test_a_streamed_run_folder_takes_in_only_plain_files_inside_it(tmp_path: Path) -> None:
    """The worker's side (`grown`) against a real folder, and the driver's side (`LiveRun`)
    against what a hostile worker could send instead."""
    remote = tmp_path / "remote" / "20260101T000000Z-t-1"
    (remote / "backend").mkdir(parents=True)
    (remote / "manifest.json").write_text(Manifest(
        run_id=remote.name, task=SLUG, engine="fake", profile="case-qwen", provider="qwen-local",
        model=QWEN, harness_version="0", started_at="2026-01-01T00:00:00Z",
        harness_pid=1).model_dump_json())  # pid 1 on the node: not this host's to ask
    (remote / "trace.jsonl").write_text('{"seq": 1}\n')
    os.symlink("/etc/passwd", remote / "backend" / "link")
    os.mkfifo(remote / "backend" / "fifo")
    root = tmp_path / "runs"
    root.mkdir()
    live, sent = LiveRun(root), {}  # type: ignore[var-annotated]
    assert live.apply({"name": remote.name, "files": grown(remote, sent, 1 << 20)})
    here = root / remote.name
    assert json.loads((here / "manifest.json").read_text())["harness_pid"] == os.getpid()
    assert summarize(here).status == "running"  # this process writes it now
    assert sorted(p.name for p in here.rglob("*")) == ["manifest.json", "trace.jsonl"]
    with (remote / "trace.jsonl").open("a") as f:
        f.write('{"seq": 2}\n')
    assert not live.apply({"name": remote.name, "files": grown(remote, sent, 1 << 20)})
    assert (here / "trace.jsonl").read_text().count("seq") == 2
    # a range that does not continue the file is dropped; a path out of it stops the stream
    assert not live.apply({"name": remote.name, "files": [("trace.jsonl", 999, b"x", False)]})
    assert (here / "trace.jsonl").read_text().count("seq") == 2 and live.broken is None
    os.symlink(tmp_path, here / "backend")  # planted: never written through
    live.apply({"name": remote.name, "files": [("backend/x", 0, b"x", True)]})
    assert live.broken is not None and not (tmp_path / "x").exists()
    evil = LiveRun(root)
    assert not evil.apply({"name": "2026-evil", "files": [("../../escaped", 0, b"x", True)]})
    assert evil.broken is not None and not (tmp_path / "escaped").exists()
    assert not LiveRun(root).apply({"name": "../up", "files": []})
    live.abandon()  # its node lost: no live harness named any more
    assert summarize(here).status == "interrupted"


def test_bad_cluster_input_is_one_line_never_a_hang(tmp_path: Path, cluster: Cluster) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CTO_HARNESS_", "RAY_"))}
    env |= cluster.env | {"CTO_HARNESS_RUNS_ROOT": str(tmp_path / "runs"),
                          "CTO_HARNESS_CLUSTER_TIMEOUT": "8", "PYTHONPATH": str(ROOT)}
    harness = Harness(env=env, runs_root=tmp_path / "runs")

    def one_line(proc: subprocess.CompletedProcess[str], code: int, *words: str) -> None:
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == code and len(lines) == 1, proc.stderr
        assert "Traceback" not in proc.stderr and all(w in lines[0] for w in words), lines
        assert not (tmp_path / "runs" / "jobs").exists()  # no job folder for a refused job

    unreachable = f"ray://127.0.0.1:{free_port()}"
    t0 = time.monotonic()
    one_line(harness.run("job", "--demo", "--cluster", unreachable, timeout=120), 3,
             unreachable)
    assert time.monotonic() - t0 < 60
    one_line(harness.run("job", "--demo", "--cluster", "nowhere", timeout=60), 2, "--cluster")
    one_line(harness.run("job", "--cluster", cluster.client, timeout=60), 2, "--gateway")
    harness.env.pop("RAY_AUTH_MODE")
    one_line(harness.run("job", "--demo", "--cluster", cluster.client, timeout=60), 2,
             "RAY_AUTH_MODE=token")


def test_a_cluster_without_token_auth_is_refused(tmp_path: Path, cluster: Cluster) -> None:
    env = ray_env(tmp_path, tmp_path / "no-token", auth=False)
    head, port, _client = start_head(tmp_path, env, "noauth")
    try:
        wait_for(head.up, "the head without auth")
        assert head.proc.poll() is None, head.log.read_text()
        driver_env = {k: v for k, v in os.environ.items()
                      if not k.startswith(("CTO_HARNESS_", "RAY_"))}
        driver_env |= cluster.env | {"CTO_HARNESS_RUNS_ROOT": str(tmp_path / "runs"),
                                     "CTO_HARNESS_CLUSTER_TIMEOUT": "60",
                                     "PYTHONPATH": str(ROOT)}
        proc = Harness(env=driver_env, runs_root=tmp_path / "runs").run(
            # its GCS address (a driver on a node): the module's head's Ray Client may hold
            # the client servers' first port, which every head on a host starts from
            "job", "--demo", "--cluster", f"127.0.0.1:{port}", timeout=180)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 3 and len(lines) == 1, proc.stderr
        assert "without token auth" in lines[0] and "RAY_AUTH_MODE=token" in lines[0]
        assert not (tmp_path / "runs" / "jobs").exists()
    finally:
        head.stop()


def test_a_local_job_never_imports_ray() -> None:
    """Without --cluster nothing changes: the job command, its runner and the worker side's
    module load without Ray (installed or not)."""
    code = ("import sys; from core.cli.main import build_parser; build_parser('job'); "
            "import core.jobs.runner, core.jobs.cluster, core.jobs.cluster_worker; "
            "assert 'ray' not in sys.modules, 'ray imported'")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_ctrl_c_cancels_the_remote_trials_and_their_runs_come_back(
        tmp_path: Path, cluster: Cluster) -> None:
    harness, proc = start_two_trials(tmp_path, cluster)
    # As soon as both are handed to the worker: the demo Case is done in a blink, so a
    # signal once it runs would race its report. Whichever side of its start a trial is on,
    # it ends cancelled: not started (the worker's slot was told first), or its run SIGINTed
    # on the node and its `cancelled` folder sent back.
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 130, err
    result = json.loads(out)
    assert result["state"] == "cancelled" and result["summary"]["cancelled"] == 2, result
    job = json.loads((Path(result["job_dir"]) / "job.json").read_text())
    for trial in job["trials"]:
        assert trial["status"] == "cancelled" and trial["node"], trial
        if trial["run_id"]:
            report = json.loads((harness.runs_root / trial["run_id"] / "report.json")
                                .read_text())
            assert report["status"] == "cancelled", report["status"]
        else:
            assert "cancelled before it started" in trial["problem"], trial


def job_env(tmp_path: Path, cluster: Cluster) -> Harness:
    """The job's machine for a demo job: Ray's auth settings, a runs root, no endpoint."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CTO_HARNESS_", "RAY_"))}
    env |= cluster.env | {"CTO_HARNESS_RUNS_ROOT": str(tmp_path / "runs"),
                          "CTO_HARNESS_CLUSTER_TIMEOUT": "60", "PYTHONPATH": str(ROOT),
                          KEY_FILE_VAR: os.environ[KEY_FILE_VAR]}
    return Harness(env=env, runs_root=tmp_path / "runs")


def start_two_trials(tmp_path: Path, cluster: Cluster) -> tuple[Harness, subprocess.Popen[str]]:
    """A demo job of two trials over the cluster, returned once both run on the worker."""
    harness = job_env(tmp_path, cluster)
    proc = harness.start("job", "--demo", "--task", SLUG, "--attempts", "2", "--concurrency",
                         "2", "--cluster", cluster.gcs, "--json")
    wait_for(lambda: trials_running(tmp_path, 2) or proc.poll() is not None,
             "both trials to start")
    return harness, proc


def trials_running(tmp_path: Path, n: int) -> bool:
    for path in (tmp_path / "runs" / "jobs").glob("*/job.json"):
        with contextlib.suppress(OSError, ValueError):
            trials = json.loads(path.read_text())["trials"]
            return sum(t["status"] == "running" for t in trials) == n
    return False


def test_a_worker_whose_python_lacks_the_harness_is_one_line_never_a_hang(
        tmp_path: Path, cluster: Cluster) -> None:
    """A worker node started from a Python that has Ray but not cto-harness (a real second
    virtual environment that sees the test's site-packages but not the harness's editable
    install): the job is refused at once, naming the node and the fix."""
    venv = tmp_path / "no-harness"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=120)
    python = venv / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig."
                              "get_paths()['purelib'])"], capture_output=True, text=True,
                             check=True, timeout=60).stdout.strip()
    # a plain path in a .pth: its folder's own .pth files (the harness's editable install)
    # are not read, so Ray and its dependencies import there and `core` does not
    Path(purelib, "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = cluster.ray_env | {"PYTHONPATH": ""}
    check = subprocess.run([str(python), "-c", "import ray\ntry:\n import core\nexcept "
                            "ImportError:\n print('no harness')"], env=env,
                           capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert check.stdout.strip() == "no harness", check.stderr
    bare = start_worker(tmp_path, env, cluster.port, "bare",
                        ray=(str(python), "-m", "ray.scripts.scripts"))
    try:
        wait_for(bare.up, "the worker without the harness to join")
        assert bare.proc.poll() is None, bare.log.read_text()
        t0 = time.monotonic()
        # From a folder without the harness: Ray puts a driver's current folder on its
        # workers' sys.path (meant for a cluster whose machines share their folders), and
        # on this one host the repository would lend the bare node its `core`.
        proc = subprocess.run([sys.executable, "-m", "core.cli", "job", "--demo", "--task",
                               SLUG, "--cluster", cluster.gcs],
                              env=job_env(tmp_path, cluster).env | {"PYTHONPATH": ""},
                              capture_output=True, text=True, timeout=180, cwd=tmp_path)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 3 and len(lines) == 1, proc.stderr
        assert "cannot import cto-harness" in lines[0] and "--extra cluster" in lines[0], lines
        assert time.monotonic() - t0 < 120
        assert not (tmp_path / "runs" / "jobs").exists()
    finally:
        bare.stop()


def test_a_node_lost_mid_job_leaves_its_trials_interrupted_and_resume_finishes_them(
        tmp_path: Path, cluster: Cluster) -> None:
    """Last in the module: it kills the module's worker (a new one joins for the resume)."""
    harness, proc = start_two_trials(tmp_path, cluster)
    cluster.worker.kill()
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 1, err  # some trial still needs a run
    result = json.loads(out)
    assert result["summary"]["interrupted"] == 2, result
    job = json.loads((Path(result["job_dir"]) / "job.json").read_text())
    assert all(t["status"] == "interrupted" and "resumable" in t["problem"]
               for t in job["trials"]), job["trials"]
    for trial in job["trials"]:  # a folder streamed before the node went names no harness
        if trial["run_id"]:
            assert summarize(harness.runs_root / trial["run_id"]).status == "interrupted"
    assert any("--resume" in r for r in job["reasons"]), job["reasons"]

    # no worker left: a new job is refused at once, with the reason (Ray would wait forever)
    alone = harness.run("job", "--demo", "--task", SLUG, "--cluster", cluster.gcs, timeout=120)
    lines = alone.stderr.strip().splitlines()
    assert alone.returncode == 3 and len(lines) == 1, alone.stderr
    assert "no worker node offers cto_worker" in lines[0], lines

    fresh = start_worker(tmp_path, cluster.ray_env, cluster.port, "worker2")
    cluster.extra.append(fresh)
    wait_for(fresh.up, "a new worker to join")
    code, again = harness.run_json("job", "--resume", result["job_id"], timeout=300)
    assert code == 0 and again["summary"]["passes"] == 2, again
    (node, count), = again["summary"]["nodes"].items()
    assert count == 2 and node.endswith("/" + fresh.node_id()[:12]), node
