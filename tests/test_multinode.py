"""Two Ray nodes on loopback: `aura precompute` and `aura train` submitted as Ray jobs spread over both.

A head node and a second node are started with the ``ray`` CLI, each with one CPU and a custom
resource of its own (``node_head``, ``node_second``), so two 1-CPU teacher actors or two 1-CPU
training workers can only be placed one per node. The test submits ``python -m jobs.precompute``
and then ``python -m jobs.train`` (2 Ray Train workers, DeepSpeed ZeRO-2 over gloo) through the
Ray Jobs API, waits for both to succeed, and checks from Ray's state API (served by the head's
dashboard) that:

* precompute: ``TeacherWorker.process`` tasks finished on both nodes, and every shard is committed;
* training: the two ``RayTrainWorker`` actors ran on different nodes, and ``metrics.csv`` holds all
  steps.

Isolation from other Ray instances on this machine (other tests may run a local Ray meanwhile):
every port is chosen free, each node has its own short ``--temp-dir`` (Ray 2.60 accepts it per
node), and teardown never calls ``ray stop`` (which stops every Ray of this user): it signals only
the processes that belong to this cluster, found by a marker variable in their environment (Ray
processes, workers and job drivers inherit it) or by the temp dirs in their command line.

Ray 2.60 facts this relies on:

* ``--node-ip-address=127.0.0.1`` (and ``localhost``) is rewritten to the host's routable address
  (``services.resolve_ip_for_localhost``); another loopback address, ``127.0.0.2``, is kept as given,
  so both nodes register and talk on loopback. The dashboard binds 127.0.0.1.
* With ``~/.ray/auth_token`` present, ``ray start --head`` enables token auth but a joining node does
  not (it fails with InvalidAuthToken): ``RAY_AUTH_MODE=token`` is set for both. A client process reads
  the auth mode once, at start, so the Jobs / State API calls run in child processes with that env.
* Job drivers run under the head's ``JobSupervisor`` actor (0 CPU), and Ray Train's controller takes
  0 CPU, so two 1-CPU nodes are enough for two 1-CPU workers.
"""

from __future__ import annotations

import csv
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import REPO, run_aura

pytestmark = pytest.mark.slow  # a two-node Ray cluster, two Ray jobs, DeepSpeed workers

RAY = Path(sys.executable).with_name("ray")
TINY_CONFIG = REPO / "configs" / "tiny.yaml"
NODE_IP = "127.0.0.2"
MARKER_ENV = "AURA_TEST_RAY_CLUSTER"
JOB_TIMEOUT_S = 600  # generous: two cores shared with other tests
TRAIN_STEPS = 2
# Processes of the cluster and everything they start (job drivers, workers) see these.
CLUSTER_ENV = {
    "OMP_NUM_THREADS": "1",
    "DS_ACCELERATOR": "cpu",
    "TOKENIZERS_PARALLELISM": "false",
    "HF_HUB_OFFLINE": "1",
    "RAY_USAGE_STATS_ENABLED": "0",
    # `ray start --head` turns token auth on when ~/.ray/auth_token exists, but a joining node does not
    # (it then fails with InvalidAuthToken): say it to both, explicitly.
    "RAY_AUTH_MODE": "token",
    "AURA_CACHE_DIR": os.environ.get("AURA_CACHE_DIR", os.path.expanduser("~/.cache/aura")),
    "TORCH_EXTENSIONS_DIR": os.environ.get("TORCH_EXTENSIONS_DIR",
                                           os.path.expanduser("~/.cache/aura/torch_extensions")),
}


# ---------------------------------------------------------------------------------------------- cluster
def free_ports(count: int) -> list[int]:
    """``count`` distinct ports free on 127.0.0.1 now (all held open together, so they differ)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


class LoopbackRayCluster:
    """A head and a second node started with ``ray start`` on 127.0.0.1; :meth:`stop` kills only them."""

    def __init__(self) -> None:
        # Short paths: Ray's unix sockets live under the temp dir (socket paths are limited to 107 bytes).
        self.root = Path(tempfile.mkdtemp(prefix="aura-mn-", dir="/tmp"))
        self.temp_dirs = {"head": self.root / "h", "second": self.root / "s"}
        self.marker = uuid.uuid4().hex
        self.env = {**os.environ, **CLUSTER_ENV, MARKER_ENV: self.marker}
        self.env.pop("RAY_ADDRESS", None)
        self.gcs_port = self.dashboard_port = 0
        self.node_ids: dict[str, str] = {}

    @property
    def gcs_address(self) -> str:
        return f"{NODE_IP}:{self.gcs_port}"

    @property
    def dashboard_url(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    def _ray_start(self, args: list[str]) -> None:
        done = subprocess.run([str(RAY), "start", *args], env=self.env, cwd=REPO, capture_output=True, text=True,
                              timeout=180)
        if done.returncode != 0:
            raise RuntimeError(f"ray start {' '.join(args)} failed ({done.returncode}):\n{done.stdout[-3000:]}\n"
                               f"{done.stderr[-3000:]}")

    @staticmethod
    def _node_ports() -> list[str]:
        names = ["--node-manager-port", "--object-manager-port", "--dashboard-agent-listen-port",
                 "--dashboard-agent-grpc-port", "--runtime-env-agent-port", "--metrics-export-port"]
        return [f"{name}={port}" for name, port in zip(names, free_ports(len(names)))]

    def start(self) -> None:
        common = [f"--node-ip-address={NODE_IP}", "--num-cpus=1", "--num-gpus=0", "--disable-usage-stats",
                  "--object-store-memory=150000000"]
        self.gcs_port, self.dashboard_port, client_port = free_ports(3)
        self._ray_start(["--head", f"--port={self.gcs_port}", "--dashboard-host=127.0.0.1",
                         f"--dashboard-port={self.dashboard_port}", f"--ray-client-server-port={client_port}",
                         f"--temp-dir={self.temp_dirs['head']}", '--resources={"node_head": 1}',
                         *common, *self._node_ports()])
        self._ray_start([f"--address={self.gcs_address}", f"--temp-dir={self.temp_dirs['second']}",
                         '--resources={"node_second": 1}', *common, *self._node_ports()])
        self._wait_for_nodes()

    def _wait_for_nodes(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        nodes: list[dict] = []
        while time.monotonic() < deadline:
            try:
                nodes = self.client("nodes")
            except RuntimeError:  # the dashboard may still be starting
                nodes = []
            for node in nodes:
                for name in ("head", "second"):
                    if node["state"] == "ALIVE" and f"node_{name}" in node["resources"]:
                        self.node_ids[name] = node["node_id"]
            if len(self.node_ids) == 2:
                return
            time.sleep(2)
        raise RuntimeError(f"the two nodes did not come up within {timeout:.0f} s: {nodes}")

    # -- teardown ---------------------------------------------------------------------------------
    def _own_pids(self) -> set[int]:
        """Processes of this cluster: the marker in their environment or a temp dir in their command line."""
        pids = set()
        needles = [str(p).encode() for p in self.temp_dirs.values()]
        marker = f"{MARKER_ENV}={self.marker}".encode()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                cmdline = (entry / "cmdline").read_bytes()
                environ = (entry / "environ").read_bytes()
            except OSError:  # gone, or not ours to read
                continue
            if marker in environ.split(b"\0") or any(n in cmdline for n in needles):
                pids.add(int(entry.name))
        return pids

    def stop(self) -> None:
        """SIGTERM this cluster's processes, then SIGKILL what is left; never touches other Rays."""
        for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
            pids = self._own_pids()
            for pid in pids:
                try:
                    os.kill(pid, sig)
                except (ProcessLookupError, PermissionError):
                    pass
            deadline = time.monotonic() + wait
            while pids and time.monotonic() < deadline:
                time.sleep(0.25)
                pids = self._own_pids()
            if not pids:
                break
        shutil.rmtree(self.root, ignore_errors=True)

    # -- jobs and state ---------------------------------------------------------------------------
    def client(self, op: str, timeout: float = 120, **kwargs):
        """Run one Jobs/State API call (:func:`_client_op`) in a child process with the cluster's env.

        A child, because the Ray client reads its auth mode once per process: this pytest process may
        already hold another Ray's settings (a local ``ray.init`` in another test), or none.
        """
        code = ("import json, sys; sys.path.insert(0, sys.argv[1]); from tests.test_multinode import _client_op; "
                "print('@@' + json.dumps(_client_op(sys.argv[2], sys.argv[3], **json.loads(sys.argv[4]))))")
        done = subprocess.run([sys.executable, "-c", code, str(REPO), self.dashboard_url, op, json.dumps(kwargs)],
                              env=self.env, cwd=REPO, capture_output=True, text=True, timeout=timeout)
        lines = [line for line in done.stdout.splitlines() if line.startswith("@@")]
        if done.returncode != 0 or not lines:
            raise RuntimeError(f"ray client call {op} failed ({done.returncode}):\n{done.stderr[-3000:]}")
        return json.loads(lines[-1][2:])

    def run_job(self, entrypoint: str, timeout: float = JOB_TIMEOUT_S) -> str:
        """Submit ``entrypoint`` as a Ray job, wait for it and return its logs; fail with them otherwise."""
        job = self.client("submit", entrypoint=entrypoint, env_vars=CLUSTER_ENV)
        deadline = time.monotonic() + timeout
        state = self.client("status", job_id=job)
        while not state["terminal"] and time.monotonic() < deadline:
            time.sleep(3)
            state = self.client("status", job_id=job)
        logs = self.client("logs", job_id=job)
        if state["status"] != "SUCCEEDED":
            if not state["terminal"]:
                self.client("stop", job_id=job)
            pytest.fail(f"job {entrypoint!r} ended {state['status']} ({state['message']}):\n{logs[-6000:]}")
        return logs

    def tasks(self, name: str, timeout: float = 60) -> list[dict]:
        """Finished tasks named ``name``; task events reach the GCS asynchronously, so poll a little."""
        deadline = time.monotonic() + timeout
        while True:
            finished = [t for t in self.client("tasks", name=name) if t["state"] == "FINISHED"]
            if finished or time.monotonic() > deadline:
                return finished
            time.sleep(2)


def _client_op(dashboard_url: str, op: str, **kw):
    """One Ray Jobs / State API call against ``dashboard_url``; JSON-able result (runs in a child process)."""
    from ray.job_submission import JobSubmissionClient
    from ray.util.state import list_actors, list_nodes, list_tasks

    state = dict(address=dashboard_url, detail=True, limit=10000, raise_on_missing_output=False)
    if op == "nodes":
        return [{"node_id": n.node_id, "state": n.state, "resources": n.resources_total or {}}
                for n in list_nodes(**state)]
    if op == "tasks":
        return [{"node_id": t.node_id, "state": t.state, "actor_id": t.actor_id, "worker_pid": t.worker_pid}
                for t in list_tasks(filters=[("name", "=", kw["name"])], **state)]
    if op == "actors":
        return [{"node_id": a.node_id, "state": a.state, "actor_id": a.actor_id, "pid": a.pid}
                for a in list_actors(filters=[("class_name", "=", kw["class_name"])], **state)]
    client = JobSubmissionClient(dashboard_url)
    if op == "submit":
        return client.submit_job(entrypoint=kw["entrypoint"], runtime_env={"env_vars": kw["env_vars"]})
    if op == "status":
        info = client.get_job_info(kw["job_id"])
        return {"status": str(info.status.value), "terminal": info.status.is_terminal(), "message": info.message}
    if op == "logs":
        return client.get_job_logs(kw["job_id"])
    if op == "stop":
        return client.stop_job(kw["job_id"])
    raise ValueError(f"unknown op {op!r}")


@pytest.fixture(scope="module")
def cluster():
    ray_cluster = LoopbackRayCluster()
    try:
        ray_cluster.start()
        yield ray_cluster
    finally:
        ray_cluster.stop()


def job_command(module: str, workdir: Path, *overrides: str, flags: str = "") -> str:
    """The job's shell entrypoint: this venv's python, run from the repository (absolute paths only)."""
    sets = [arg for o in (f"workdir={workdir}", *overrides) for arg in ("--set", o)]
    command = [sys.executable, "-m", module, "--config", str(TINY_CONFIG), *sets, *flags.split()]
    return f"cd {shlex.quote(str(REPO))} && {shlex.join(command)}"


# ---------------------------------------------------------------------------------------------- test
def test_precompute_and_train_jobs_spread_over_two_nodes(cluster, tmp_path):
    from pipeline.config import load_config
    from pipeline.data.shards import ShardSet
    from pipeline.store import open_store_for

    workdir = tmp_path / "run"
    base = ["--config", str(TINY_CONFIG), "--set", f"workdir={workdir}"]
    for step in (["corpus", "--set", "corpus.num_utterances=8"],
                 ["ingest", str(workdir / "corpus" / "manifest.jsonl")]):
        done = run_aura(step[0], *base, *step[1:])
        assert done.returncode == 0, f"aura {step[0]} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    cfg = load_config(TINY_CONFIG, [f"workdir={workdir}"])
    shards = ShardSet(cfg.paths.shards).shard_names()
    assert len(shards) >= 2, shards

    # -- precompute: two 1-CPU teacher actors, one per node ---------------------------------------
    t0 = time.perf_counter()
    logs = cluster.run_job(job_command("jobs.precompute", workdir, "precompute.num_workers=2"))
    precompute_s = time.perf_counter() - t0
    assert open_store_for(cfg).committed_shards() >= set(shards), logs[-3000:]
    processed = cluster.tasks("TeacherWorker.process")
    by_node = Counter(t["node_id"] for t in processed)
    assert sum(by_node.values()) == len(shards), by_node
    assert set(by_node) == set(cluster.node_ids.values()), (by_node, cluster.node_ids)

    # -- training: two 1-CPU Ray Train workers, one per node, DeepSpeed over gloo -----------------
    t0 = time.perf_counter()
    logs = cluster.run_job(job_command("jobs.train", workdir, "train.num_workers=2", f"train.max_steps={TRAIN_STEPS}",
                                       f"train.checkpoint_every={TRAIN_STEPS}", flags="--fresh"))
    train_s = time.perf_counter() - t0
    assert (workdir / "checkpoints" / "distill" / "export" / "student.safetensors").is_file(), logs[-3000:]
    workers = cluster.client("actors", class_name="RayTrainWorker")
    assert len(workers) >= 2, workers
    assert {w["node_id"] for w in workers} == set(cluster.node_ids.values()), (workers, cluster.node_ids)
    with open(workdir / "checkpoints" / "distill" / "metrics.csv", newline="") as f:
        steps = [int(r["step"]) for r in csv.DictReader(f)]
    assert steps == list(range(1, TRAIN_STEPS + 1)), steps
    print(json.dumps({"precompute_job_s": round(precompute_s, 1), "train_job_s": round(train_s, 1),
                      "precompute_tasks_per_node": dict(by_node), "nodes": cluster.node_ids}))
