"""A real multi-node Ray cluster on 127.0.0.1: work spreads over nodes and survives losing one.

`ray.cluster_utils.Cluster` starts a head (0 CPUs, so it only coordinates, as in kuberay/) and
worker nodes, each a separate raylet with its own object store - the same failure domains as pods.
Each job is a plain function over the connected cluster, so the test switches between a toy Ray
Data job (which reports the node each task ran on) and the real batch pipeline
(data_pipeline.pipeline.run_pipeline) without changing the assertions.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.cluster import _procs

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]

LOOPBACK = "127.0.0.1"
# Each worker node: 1 CPU, 150 MiB object store (cluster_utils default) - a 2-core machine holds 3.
NODE_ARGS: dict[str, Any] = {"num_cpus": 1, "node_ip_address": LOOPBACK}


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    import ray
    from ray.cluster_utils import Cluster

    from cluster.ray_runtime import init_ray, shutdown_ray

    if ray.is_initialized():
        pytest.skip("a Ray instance is already connected in this process")
    temp_dir = f"/tmp/vrm-{os.getpid()}-{secrets.token_hex(3)}"  # short: unix socket path limit
    c = Cluster(initialize_head=False)
    try:
        _add_node(c, num_cpus=0, node_ip_address=LOOPBACK, include_dashboard=False, temp_dir=temp_dir)
        for _ in range(2):
            _add_node(c, **NODE_ARGS)
        c.wait_for_nodes()
        init_ray(c.address)
        yield c
    finally:
        shutdown_ray()
        c.shutdown()
        _procs.kill_by_path(temp_dir)  # nodes whose start timed out are not in `c`
        shutil.rmtree(temp_dir, ignore_errors=True)


def _add_node(c: Any, **args: Any) -> Any:
    """cluster_utils' add_node, retried: a raylet must register within a hard-coded 30 s, which a
    heavily loaded 2-core machine sometimes misses."""
    for attempt in range(3):
        try:
            return c.add_node(**args)
        except Exception as e:
            if "timed out during startup" not in str(e) or attempt == 2:
                raise
    raise AssertionError("unreachable")


# --- jobs: each returns (items it was given, items it produced, node ids it ran on or None) ------------

JobResult = tuple[list[str], list[str], set[str] | None]


def toy_job(n: int = 24, seconds_per_item: float = 0.4) -> Callable[[Path], JobResult]:
    """Ray Data over `n` ids; each batch records the node it ran on."""

    def run(_tmp: Path) -> JobResult:
        import ray.data

        def tag(batch: dict[str, Any]) -> dict[str, Any]:
            import ray

            time.sleep(seconds_per_item * len(batch["id"]))
            node = ray.get_runtime_context().get_node_id()
            return {"id": [str(i) for i in batch["id"]], "node": [node] * len(batch["id"])}

        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        # num_cpus=1: one task per 1-CPU worker node at a time, so both nodes must take part.
        rows = ray.data.range(n, override_num_blocks=n).map_batches(tag, batch_size=1, num_cpus=1).take_all()
        return [str(i) for i in range(n)], [r["id"] for r in rows], {r["node"] for r in rows}

    return run


def pipeline_job(sources: list[str]) -> Callable[[Path], JobResult]:
    """The real batch pipeline (ingest, probe, sample, encode) over local video files."""

    def run(tmp: Path) -> JobResult:
        import pyarrow.parquet as pq

        from cluster.config import load_settings
        from data_pipeline.pipeline import PipelineConfig, run_pipeline

        settings = load_settings(env={"VIDRAY_DATA_DIR": str(tmp / "data")})
        out = tmp / "out"
        summary = run_pipeline(sources, PipelineConfig(out=out, num=4, audio_segment_s=None), settings)
        assert summary["failed"] == 0, summary
        frames = pq.read_table(out / "frames", columns=["source", "t"]).to_pylist()
        keys = [f"{f['source']}@{f['t']:.3f}" for f in frames]
        assert len(keys) == len(set(keys)), "a retried task wrote its frames twice"
        produced = sorted({f["source"] for f in frames})
        return sorted(sources), produced, None

    return run


def _raylet_pid(node: Any) -> int:
    return int(node.all_processes["raylet"][0].process.pid)


def _busy(node: Any) -> bool:
    """Whether a worker process of `node` is executing a task (its title is `ray::<task>`, not IDLE)."""
    for child in _procs.tree(_raylet_pid(node)):
        try:
            title = " ".join(psutil.Process(child).cmdline())
        except psutil.NoSuchProcess:
            continue
        if title.startswith("ray::") and not title.startswith("ray::IDLE"):
            return True
    return False


def run_killing_a_node(cluster: Any, job: Callable[[Path], JobResult], tmp: Path) -> JobResult:
    """Add a victim worker node, start `job`, hard-kill the victim while it runs a task, return the result."""
    victim = _add_node(cluster, **NODE_ARGS)
    cluster.wait_for_nodes()
    result: dict[str, Any] = {}

    def target() -> None:
        try:
            result["value"] = job(tmp)
        except BaseException as e:  # re-raised in the test thread
            result["error"] = e

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not _busy(victim):
        assert thread.is_alive(), f"the job ended before the victim node ran anything: {result}"
        assert time.monotonic() < deadline, "the victim node never ran a task"
        time.sleep(0.05)
    cluster.remove_node(victim, allow_graceful=False)  # SIGKILL: a crashed pod, not a drain
    thread.join(timeout=300)
    assert not thread.is_alive(), "the job did not finish after the node died"
    if "error" in result:
        raise result["error"]
    return result["value"]


def test_job_runs_on_several_nodes(cluster: Any, tmp_path: Path) -> None:
    given, produced, nodes = toy_job()(tmp_path)
    assert sorted(produced) == sorted(given)
    head_id = cluster.head_node.node_id
    assert nodes is not None and head_id not in nodes, "the head has 0 CPUs and must run no task"
    assert len(nodes) >= 2, f"all tasks ran on {nodes}"


def test_toy_job_survives_losing_a_worker(cluster: Any, tmp_path: Path) -> None:
    given, produced, _ = run_killing_a_node(cluster, toy_job(), tmp_path)
    assert sorted(produced) == sorted(given), "an item was lost or duplicated"


def test_batch_pipeline_survives_losing_a_worker(cluster: Any, tmp_path: Path, media: Any) -> None:
    # Four containers/codecs; more only adds minutes on a 2-core machine.
    sources = [str(p) for p in (media.scenes.path, media.vfr, media.speech, media.webm_vp9)]
    given, produced, _ = run_killing_a_node(cluster, pipeline_job(sources), tmp_path)
    assert produced == given, "a video produced no frames"


def test_training_recipe_runs_on_the_cluster(cluster: Any, tmp_path: Path) -> None:
    """The RayJob's entrypoint (tiny smoke overrides) as a driver of the 3-node cluster.

    Two Ray Train workers of 0.75 CPU cannot share a 1-CPU node and the head has none, so a
    successful run means training spanned two nodes (DeepSpeed over gloo between raylets).
    """
    if not (ROOT / "train" / "run.py").is_file():
        pytest.skip("train/run.py has not landed yet")
    cmd = [
        sys.executable,
        "-m",
        "train.run",
        "--config",
        "train/configs/action_tiny_cpu.yaml",
        "optim.max_steps=4",
        "data.max_clips=40",
        "model.backbone=tiny_cnn",
        "name=multinode-smoke",
        f"storage_path={tmp_path / 'train'}",
        f"data.manifest={tmp_path / 'ds' / 'manifest.jsonl'}",
    ]
    env = {**os.environ, "RAY_ADDRESS": cluster.address, "PYTHONPATH": str(ROOT)}
    out, err = tmp_path / "stdout", tmp_path / "stderr"
    with out.open("w") as fo, err.open("w") as fe:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=fo, stderr=fe)
        exposed: set[tuple[str, str, int]] = set()
        deadline = time.monotonic() + 900
        while proc.poll() is None:  # watch the cluster's sockets while training runs
            assert time.monotonic() < deadline, "training did not finish in 15 minutes"
            sockets = _procs.listening(_cluster_pids(cluster))
            exposed |= {(name, ip, port) for _, name, ip, port in sockets if not _procs.is_loopback(ip)}
            time.sleep(2.0)  # listeners live as long as the process group; a system-wide scan is not free
    assert proc.returncode == 0, err.read_text()[-3000:]
    result = json.loads(out.read_text().strip().splitlines()[-1])
    assert result["steps"] == 4, result
    if exposed:
        # Seen here: torch.distributed (TCPStore / gloo) inside Ray Train workers listens on every
        # interface whatever the node IP. Reported, not hidden (see the cluster report).
        pytest.xfail(f"training workers listened beyond loopback: {sorted(exposed)}")


def _cluster_pids(cluster: Any) -> set[int]:
    nodes = cluster.list_all_nodes()
    pids = {pid for node in nodes for pid in _procs.tree(_raylet_pid(node))}
    return pids | {p.process.pid for node in nodes for ps in node.all_processes.values() for p in ps}


def test_cluster_listens_on_loopback_only(cluster: Any) -> None:
    sockets = _procs.listening(_cluster_pids(cluster))
    assert sockets
    exposed = [s for s in sockets if not _procs.is_loopback(s[2])]
    assert not exposed, exposed
