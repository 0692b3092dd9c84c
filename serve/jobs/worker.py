"""Running one claimed job: heartbeats, progress events, cancellation and the terminal transition.

Plain functions over the stores (no Ray here) so they are testable without a cluster; the Serve
deployments call them from their replicas. Every write names the claim's lease token, so a worker
that was presumed dead cannot overwrite the attempt that replaced it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from cluster.errors import InputError, VidrayError
from cluster.log import log_context
from serve.jobs.runner import analysis_params, run_analysis
from serve.jobs.store import Claim, JobCancelledError, JobStore, LeaseLostError, cache_key
from serve.jobs.videos import VideoStore

log = logging.getLogger("serve.jobs.worker")

# source -> {"path", "sha256", "metadata", "ingest_id"}; the ingest deployment (or a direct call in tests)
IngestFn = Callable[[str], dict[str, Any]]
_VIDEO_WAIT_S = 600.0  # an analyze job waits at most this long for its video's ingest job


class Execution:
    """A claimed job while it runs: renews the lease in the background and reports progress."""

    def __init__(self, store: JobStore, claim: Claim, lease_s: float) -> None:
        self.store, self.claim, self.lease_s = store, claim, lease_s
        self.lost = threading.Event()
        self.cancelled = threading.Event()
        self._stop = threading.Event()
        self._beat = threading.Thread(target=self._heartbeat, name=f"lease-{claim.job_id}", daemon=True)

    def __enter__(self) -> Execution:
        self._beat.start()
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self._stop.set()
        self._beat.join(timeout=5)

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.lease_s / 3):
            try:
                self.store.report(
                    self.claim.job_id, self.claim.token, stage="heartbeat", percent=0.0, lease_s=self.lease_s
                )
            except LeaseLostError:
                self.lost.set()
                return
            except JobCancelledError:
                self.cancelled.set()
            except Exception:  # a DB hiccup: the lease has slack for two more beats
                log.warning("lease renewal failed", exc_info=True)

    def report(self, stage: str, percent: float, data: dict[str, Any] | None = None) -> None:
        """Progress event; raises to stop the work if the lease is gone or cancel was asked."""
        if self.lost.is_set():
            raise LeaseLostError(self.claim.job_id)
        if self.cancelled.is_set():
            raise JobCancelledError(self.claim.job_id)
        self.store.report(
            self.claim.job_id, self.claim.token, stage=stage, percent=percent, data=data, lease_s=self.lease_s
        )

    def finish(self, status: str, **kw: Any) -> bool:
        return self.store.finish(self.claim.job_id, self.claim.token, status=status, **kw)


def _run(
    store: JobStore,
    claim: Claim,
    lease_s: float,
    body: Callable[[Execution], dict[str, Any]],
    on_error: Callable[[str], None] | None = None,
) -> str:
    """Run `body` under a lease and record how it ended; returns the job's final status from here."""
    with log_context(job_id=claim.job_id), Execution(store, claim, lease_s) as ex:
        try:
            result = body(ex)
        except JobCancelledError:
            ex.finish("cancelled", error="cancelled by request")
            return "cancelled"
        except LeaseLostError:
            log.warning("lease lost; another attempt owns the job now")
            return "lost"
        except VidrayError as e:
            if on_error:
                on_error(str(e))
            ex.finish("failed", error=str(e), error_status=e.http_status)
            return "failed"
        except Exception as e:  # a bug: record it on the job instead of retrying it forever
            log.exception("job crashed")
            if on_error:
                on_error(f"internal error: {type(e).__name__}: {e}")
            ex.finish("failed", error=f"internal error: {type(e).__name__}: {e}", error_status=500)
            return "failed"
        try:
            return "succeeded" if ex.finish("succeeded", result=result) else "lost"
        except Exception as e:  # e.g. a result the database cannot store: fail it now, do not retry
            log.exception("storing the result failed")
            ex.finish(
                "failed",
                error=f"internal error: the result could not be stored: {type(e).__name__}: {e}"[:2000],
                error_status=500,
            )
            return "failed"


def execute_ingest(
    store: JobStore, videos: VideoStore, claim: Claim, ingest_fn: IngestFn, *, lease_s: float
) -> str:
    """An upload's ingest job: fetch/probe/cache the video and mark its record ready (or failed)."""
    job = store.get(claim.job_id)
    params = job["params"]

    def body(ex: Execution) -> dict[str, Any]:
        ex.report("ingest", 5.0)
        got = ingest_fn(params["source"])
        videos.set_ready(params["video_id"], path=got["path"], sha256=got["sha256"], meta=got["metadata"])
        if params.get("staged"):  # the cache keeps its own copy of an uploaded file
            Path(params["source"]).unlink(missing_ok=True)
        return {"video_id": params["video_id"], "metadata": got["metadata"]}

    def failed(msg: str) -> None:
        videos.set_failed(params["video_id"], msg)
        if params.get("staged"):
            Path(params["source"]).unlink(missing_ok=True)

    return _run(store, claim, lease_s, body, failed)


def execute_analyze(
    store: JobStore,
    videos: VideoStore,
    claim: Claim,
    ingest_fn: IngestFn,
    *,
    lease_s: float,
    stage_delay_s: float = 0.0,
    settings: Any = None,
) -> str:
    """An analyze job: make sure the video is ingested, reuse a cached result, else run the analysis."""
    job = store.get(claim.job_id)
    params = job["params"]

    def body(ex: Execution) -> dict[str, Any]:
        ex.report("ingest", 1.0)
        if job["video_id"]:
            video = _wait_ready(videos, job["video_id"], ex)
            got = {"path": video["path"], "sha256": video["sha256"], "metadata": video["meta"]}
        else:
            got = ingest_fn(params["url"])
        key = cache_key(got["sha256"], analysis_params(params))
        store.set_cache_key(claim.job_id, claim.token, key)
        cached = store.cached_result(key)
        if cached is not None:
            ex.report("cached", 100.0, {"task": "cached", "result": cached})
            return dict(cached)
        if stage_delay_s:
            time.sleep(stage_delay_s)
        result = run_analysis(
            {**params, "source": got["path"]}, ex.report, settings=settings, stage_delay_s=stage_delay_s
        )
        if job["video_id"] and isinstance(result.get("video"), dict):
            result["video"]["id"] = job["video_id"]  # the API's id, not the cache's
        return result

    return _run(store, claim, lease_s, body)


def _wait_ready(videos: VideoStore, video_id: str, ex: Execution) -> dict[str, Any]:
    deadline = time.monotonic() + _VIDEO_WAIT_S
    while True:
        video = videos.get(video_id)
        if video["status"] == "ready":
            return video
        if video["status"] == "failed":
            raise InputError(f"video {video_id} could not be ingested: {video['error']}")
        if time.monotonic() > deadline:
            raise InputError(
                f"video {video_id} is still being ingested after {_VIDEO_WAIT_S:.0f}s; retry later"
            )
        ex.report("waiting for video", 1.0)
        time.sleep(0.5)
