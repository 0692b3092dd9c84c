"""Operations: health, readiness, Prometheus metrics, API keys (admin), training runs (trainer)."""

# ruff: noqa: B008  (FastAPI's Depends/Query/Header defaults are evaluated once, by design)

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, Response

from cluster.errors import NotFoundError
from serve.api.auth import Principal, check_job, get_ctx, principal, role
from serve.api.context import AppContext
from serve.api.schemas import KeyBody, TrainBody
from serve.db import jobs
from serve.jobs import train as train_runs
from serve.jobs.store import TERMINAL, new_id

log = logging.getLogger("serve.api.ops")
_SCRAPE_TIMEOUT_S = 5.0  # a scrape must answer even when a replica is busy decoding

router = APIRouter()


@router.get("/healthz", tags=["ops"], summary="Liveness: the ingress answers")
async def healthz() -> dict[str, str]:  # async: liveness probes skip FastAPI's thread-pool hop
    return {"status": "ok"}


@router.get("/readyz", tags=["ops"], summary="Readiness: database reachable and every deployment answers")
async def readyz(ctx: AppContext = Depends(get_ctx)) -> Any:
    checks: dict[str, str] = {}
    try:
        await asyncio.to_thread(ctx.store.ping)
        checks["database"] = "ok"
    except Exception as e:
        checks["database"] = f"error: {type(e).__name__}"
    for name in ("ingest", "analyzer", "models"):
        handle = getattr(ctx, name)
        if handle is None:
            continue
        try:
            await asyncio.wait_for(handle.ping.remote(), timeout=5.0)
            checks[name] = "ok"
        except Exception as e:
            checks[name] = f"error: {type(e).__name__}"
    if ctx.dispatcher is not None:
        checks["dispatcher"] = "ok" if ctx.dispatcher._thread.is_alive() else "error: stopped"
    ok = all(v == "ok" for v in checks.values())
    return JSONResponse(status_code=200 if ok else 503, content={"ready": ok, "checks": checks})


@router.get(
    "/metrics",
    tags=["ops"],
    summary="Prometheus metrics of the app (ingress + one replica of each deployment)",
)
def prometheus(ctx: AppContext = Depends(get_ctx)) -> Response:
    from cluster import metrics

    counts = ctx.store.counts()
    from cluster import metric_names as mn

    gauge = mn.get(mn.JOBS_BY_STATUS)
    mn.get(mn.QUEUE_CAPACITY).set(ctx.settings.max_queue_depth)
    for status in ("queued", "running", "succeeded", "failed", "cancelled"):
        gauge.labels(status=status).set(counts.get(status, 0))
    texts = [metrics.render().decode()]
    for handle in (ctx.ingest, ctx.analyzer, ctx.models):
        try:  # one replica of each deployment answers; a busy or restarting one is left out this scrape
            texts.append(handle.metrics_text.remote().result(timeout_s=_SCRAPE_TIMEOUT_S))
        except Exception as e:
            log.info("metrics of a deployment were not available this scrape", extra={"error": str(e)})
    return Response(metrics.merge_texts(texts), media_type="text/plain; version=0.0.4; charset=utf-8")


@router.get("/whoami", tags=["ops"], summary="The user and role of your API key")
def whoami(who: Principal = Depends(principal)) -> dict[str, str]:
    return {"user": who.user, "role": who.role, "key_id": who.key_id}


@router.post("/admin/keys", status_code=201, tags=["admin"], summary="Make an API key (shown once)")
def create_key(
    body: KeyBody, who: Principal = Depends(role("admin")), ctx: AppContext = Depends(get_ctx)
) -> Any:
    key, record = ctx.keys.create(user=body.user, role=body.role)
    return {"key": key, **record}


@router.get("/admin/keys", tags=["admin"], summary="Every API key (hashes are never shown)")
def list_keys(who: Principal = Depends(role("admin")), ctx: AppContext = Depends(get_ctx)) -> Any:
    return {"keys": ctx.keys.list()}


@router.delete("/admin/keys/{key_id}", tags=["admin"], summary="Revoke an API key")
def revoke_key(
    key_id: str, who: Principal = Depends(role("admin")), ctx: AppContext = Depends(get_ctx)
) -> Any:
    ctx.keys.revoke(key_id)
    return {"revoked": key_id}


@router.post(
    "/video/train",
    status_code=202,
    tags=["train"],
    summary="Validate a train config and submit `python -m train.run` as a Ray job",
)
def submit_train(
    body: TrainBody, who: Principal = Depends(role("trainer")), ctx: AppContext = Depends(get_ctx)
) -> Any:
    train_runs.validate_config(body.config, body.config_path, body.overrides)
    job_id = new_id("train")
    run_dir = ctx.vidray.data_dir / "train" / job_id
    info = train_runs.submit(
        job_id, run_dir, body.config, body.config_path, body.overrides, ctx.settings.train_jobs_address
    )
    now = time.time()
    with ctx.store.engine.begin() as c:
        c.execute(
            sa.insert(jobs).values(
                id=job_id,
                kind="train",
                owner=who.user,
                status="running",
                params={**info, "name": body.name},
                progress=0.0,
                attempts=1,
                cancel_requested=False,
                created_at=now,
                started_at=now,
                stage="submitted",
            )
        )
    return {"train_id": job_id, "status": "running", "backend": info["backend"]}


@router.get("/train/{train_id}", tags=["train"], summary="A training run's status and log tail")
def get_train(
    train_id: str, who: Principal = Depends(role("trainer")), ctx: AppContext = Depends(get_ctx)
) -> Any:
    job = ctx.store.get(train_id)
    if job["kind"] != "train":
        raise NotFoundError(f"{train_id} is not a training run")
    check_job(who, job)
    status, error, log = job["status"], job["error"], ""
    if status not in TERMINAL:
        status, error, log = train_runs.status(job["params"])
        if status in TERMINAL:
            with ctx.store.engine.begin() as c:
                c.execute(
                    sa.update(jobs)
                    .where(jobs.c.id == train_id, jobs.c.status == "running")
                    .values(
                        status=status,
                        error=error,
                        finished_at=time.time(),
                        stage=status,
                        progress=100.0 if status == "succeeded" else job["progress"],
                    )
                )
    return {
        "train_id": train_id,
        "status": status,
        "error": error,
        "backend": job["params"].get("backend"),
        "log_tail": log[-2000:],
    }
