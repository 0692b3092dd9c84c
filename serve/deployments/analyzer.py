"""Analyzer deployment: runs analyze jobs (one Serve request per job, fed by the dispatcher) and the
chat endpoint's video understanding.

Half a core per replica: decoding and the offline models are CPU-bound, and two replicas at most
leave room for ingest and the ingress on a 2-core machine. max_ongoing_requests=2 keeps a replica
from thrashing on many decodes at once; more jobs wait in the database, not in memory.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import cluster.ray_runtime  # noqa: F401  (sets loopback Ray env before ray is imported)

# isort: split
import ray.serve

from cluster.log import setup_logging
from serve.deployments._priority import lower_priority
from serve.jobs.store import Claim, JobStore
from serve.jobs.videos import VideoStore
from serve.jobs.worker import execute_analyze
from serve.settings import parse_serve_settings


@ray.serve.deployment(
    ray_actor_options={"num_cpus": 0.5},  # decode + CPU models; 2 replicas max = 1 core
    max_ongoing_requests=2,  # concurrent analyses per replica; the rest stay queued in the DB
    autoscaling_config={
        "min_replicas": 1,
        "max_replicas": 2,
        "target_ongoing_requests": 1,
        "upscale_delay_s": 5,
        "downscale_delay_s": 60,
    },
    health_check_period_s=5,
)
class Analyzer:
    def __init__(self, args: dict[str, Any], ingest: Any, models: Any) -> None:
        setup_logging()
        self.settings = parse_serve_settings(args)
        lower_priority(self.settings.worker_nice)  # CPU-heavy work yields to the proxy and ingress
        self.vidray = self.settings.vidray_settings()
        self.store = JobStore(self.settings.resolved_db_url(self.vidray.data_dir))
        self.videos = VideoStore(self.store.engine)
        self.ingest, self.models = ingest, models

    async def metrics_text(self) -> str:
        """This replica's Prometheus metrics; the ingress merges them into `/metrics`."""
        from cluster import metrics

        return metrics.render().decode()

    async def ping(self) -> str:
        return "ok"

    def _ingest_blocking(self, source: str) -> dict[str, Any]:
        got: dict[str, Any] = self.ingest.ingest.remote(source).result()
        return got

    async def run_job(self, job_id: str, token: str) -> str:
        claim = Claim(job_id, token, "analyze", 0)
        return await asyncio.to_thread(
            execute_analyze,
            self.store,
            self.videos,
            claim,
            self._ingest_blocking,
            lease_s=self.settings.lease_s,
            stage_delay_s=self.settings.debug_stage_delay_s,
            settings=self.vidray,
        )

    async def chat(self, request: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """Stream {"delta", "model"} items answering an OpenAI-style chat about attached videos/images."""
        from serve.deployments.chat_context import describe_video, flatten_messages

        attachments: list[str] = []
        for msg in request["messages"]:
            if isinstance(msg["content"], str):
                continue
            for part in msg["content"]:
                if part["type"] == "video_url":
                    got = await self.ingest.ingest.remote(part["video_url"]["url"])
                    attachments.append(describe_video(len(attachments) + 1, got["metadata"]))
                elif part["type"] == "image_url":
                    attachments.append(f"[image {len(attachments) + 1}: {part['image_url']['url'][:80]}]")
        messages = flatten_messages(request["messages"])
        max_tokens = int(request.get("max_completion_tokens") or request.get("max_tokens") or 512)
        gen = self.models.options(stream=True).chat_stream.remote(
            messages, attachments, request.get("model", "vidray"), max_tokens
        )
        async for item in gen:
            yield item
