"""`analyze()`: the one entry point that runs analysis tasks on a video.

Flow: ingest the source (cached by content hash) → build an `AnalysisContext` whose shared pieces
(transcript, scenes, on-screen text, the searchable index) are computed at most once, on first use
by any task → run the requested tasks in dependency order, each looked up in `TASKS` → merge their
outputs into one `AnalysisResult`. A failing task is reported under `errors` and the others still
run: a summary should not be lost because code recovery failed.

Task modules are imported lazily from the registry so `vidray analyze --tasks transcript` never
imports OCR or pose models.
"""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Callable, Iterator
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

ProgressFn = Callable[[dict[str, Any]], None]


@dataclass
class AnalysisContext:
    """What a task sees: the video, the request, settings, and memoised shared pieces."""

    video: Any  # data_pipeline.ingest.IngestedVideo
    request: AnalysisRequest
    settings: Settings
    progress: ProgressFn = lambda _event: None
    _memo: dict[str, Any] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        return Path(self.video.path)

    @property
    def duration(self) -> float:
        return float(self.video.metadata.duration_s)

    def memo(self, name: str, compute: Callable[[], Any]) -> Any:
        """Compute a shared piece (transcript, scenes, index, ...) once per analysis."""
        if name not in self._memo:
            started = time.perf_counter()
            self._memo[name] = compute()
            log.info("computed %s", name, extra={"piece": name, "seconds": round(time.perf_counter() - started, 3)})
        return self._memo[name]


def _load_task(name: str) -> Callable[[AnalysisContext], dict[str, Any]]:
    module, func = TASKS[name].split(":")
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name == module:
            raise UnavailableError(f"analysis task {name!r} is not available in this build ({module} missing)") from e
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
    with mn.track_job_memory("analyze"):
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
    if request.mode:
        from analysis.modes import extras

        try:
            yield "mode", extras(ctx)
        except VidrayError as e:
            yield "error", {"task": f"mode:{request.mode}", "error": str(e)}
    emit({"stage": "done", "percent": 100.0})


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
