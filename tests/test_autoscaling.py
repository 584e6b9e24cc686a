"""cluster.yaml's GPU worker type scales on the model stage's demand: Ray's fake multi-node provider, real raylets.

The cluster config is derived from cluster.yaml (node types, their resources, min/max workers, upscaling
speed; only the provider, the head's type name and a short idle timeout differ), a token-authenticated
``ray start --head --autoscaling-config=...`` runs Ray's own autoscaler (v1 monitor) on it, and every worker
node the autoscaler launches is a real raylet on this machine declaring the worker type's resources (GPUs
as logical resources). The driver is a separate Python process (the pytest process may already hold an
in-process Ray): it runs the model stage exactly as the pair job places it (``reid_ray.pipeline.apply_stage``
with ``configs/gpu.yaml``'s ``resources.segment``: 2 CPUs + 1 GPU per actor, 1..8 actors), records every
0.5 s the alive GPU nodes and the GPU demand the autoscaler sees, and after the job waits for the idle GPU
workers to be terminated.

``ray.cluster_utils.AutoscalingCluster`` is not used: it needs ``fake_multi_node/example.yaml`` (not in
the wheel) and runs ``ray stop --force``, which kills every Ray process on the machine.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

from ray_helpers import _SCRUB, _tail, free_ports, stop_head

ROOT = Path(__file__).resolve().parents[1]
CLUSTER_YAML = ROOT / "cluster.yaml"
GPU_PROFILE = ROOT / "configs" / "gpu.yaml"

# The fake provider always tags the head node with this type (fake_multi_node/node_provider.py).
FAKE_HEAD_NODE_TYPE = "ray.head.default"
# Worker raylets' object stores: small, they hold a few integer batches (Ray's minimum is 75 MB).
FAKE_OBJECT_STORE_BYTES = 100 * 1024 * 1024
IDLE_TIMEOUT_MINUTES = 0.1  # 6 s instead of cluster.yaml's 10 minutes


def fake_cluster_config(
    cluster: dict[str, Any], gcs_address: str, idle_timeout_minutes: float = IDLE_TIMEOUT_MINUTES
) -> dict[str, Any]:
    """The autoscaling config of ``cluster`` (cluster.yaml, parsed) for Ray's ``fake_multinode`` provider.

    Kept from ``cluster``: every worker type with its resources, min_workers and max_workers; the head's
    resources; the cluster-wide max_workers and upscaling_speed. Changed: the provider (nodes are raylets
    on this machine, joining the GCS at ``gcs_address``), the head type's name (the fake provider tags its
    head ``ray.head.default``), idle_timeout_minutes, no node_config, no setup or start commands.
    """
    head_type = cluster["head_node_type"]
    types: dict[str, Any] = {}
    for name, node_type in cluster["available_node_types"].items():
        resources = dict(node_type["resources"])
        if name == head_type:
            types[FAKE_HEAD_NODE_TYPE] = {"resources": resources, "node_config": {}, "max_workers": 0}
        else:
            types[name] = {
                "resources": {**resources, "object_store_memory": FAKE_OBJECT_STORE_BYTES},
                "node_config": {},
                "min_workers": node_type.get("min_workers", 0),
                "max_workers": node_type["max_workers"],
            }
    return {
        "cluster_name": f"{cluster['cluster_name']}-fake",
        "max_workers": cluster["max_workers"],
        "upscaling_speed": cluster.get("upscaling_speed", 1.0),
        "idle_timeout_minutes": idle_timeout_minutes,
        "provider": {
            "type": "fake_multinode",
            "gcs_address": gcs_address,
            "use_node_id_as_ip": True,  # every fake node has this machine's IP
            "disable_node_updaters": True,  # nothing to SSH into
            "disable_launch_config_check": True,
        },
        "available_node_types": types,
        "head_node_type": FAKE_HEAD_NODE_TYPE,
        "auth": {},
        "docker": {},
        "file_mounts": {},
        "cluster_synced_files": [],
        "file_mounts_sync_continuously": False,
        "rsync_exclude": [],
        "rsync_filter": [],
        "initialization_commands": [],
        "setup_commands": [],
        "head_setup_commands": [],
        "worker_setup_commands": [],
        "head_start_ray_commands": [],
        "worker_start_ray_commands": [],
    }


@dataclass(frozen=True)
class FakeCluster:
    address: str  # GCS 127.0.0.1:port
    env: dict[str, str]  # client environment: token auth, no stray RAY_ADDRESS
    config: dict[str, Any]
    log: Path


@contextlib.contextmanager
def fake_autoscaling_cluster(cluster: dict[str, Any], start_timeout_s: float = 120) -> Iterator[FakeCluster]:
    """``ray start --head --block --autoscaling-config`` for the fake provider, in its own session with its
    own token, ports and temp dir; the autoscaler's raylets live in that session too, so stopping the
    session (ray_helpers.stop_head, never ``ray stop``) takes the whole cluster down."""
    base = Path(tempfile.mkdtemp(prefix="rr_as_", dir="/tmp"))  # short: unix socket paths are <= 107 chars
    token_file = base / "auth_token"
    token_file.write_text(secrets.token_hex(32))
    token_file.chmod(0o600)
    gcs_port, client_port, agent_port = free_ports(3)
    address = f"127.0.0.1:{gcs_port}"
    config = fake_cluster_config(cluster, address)
    config_file = base / "autoscaling.yaml"
    config_file.write_text(yaml.safe_dump(config))
    head_resources = dict(config["available_node_types"][FAKE_HEAD_NODE_TYPE]["resources"])
    auth_env = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token_file)}
    clean = {k: v for k, v in os.environ.items() if k not in _SCRUB}
    server_env = {
        **clean,
        **auth_env,
        "RAY_FAKE_CLUSTER": "1",  # required by the fake provider
        "AUTOSCALER_UPDATE_INTERVAL_S": "1",  # autoscaler loop every second (default 5)
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0",
    }
    cmd = [
        "ray", "start", "--head", "--block", "--disable-usage-stats",
        "--port", str(gcs_port), "--include-dashboard", "false",
        "--num-cpus", str(head_resources.pop("CPU", 0)), "--num-gpus", str(head_resources.pop("GPU", 0)),
        "--object-store-memory", str(FAKE_OBJECT_STORE_BYTES),
        "--temp-dir", str(base / "r"), "--autoscaling-config", str(config_file),
        "--ray-client-server-port", str(client_port), "--dashboard-agent-listen-port", str(agent_port),
    ]  # fmt: skip
    if head_resources:
        cmd += ["--resources", json.dumps(head_resources)]
    log = base / "ray_start.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, env=server_env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    @dataclass(frozen=True)
    class _Head:  # what stop_head needs
        pid: int

    try:
        deadline = time.monotonic() + start_timeout_s
        while "Ray runtime started" not in _tail(log, 100_000):
            if proc.poll() is not None:
                raise RuntimeError(f"ray start exited with {proc.returncode}:\n{_tail(log)}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"fake cluster head not up after {start_timeout_s}s:\n{_tail(log)}")
            time.sleep(0.25)
        yield FakeCluster(address=address, env={**clean, **auth_env}, config=config, log=log)
    finally:
        stop_head(_Head(proc.pid), proc)
        shutil.rmtree(base, ignore_errors=True)


def _monitor_log(cluster: FakeCluster) -> Path:
    """The autoscaler's log (Ray's monitor process on the head)."""
    return cluster.log.parent / "r" / "session_latest" / "logs" / "monitor.log"


# --- what runs in the driver process (``python -c``, imports this module) ---


class TinyGpuModel:
    """A callable-class stage like the segmenter: set up once per actor, one batch in, one batch out."""

    def __init__(self, delay_s: float):
        import ray

        self.delay_s = delay_s
        self.node_id = ray.get_runtime_context().get_node_id()
        self.gpu_ids = [str(g) for g in ray.get_gpu_ids()]

    def __call__(self, batch: dict) -> dict:
        import numpy as np

        time.sleep(self.delay_s)
        n = len(batch["id"])
        return {
            "id": batch["id"],
            "y": batch["id"] * 3 + 1,
            "node": np.array([self.node_id] * n),
            "gpus": np.array([",".join(self.gpu_ids)] * n),
        }


def _gpu_nodes() -> list[str]:
    import ray

    return sorted(n["NodeID"] for n in ray.nodes() if n["Alive"] and n["Resources"].get("GPU", 0) > 0)


def _gpu_demand(address: str) -> tuple[int, int]:
    """What the autoscaler scales on, in GPU bundles: (tasks/actors waiting for a GPU, as the raylets report
    them; bundles asked for with ``request_resources``, which is how Ray Data's cluster autoscaler asks for
    more nodes of a shape it already has)."""
    from ray._private.ray_constants import AUTOSCALER_RESOURCE_REQUEST_CHANNEL
    from ray.autoscaler.v2.sdk import get_cluster_status
    from ray.experimental.internal_kv import _internal_kv_get

    demands = get_cluster_status(address).resource_demands.ray_task_actor_demand
    pending = sum(b.count for d in demands for b in d.bundles_by_count if b.bundle.get("GPU", 0) > 0)
    requested = json.loads(_internal_kv_get(AUTOSCALER_RESOURCE_REQUEST_CHANNEL) or b"[]")  # v1 autoscaler
    return pending, sum(1 for bundle in requested if bundle.get("GPU", 0) > 0)


def run_driver(address: str, out: str, rows: int, delay_s: float, gpu_nodes_after: int, wait_after_s: float) -> None:
    """The model stage on the fake cluster, placed as the pair job places it; then wait (at most
    ``wait_after_s``) for ``gpu_nodes_after`` GPU nodes. Writes the rows and a timeline of
    (seconds, alive GPU node ids, pending GPU demand, requested GPU bundles) to ``out``."""
    import threading

    import ray
    import ray.data

    from reid_ray.config import load_config
    from reid_ray.pipeline import Stage, apply_stage

    ray.init(address=address, log_to_driver=False)
    seen: list[list[Any]] = []
    stop = threading.Event()
    t0 = time.monotonic()

    def watch() -> None:
        while not stop.is_set():
            try:
                seen.append([time.monotonic() - t0, _gpu_nodes(), *_gpu_demand(address)])
            except Exception as e:  # a slow GCS answer under load: skip this sample, keep watching
                print(f"watch: {e!r}", file=sys.stderr)
            stop.wait(0.5)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    resources = load_config(GPU_PROFILE).resources.segment  # the model stage of the GPU profile
    ds = ray.data.range(rows, override_num_blocks=rows)
    ds = apply_stage(ds, Stage("model", TinyGpuModel, {"delay_s": delay_s}, resources))
    result = ds.take_all()
    job_s = time.monotonic() - t0
    del ds
    deadline = time.monotonic() + wait_after_s
    while time.monotonic() < deadline and not (seen and seen[-1][0] > job_s and len(seen[-1][1]) == gpu_nodes_after):
        time.sleep(0.25)
    stop.set()
    watcher.join()
    Path(out).write_text(
        json.dumps(
            {
                "job_s": job_s,
                "resources": resources.model_dump(),
                "head": ray.get_runtime_context().get_node_id(),
                "rows": [{k: (v.item() if hasattr(v, "item") else v) for k, v in r.items()} for r in result],
                "seen": seen,
            }
        )
    )
    ray.shutdown()


# Ray Data's cluster autoscaler asks for one more node of each busy shape when the cluster's average
# utilisation over a window (10 s) is above 75 %, at most once per 10 s. Both at 3 s here: the same
# decisions, sooner: the GPU type's max (4) was reached about 40 s into the job here, under load.
RAY_DATA_TIMING = {"RAY_DATA_CLUSTER_UTIL_AVG_WINDOW_S": "3", "RAY_DATA_MIN_GAP_BETWEEN_AUTOSCALING_REQUESTS": "3"}


def _in_subprocess(cluster: FakeCluster, call: str, timeout_s: float) -> None:
    """``t.<call>`` with this module imported as ``t`` in a fresh Python that is a client of ``cluster``."""
    # Classes of this module travel by value: the workers need not import the tests directory.
    code = (
        f"import sys, ray.cloudpickle; sys.path[:0] = [{str(ROOT / 'tests')!r}]; import test_autoscaling as t; "
        f"ray.cloudpickle.register_pickle_by_value(t); t.{call}"
    )
    env = {**cluster.env, **RAY_DATA_TIMING}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=timeout_s)
    if done.returncode != 0:
        raise AssertionError(
            f"{call} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-6000:]}\n"
            f"--- monitor.log ---\n{_tail(_monitor_log(cluster), 6000)}"
        )


# --- tests ---


@pytest.fixture(scope="module")
def cluster_yaml() -> dict[str, Any]:
    return yaml.safe_load(CLUSTER_YAML.read_text())


def _gpu_type(config: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    (name, node_type), *more = [
        (n, t) for n, t in config["available_node_types"].items() if t["resources"].get("GPU", 0) >= 1
    ]
    assert not more, "one GPU worker type expected"
    return name, node_type


def test_fake_config_keeps_cluster_yaml_node_types(cluster_yaml: dict[str, Any]) -> None:
    import jsonschema
    import ray

    fake = fake_cluster_config(cluster_yaml, "127.0.0.1:6379")
    schema = json.loads((Path(ray.__file__).parent / "autoscaler" / "ray-schema.json").read_text())
    jsonschema.validate(fake, schema)
    name, gpu = _gpu_type(fake)
    real = cluster_yaml["available_node_types"][name]
    assert {k: v for k, v in gpu["resources"].items() if k != "object_store_memory"} == real["resources"]
    assert (gpu["min_workers"], gpu["max_workers"]) == (real["min_workers"], real["max_workers"])
    head = cluster_yaml["available_node_types"][cluster_yaml["head_node_type"]]
    assert fake["available_node_types"][FAKE_HEAD_NODE_TYPE]["resources"] == head["resources"]
    assert fake["max_workers"] == cluster_yaml["max_workers"]


def test_model_stage_resources_fit_one_gpu_worker(cluster_yaml: dict[str, Any]) -> None:
    # An actor that no worker type can hold is infeasible: the autoscaler would never launch anything for it.
    from reid_ray.config import load_config

    segment = load_config(GPU_PROFILE).resources.segment
    _, gpu = _gpu_type(cluster_yaml)
    assert segment.num_gpus <= gpu["resources"]["GPU"] and segment.num_cpus <= gpu["resources"]["CPU"]


@pytest.mark.ray
@pytest.mark.timeout(480)
def test_gpu_workers_follow_the_model_stage_demand(cluster_yaml: dict[str, Any], tmp_path: Path) -> None:
    if shutil.which("ray") is None:
        pytest.skip("the `ray` CLI is not on PATH")
    _, gpu_type = _gpu_type(cluster_yaml)
    lo, hi = gpu_type["min_workers"], gpu_type["max_workers"]
    rows, delay_s = 48, 1.5  # 72 s of model work on one actor
    t0 = time.monotonic()
    with fake_autoscaling_cluster(cluster_yaml) as cluster:
        print(f"\nfake cluster up in {time.monotonic() - t0:.1f}s")
        out = tmp_path / "driver.json"
        _in_subprocess(cluster, f"run_driver({cluster.address!r}, {str(out)!r}, {rows}, {delay_s}, {lo}, 120)", 360)
        job = json.loads(out.read_text())
        monitor_log = _monitor_log(cluster).read_text(errors="replace")

    seen = job["seen"]
    during = [s for s in seen if s[0] <= job["job_s"]]
    after = [s for s in seen if s[0] > job["job_s"]]
    counts = [len(nodes) for _, nodes, *_ in during]
    print(f"job {job['job_s']:.1f}s; GPU nodes every 0.5 s: {counts}")
    print(f"pending GPU actors: {[p for *_, p, _ in during]}")
    print(f"GPU bundles requested by Ray Data: {[r for *_, r in during]}")
    print(f"after the job: {[(round(t, 1), len(n)) for t, n, *_ in after]}")

    # The job is right, and every batch ran in an actor on a GPU worker, holding one (logical) GPU.
    assert sorted(r["id"] for r in job["rows"]) == list(range(rows))
    assert all(r["y"] == 3 * r["id"] + 1 for r in job["rows"])
    launched = {n for _, nodes, *_ in seen for n in nodes}
    used = {r["node"] for r in job["rows"]}
    assert used <= launched and job["head"] not in used, (used, launched)
    assert all(r["gpus"] and "," not in r["gpus"] for r in job["rows"])
    # GPU workers: min before the demand, launched on it, more as the actor pool grew, never above max.
    assert counts[0] == lo, seen[:3]
    assert min(2, hi) <= max(counts) <= hi, counts
    assert all(len(nodes) <= hi for _, nodes, *_ in seen)
    # Once the work was done, the idle GPU workers went away, each terminated by the autoscaler as idle.
    assert after and len(after[-1][1]) == lo, after[-5:]
    terminated_idle = set(re.findall(r"Terminating the node with id (\w+) .*\(idle\)", monitor_log))
    assert launched <= terminated_idle, (launched, terminated_idle)
