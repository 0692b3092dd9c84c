"""The HTTP ingress: FastAPI routes on Ray Serve, plus the job dispatcher and webhook sender threads.

A tenth of a core and many concurrent requests: handlers only validate, authenticate and write
rows (SSE streams mostly sleep), so one small replica serves hundreds of open requests; heavy work
is always a handle call to the ingest/analyzer deployments.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import cluster.ray_runtime  # noqa: F401  (sets loopback Ray env before ray is imported)

# isort: split
import ray.serve

from cluster.log import setup_logging
from serve.api.context import build_context, set_current
from serve.api.http import api
from serve.jobs.dispatcher import Dispatcher
from serve.jobs.store import Claim
from serve.jobs.webhooks import deliver_due
from serve.settings import parse_serve_settings

log = logging.getLogger("serve.deployments.ingress")
_WEBHOOK_TICK_S = 0.5


@ray.serve.deployment(
    ray_actor_options={"num_cpus": 0.1},  # I/O only: DB rows, handle calls, SSE polling
    max_ongoing_requests=256,  # open SSE streams and long polls count here; they are cheap
    autoscaling_config={"min_replicas": 1, "max_replicas": 2, "target_ongoing_requests": 64},
    health_check_period_s=5,
    # The proxy already writes an access line per request (method, route, status, latency, request
    # id); the replica's duplicate of it was ~12% of the ingress's CPU per submit under a burst.
    logging_config={"enable_access_log": False},
)
@ray.serve.ingress(api)
class Ingress:
    def __init__(self, args: dict[str, Any], ingest: Any, analyzer: Any, models: Any) -> None:
        setup_logging()
        settings = parse_serve_settings(args)
        self.ctx = ctx = build_context(settings)
        ctx.ingest, ctx.analyzer, ctx.models = ingest, analyzer, models

        def run_on(handle: Any) -> Any:
            def run(claim: Claim) -> Any:
                return handle.run_job.remote(claim.job_id, claim.token).result()

            return run

        ctx.dispatcher = Dispatcher(
            ctx.store,
            {"ingest": run_on(ingest), "analyze": run_on(analyzer)},
            slots=settings.dispatch_slots,
            lease_s=settings.lease_s,
            per_user_running=settings.per_user_running,
            max_attempts=settings.max_attempts,
            poll_s=settings.poll_s,
        ).start()
        self._stop = threading.Event()
        self._hooks = threading.Thread(target=self._webhook_loop, name="webhooks", daemon=True)
        self._hooks.start()
        set_current(ctx)

    def _webhook_loop(self) -> None:
        s = self.ctx.settings
        while not self._stop.wait(_WEBHOOK_TICK_S):
            try:
                deliver_due(
                    self.ctx.store,
                    secret=self.ctx.webhook_secret,
                    allow_hosts=self.ctx.allow_hosts,
                    max_attempts=s.webhook_max_attempts,
                    backoff_s=s.webhook_backoff_s,
                )
            except Exception:
                log.exception("webhook delivery loop error")

    def __del__(self) -> None:
        # graceful shutdown (serve.delete / redeploy): stop claiming and hand running jobs back so
        # the next app picks them up at once instead of waiting for their leases to expire
        self._stop.set()
        self.ctx.submits.close()  # answer the submits already queued before the process goes
        if self.ctx.dispatcher is not None:
            self.ctx.dispatcher.stop(release=True)
