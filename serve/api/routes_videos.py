"""Videos and analysis jobs: upload, list/get/delete/share videos, analyze, job status, events, cancel.

Every handler only validates, checks access and writes rows: media work happens in the ingest and
analyzer deployments, which the dispatcher feeds from the database queue.
"""

# ruff: noqa: B008  (FastAPI's Depends/Query/Header defaults are evaluated once, by design)

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import ValidationError

from cluster import metric_names as mn
from cluster.errors import InputError, TooLargeError
from serve.api.auth import Principal, check_job, check_video_owner, check_video_read, get_ctx, role
from serve.api.context import AppContext
from serve.api.schemas import AnalyzeBody, JobAccepted, JobView, ShareBody, UploadAccepted, UploadURL
from serve.api.sse import job_events
from serve.jobs.runner import analysis_params
from serve.jobs.store import TERMINAL, SubmitRequest, cache_key

router = APIRouter()
IdemKey = Header(
    None,
    alias="Idempotency-Key",
    max_length=200,
    description="Repeat a submit safely: the same key returns the first job instead of a new one.",
)
_UPLOAD_FORMS = {
    "requestBody": {
        "content": {
            "application/json": {"schema": UploadURL.model_json_schema()},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "callback_url": {"type": "string"},
                    },
                }
            },
        },
        "required": True,
    }
}


def _submitted() -> Any:
    return mn.get(mn.JOBS_SUBMITTED)


def _check_url(ctx: AppContext, url: str) -> None:
    from data_pipeline.net_guard import check_url

    check_url(url, ctx.allow_hosts)


def job_view(job: dict[str, Any]) -> dict[str, Any]:
    view = {k: job.get(k) for k in JobView.model_fields}
    if job["status"] != "succeeded":
        view["result"] = None
    return view


def video_view(video: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": video["id"],
        "owner": video["owner"],
        "status": video["status"],
        "source": video["source"],
        "sha256": video.get("sha256"),
        "metadata": video.get("meta"),
        "error": video.get("error"),
        "created_at": video["created_at"],
        "shared_with": video.get("shared_with", []),
    }


async def _staged_upload(ctx: AppContext, request: Request) -> tuple[Path, str, str | None]:
    """Spool a multipart upload to the staging folder, refusing it past max_upload_bytes."""
    limit = ctx.settings.max_upload_bytes
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit + 64 * 1024:
        raise TooLargeError(
            f"upload of {int(declared)} bytes is over the limit of {limit} bytes (max_upload_bytes)"
        )
    form = await request.form(max_files=1, max_fields=4)
    upload = form.get("file")
    if upload is None or isinstance(upload, str):
        raise InputError("multipart upload needs a 'file' part holding the video")
    callback = form.get("callback_url")
    staging = ctx.vidray.data_dir / "uploads"
    staging.mkdir(parents=True, exist_ok=True)
    suffix = Path(upload.filename or "upload.mp4").suffix[:10] or ".mp4"
    fd, name = tempfile.mkstemp(prefix="up-", suffix=suffix, dir=staging)
    size = 0
    try:
        with os.fdopen(fd, "wb") as out:
            while chunk := await upload.read(1 << 20):
                size += len(chunk)
                if size > limit:
                    raise TooLargeError(f"upload is over the limit of {limit} bytes (max_upload_bytes)")
                out.write(chunk)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    finally:
        await upload.close()
    if size == 0:
        Path(name).unlink(missing_ok=True)
        raise InputError("the uploaded file is empty")
    return (
        Path(name),
        upload.filename or "upload",
        callback if isinstance(callback, str) and callback else None,
    )


@router.post(
    "/video/upload",
    status_code=202,
    response_model=UploadAccepted,
    tags=["videos"],
    openapi_extra=_UPLOAD_FORMS,
    summary="Add a video from a URL (JSON {url}) or a file (multipart 'file'); returns its id and ingest job",
)
async def upload(
    request: Request,
    wait: bool = Query(
        False, description="Wait for the ingest to finish (up to wait_s) and answer with the video."
    ),
    wait_s: float = Query(120.0, gt=0, le=600),
    idempotency_key: str | None = IdemKey,
    who: Principal = Depends(role("analyst")),
    ctx: AppContext = Depends(get_ctx),
) -> Any:
    ctype = request.headers.get("content-type", "")
    staged: Path | None = None
    if ctype.startswith("multipart/form-data"):
        staged, filename, callback = await _staged_upload(ctx, request)
        source, label = str(staged), f"upload:{filename}"
    else:
        try:
            body = UploadURL.model_validate_json(await request.body())
        except ValidationError as e:
            return JSONResponse(status_code=422, content=_validation_doc(e))
        await asyncio.to_thread(_check_url, ctx, body.url)
        source, label, callback = body.url, body.url, body.callback_url
    if callback:
        await asyncio.to_thread(_check_url, ctx, callback)
    try:
        video = await asyncio.to_thread(ctx.videos.create, owner=who.user, source=label)
        job, created = await asyncio.to_thread(
            ctx.store.submit,
            kind="ingest",
            owner=who.user,
            video_id=video["id"],
            params={"source": source, "video_id": video["id"], "staged": staged is not None},
            idempotency_key=idempotency_key,
            callback_url=callback,
            max_queue_depth=ctx.settings.max_queue_depth,
        )
    except BaseException:
        if staged:
            staged.unlink(missing_ok=True)
        if "video" in locals():
            await asyncio.to_thread(ctx.videos.delete, video["id"])
        raise
    if not created:  # an idempotent repeat: drop the new record, answer with the first one
        await asyncio.to_thread(ctx.videos.delete, video["id"])
        if staged:
            staged.unlink(missing_ok=True)
    _submitted().labels(kind="ingest", cached="false").inc()
    if ctx.dispatcher:
        ctx.dispatcher.wake()
    out: dict[str, Any] = {"video_id": job["video_id"], "job_id": job["id"], "status": job["status"]}
    if not wait:
        return out
    job = await _wait_terminal(ctx, job["id"], wait_s)
    if job["status"] == "failed":
        raise _error_for(job)
    out["status"] = job["status"]
    out["video"] = video_view(await asyncio.to_thread(ctx.videos.get, job["video_id"]))
    return JSONResponse(status_code=201 if job["status"] == "succeeded" else 202, content=out)


async def _wait_terminal(ctx: AppContext, job_id: str, wait_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + wait_s
    while True:
        job = await asyncio.to_thread(ctx.store.get, job_id)
        if job["status"] in TERMINAL or time.monotonic() > deadline:
            return job
        await asyncio.sleep(0.1)


def _error_for(job: dict[str, Any]) -> Exception:
    from cluster.errors import VidrayError

    err = VidrayError(job["error"] or "the job failed")
    err.http_status = int(job["error_status"] or 500)
    return err


def _validation_doc(e: ValidationError) -> dict[str, Any]:
    first = e.errors()[0]
    where = ".".join(str(x) for x in first["loc"]) or "body"
    return {
        "error": {
            "type": "invalid_request_error",
            "message": f"{where}: {first['msg']}",
            "details": e.errors(include_url=False, include_context=False),
        }
    }


@router.get("/videos", tags=["videos"], summary="Videos you own or that are shared with you (admins: all)")
def list_videos(
    who: Principal = Depends(role("viewer")), ctx: AppContext = Depends(get_ctx)
) -> dict[str, Any]:
    rows = ctx.videos.list_for(who.user, everyone=who.is_admin)
    return {"videos": [video_view(v) for v in rows]}


@router.get("/videos/{video_id}", tags=["videos"], summary="One video: status, metadata, owner, sharing")
def get_video(
    video_id: str, who: Principal = Depends(role("viewer")), ctx: AppContext = Depends(get_ctx)
) -> Any:
    video = ctx.videos.get(video_id)
    check_video_read(who, video)
    return video_view(video)


@router.delete(
    "/videos/{video_id}", tags=["videos"], summary="Delete a video you own (its jobs' results stay)"
)
def delete_video(
    video_id: str, who: Principal = Depends(role("analyst")), ctx: AppContext = Depends(get_ctx)
) -> Any:
    video = ctx.videos.get(video_id)
    check_video_owner(who, video)
    ctx.videos.delete(video_id)
    return {"deleted": video_id}


@router.post(
    "/videos/{video_id}/share", tags=["videos"], summary="Let another user read (and analyze) a video"
)
def share_video(
    video_id: str,
    body: ShareBody,
    who: Principal = Depends(role("analyst")),
    ctx: AppContext = Depends(get_ctx),
) -> Any:
    video = ctx.videos.get(video_id)
    check_video_owner(who, video)
    ctx.videos.share(video_id, body.user)
    return video_view(ctx.videos.get(video_id))


@router.delete("/videos/{video_id}/share/{user}", tags=["videos"], summary="Stop sharing a video with a user")
def unshare_video(
    video_id: str, user: str, who: Principal = Depends(role("analyst")), ctx: AppContext = Depends(get_ctx)
) -> Any:
    video = ctx.videos.get(video_id)
    check_video_owner(who, video)
    ctx.videos.unshare(video_id, user)
    return video_view(ctx.videos.get(video_id))


def _analysis_request(ctx: AppContext, who: Principal, body: AnalyzeBody, idem: str | None) -> SubmitRequest:
    """Check access and URLs and build the job to queue (blocking: a video row read, DNS lookups)."""
    params = body.model_dump(exclude_none=True, exclude={"callback_url"})
    key = None
    if body.video_id:
        video = ctx.videos.get(body.video_id)
        check_video_read(who, video)
        if video["status"] == "failed":
            raise InputError(f"video {video['id']} could not be ingested ({video['error']}); upload it again")
        if video["status"] == "ready" and video["sha256"]:
            key = cache_key(video["sha256"], analysis_params(params))
    else:
        assert body.url is not None
        _check_url(ctx, body.url)
    if body.callback_url:
        _check_url(ctx, body.callback_url)
    return SubmitRequest(
        kind="analyze",
        owner=who.user,
        params=params,
        video_id=body.video_id,
        idempotency_key=idem,
        callback_url=body.callback_url,
        max_queue_depth=ctx.settings.max_queue_depth,
        key=key,
    )


async def _submit_analysis(
    ctx: AppContext, who: Principal, body: AnalyzeBody, idem: str | None
) -> tuple[dict[str, Any], bool]:
    # Why async with one thread hop: the checks may block (DNS), so they run in a thread, once; the
    # insert then joins the group commit (serve.jobs.group_commit), which shares one transaction
    # among the submits of a burst and answers after the commit, so a 202 means the job is stored.
    request = await asyncio.to_thread(_analysis_request, ctx, who, body, idem)
    job, created = await ctx.submits.submit(request)
    if ctx.dispatcher:
        ctx.dispatcher.wake()
    return job, created


@router.post(
    "/video/analyze",
    status_code=202,
    response_model=JobAccepted,
    tags=["jobs"],
    summary="Queue an analysis; answers at once with the job id (429 + Retry-After when the queue is full)",
)
async def analyze(
    body: AnalyzeBody,
    idempotency_key: str | None = IdemKey,
    who: Principal = Depends(role("analyst")),
    ctx: AppContext = Depends(get_ctx),
) -> Any:
    job, created = await _submit_analysis(ctx, who, body, idempotency_key)
    cached = job["status"] == "succeeded" and job.get("stage") == "cached"
    _submitted().labels(kind="analyze", cached=str(cached).lower()).inc()
    return JSONResponse(
        status_code=202 if created else 200,
        content={"job_id": job["id"], "status": job["status"], "cached": cached, "created": created},
    )


@router.post(
    "/video/analyze/stream",
    tags=["jobs"],
    summary="Queue an analysis and stream each task's result as it completes (server-sent events)",
)
async def analyze_stream(
    body: AnalyzeBody,
    idempotency_key: str | None = IdemKey,
    who: Principal = Depends(role("analyst")),
    ctx: AppContext = Depends(get_ctx),
) -> Any:
    job, _ = await _submit_analysis(ctx, who, body, idempotency_key)
    return StreamingResponse(
        job_events(ctx.store, job["id"], results_only=True),
        media_type="text/event-stream",
        headers={"X-Job-Id": job["id"], "Cache-Control": "no-cache"},
    )


@router.get("/jobs", tags=["jobs"], summary="Your most recent jobs (admins: everyone's)")
def list_jobs(
    limit: int = Query(50, ge=1, le=500),
    who: Principal = Depends(role("viewer")),
    ctx: AppContext = Depends(get_ctx),
) -> Any:
    rows = ctx.store.list_jobs(None if who.is_admin else who.user, limit)
    return {"jobs": [job_view(j) | {"result": None} for j in rows]}


@router.get(
    "/jobs/{job_id}", response_model=JobView, tags=["jobs"], summary="A job's status, progress and result"
)
def get_job(job_id: str, who: Principal = Depends(role("viewer")), ctx: AppContext = Depends(get_ctx)) -> Any:
    job = ctx.store.get(job_id)
    check_job(who, job)
    return job_view(job)


@router.post(
    "/jobs/{job_id}/cancel", tags=["jobs"], summary="Cancel a queued job now, or ask a running one to stop"
)
def cancel_job(
    job_id: str, who: Principal = Depends(role("analyst")), ctx: AppContext = Depends(get_ctx)
) -> Any:
    job = ctx.store.get(job_id)
    check_job(who, job)
    status = ctx.store.cancel(job_id)
    return {"job_id": job_id, "status": status, "cancel_requested": status == "running"}


@router.get(
    "/jobs/{job_id}/events",
    tags=["jobs"],
    summary="Progress as server-sent events (stage, percent, partial results)",
)
async def events(
    job_id: str,
    request: Request,
    after: int = Query(0, ge=0),
    who: Principal = Depends(role("viewer")),
    ctx: AppContext = Depends(get_ctx),
) -> Any:
    job = await asyncio.to_thread(ctx.store.get, job_id)
    check_job(who, job)
    last = request.headers.get("last-event-id")
    start = int(last) if last and last.isdigit() else after
    return StreamingResponse(
        job_events(ctx.store, job_id, after=start),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache"},
    )


__all__ = ["router"]
