"""Ingest deployment: fetch (yt-dlp, SSRF-guarded), probe and cache a video; runs upload jobs.

CPU-bound bursts (hashing, a one-frame decode, ffmpeg) and network waits: a quarter core per
replica lets two of them share a core with the analyzer on a 2-core machine, and
max_ongoing_requests=4 bounds the parallel downloads per replica (each holds a socket and a temp file).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import cluster.ray_runtime  # noqa: F401  (sets loopback Ray env before ray is imported)

# isort: split
import ray.serve

from cluster.log import setup_logging
from serve.deployments._priority import lower_priority
from serve.jobs.store import Claim, JobStore
from serve.jobs.videos import VideoStore
from serve.jobs.worker import execute_ingest
from serve.settings import parse_serve_settings


@ray.serve.deployment(
    ray_actor_options={
        "num_cpus": 0.25
    },  # probe/hash bursts; two replicas fit beside the analyzer on 2 cores
    max_ongoing_requests=4,  # parallel downloads per replica (sockets, temp files)
    autoscaling_config={"min_replicas": 1, "max_replicas": 2, "target_ongoing_requests": 2},
    health_check_period_s=5,
)
class IngestWorker:
    def __init__(self, args: dict[str, Any]) -> None:
        setup_logging()
        self.settings = parse_serve_settings(args)
        lower_priority(self.settings.worker_nice)  # CPU-heavy work yields to the proxy and ingress
        self.vidray = self.settings.vidray_settings()
        self.store = JobStore(self.settings.resolved_db_url(self.vidray.data_dir))
        self.videos = VideoStore(self.store.engine)

    async def metrics_text(self) -> str:
        """This replica's Prometheus metrics; the ingress merges them into `/metrics`."""
        from cluster import metrics

        return metrics.render().decode()

    async def ping(self) -> str:
        return "ok"

    def _ingest(self, source: str) -> dict[str, Any]:
        from data_pipeline.ingest import ingest

        src: str | Path = Path(source) if "://" not in source and Path(source).is_file() else source
        video = ingest(src, self.vidray)
        meta = video.metadata.model_dump(mode="json")
        return {
            "path": str(video.path),
            "sha256": meta["sha256"],
            "metadata": meta,
            "ingest_id": video.video_id,
        }

    async def ingest(self, source: str) -> dict[str, Any]:
        """Fetch/probe/cache `source` (URL or a path on the shared data dir); returns path and metadata."""
        return await asyncio.to_thread(self._ingest, source)

    async def run_job(self, job_id: str, token: str) -> str:
        claim = Claim(job_id, token, "ingest", 0)
        return await asyncio.to_thread(
            execute_ingest, self.store, self.videos, claim, self._ingest, lease_s=self.settings.lease_s
        )
