"""`analyze()`: the one entry point that runs analysis tasks on a video.

Flow: ingest the source (cached by content hash) → build an `AnalysisContext` whose shared pieces
(transcript, scenes, on-screen text, the searchable index) are computed at most once, on first use
by any task → run the requested tasks in dependency order, each looked up in `TASKS` → merge their
outputs into one `AnalysisResult`. A failing task is reported under `errors` and the others still
run: a summary should not be lost because code recovery failed.

Task modules are imported lazily from the registry so `vidray analyze --tasks transcript` never
imports OCR or pose models.

Why prefetch: the heavy shared pieces (speech recognition, scene detection, screen OCR, the motion
pass) do not depend on each other, and their hot loops run outside the GIL (CTranslate2, FFmpeg,
tesseract, OpenCV). Started together on a small thread pool while the tasks run in order, they keep
every core busy instead of one: on 2 cores the wall time of a full analysis approaches its CPU time
halved. A task that needs a piece still in flight waits for it; one not yet started is computed
inline by whoever asks first, so waiting can never deadlock the pool.
"""

from __future__ import annotations

import importlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from analysis.schema import ALL_TASKS, AnalysisRequest, AnalysisResult
from cluster import metric_names as mn
from cluster.config import Settings, load_settings
from cluster.errors import UnavailableError, VidrayError

log = logging.getLogger("analysis.runner")

# task name -> "module:function"; the function takes an AnalysisContext and returns the result keys it fills.
TASKS: dict[str, str] = {
    "transcript": "analysis.transcript:run",
    "summary": "analysis.summary:run",
    "chapters": "analysis.chapters:run",
    "qa": "analysis.qa:run",
    "code": "analysis.code:run",
    "actions": "analysis.actions:run",
}

# task name -> the shared pieces ("module:function" taking the context) worth starting ahead for it.
PREFETCH: dict[str, tuple[str, ...]] = {
    "transcript": ("analysis.transcript:transcribe_video",),
    "summary": (
        "analysis.transcript:transcribe_video",
        "analysis.screen_text:screen_frames",
        "analysis.index:scenes_of",
    ),
    "chapters": (
        "analysis.transcript:transcribe_video",
        "analysis.screen_text:screen_frames",
        "analysis.index:scenes_of",
    ),
    "qa": ("analysis.transcript:transcribe_video", "analysis.screen_text:screen_frames"),
    "code": ("analysis.screen_text:screen_frames", "analysis.transcript:transcribe_video"),
    "actions": ("analysis.index:scenes_of", "analysis.actions:prefetch_motion"),
}

ProgressFn = Callable[[dict[str, Any]], None]


@dataclass
class AnalysisContext:
    """What a task sees: the video, the request, settings, and memoised shared pieces.

    Thread-safe: pieces may be computed on the prefetch pool while tasks run on the caller's thread.
    """

    video: Any  # data_pipeline.ingest.IngestedVideo
    request: AnalysisRequest
    settings: Settings
    progress: ProgressFn = lambda _event: None
    _memo: dict[str, Future[Any]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _pool: ThreadPoolExecutor | None = None

    @property
    def path(self) -> Path:
        return Path(self.video.path)

    @property
    def duration(self) -> float:
        return float(self.video.metadata.duration_s)

    def memo(self, name: str, compute: Callable[[], Any]) -> Any:
        """Compute a shared piece (transcript, scenes, index, ...) once per analysis.

        A piece that failed raises the same error to every later caller instead of being retried:
        one analysis should not pay twice for a transcript that cannot be made.
        """
        with self._lock:
            fut = self._memo.get(name)
            owner = fut is None
            if fut is None:
                fut = self._memo[name] = Future()
        if owner:
            fut.set_running_or_notify_cancel()
            started = time.perf_counter()
            try:
                fut.set_result(compute())
            except BaseException as e:
                fut.set_exception(e)
                raise
            log.info(
                "computed %s", name, extra={"piece": name, "seconds": round(time.perf_counter() - started, 3)}
            )
        return fut.result()

    def prefetch(self, pieces: list[str], workers: int) -> None:
        """Start computing `pieces` ("module:function") in the background, at most `workers` at once."""
        if not pieces or workers < 1:
            return
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="vidray-prefetch")
        for spec in pieces:
            module, func = spec.split(":")
            self._pool.submit(self._prefetch_one, module, func)

    def _prefetch_one(self, module: str, func: str) -> None:
        try:
            getattr(importlib.import_module(module), func)(self)
        except Exception as e:  # the task that needs the piece gets the error from memo() itself
            log.info("prefetch of %s.%s failed: %s", module, func, e)

    def close(self) -> None:
        """Wait for background pieces so no thread outlives the analysis (their results are cached)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def prefetch_workers() -> int:
    """Threads computing pieces, the caller's included: one per core, at most 3 (memory grows with each)."""
    return max(
        1, min(3, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))
    )


def _load_task(name: str) -> Callable[[AnalysisContext], dict[str, Any]]:
    module, func = TASKS[name].split(":")
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name == module:
            raise UnavailableError(
                f"analysis task {name!r} is not available in this build ({module} missing)"
            ) from e
        raise
    fn: Callable[[AnalysisContext], dict[str, Any]] = getattr(mod, func)
    return fn


def _apply_mode(request: AnalysisRequest) -> AnalysisRequest:
    if not request.mode:
        return request
    from analysis.modes import apply_mode

    return apply_mode(request)


def iter_analyze(
    source: Any,
    request: AnalysisRequest | None = None,
    settings: Settings | None = None,
    progress: ProgressFn | None = None,
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Run the analysis, yielding ("video", {...}) first and then (task, its result keys) as each completes.

    `source` is a URL, a path, raw bytes, or an already ingested video. A task's failure is yielded as
    ("error", {"task": name, "error": message}).
    """
    from data_pipeline.ingest import IngestedVideo, ingest

    settings = settings or load_settings()
    request = _apply_mode(request or AnalysisRequest())
    emit = progress or (lambda _e: None)
    emit({"stage": "ingest", "percent": 0.0})
    video = source if isinstance(source, IngestedVideo) else ingest(source, settings)
    ctx = AnalysisContext(video=video, request=request, settings=settings, progress=emit)
    yield "video", {"video": {"id": video.video_id, **video.metadata.model_dump(mode="json")}}
    order = [t for t in ALL_TASKS if t in request.tasks]
    pieces = list(dict.fromkeys(p for t in order for p in PREFETCH.get(t, ())))
    with mn.track_job_memory("analyze"):
        workers = settings.analysis.workers or prefetch_workers()
        if len(order) > 1 and workers > 1:  # one task needs its pieces in order: nothing to overlap
            # The caller's thread is one worker: it computes the first task's pieces inline while the
            # pool takes the list from the other end, so the two rarely wait on the same piece.
            ctx.prefetch(pieces[::-1], workers - 1)
        try:
            yield from _run_tasks(ctx, order, emit)
        finally:
            ctx.close()
    if request.mode:
        from analysis.modes import extras

        try:
            yield "mode", extras(ctx)
        except VidrayError as e:
            yield "error", {"task": f"mode:{request.mode}", "error": str(e)}
    emit({"stage": "done", "percent": 100.0})


def _run_tasks(
    ctx: AnalysisContext, order: Sequence[str], emit: ProgressFn
) -> Iterator[tuple[str, dict[str, Any]]]:
    for i, name in enumerate(order):
        emit({"stage": name, "percent": round(100.0 * i / len(order), 1)})
        started = time.perf_counter()
        try:
            out = _load_task(name)(ctx)
        except VidrayError as e:
            mn.get(mn.STAGE_ERRORS).labels(stage=name, error=type(e).__name__).inc()
            yield "error", {"task": name, "error": str(e)}
            continue
        elapsed = time.perf_counter() - started
        mn.get(mn.STAGE_SECONDS).labels(stage=name).observe(elapsed)
        log.info("task %s done", name, extra={"task": name, "seconds": round(elapsed, 3)})
        yield name, out


def analyze(
    source: Any,
    request: AnalysisRequest | None = None,
    settings: Settings | None = None,
    progress: ProgressFn | None = None,
) -> AnalysisResult:
    """Run every requested task and return the merged result document."""
    doc: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for name, out in iter_analyze(source, request, settings, progress):
        if name == "error":
            errors[out["task"]] = out["error"]
        else:
            doc.update(out)
    if errors:
        doc["errors"] = errors
    return AnalysisResult.model_validate(doc)
