"""The single seam between the job system and the analysis code: `run_analysis(request, progress_cb)`.

Why one function: the job runner, the streaming endpoint and the benchmarks all need "run these
tasks on this video and tell me as each finishes"; keeping that behind one call means analysis/
can grow tasks without the serve layer changing. It uses `analysis.runner.iter_analyze` (which
yields the `video` block first and then each task's result keys) and falls back to a metadata-only
result when the analysis package is not installed in this build.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from cluster.config import Settings

log = logging.getLogger("serve.jobs.runner")

# progress_cb(stage, percent, data): data is None or {"task": name, "result": {...}} for partial results
ProgressCb = Callable[[str, float, dict[str, Any] | None], None]


def analysis_params(request: dict[str, Any]) -> dict[str, Any]:
    """The request fields that change an analysis result (the cache key's parameter half)."""
    keys = ("tasks", "questions", "mode", "summary_length", "summary_style", "language")
    return {k: request[k] for k in keys if request.get(k) is not None}


def run_analysis(
    request: dict[str, Any],
    progress_cb: ProgressCb,
    *,
    settings: Settings | None = None,
    stage_delay_s: float = 0.0,
) -> dict[str, Any]:
    """Analyze `request["source"]` (a path or URL) with the request's options; returns the result document.

    Top-level keys follow `analysis.schema.AnalysisResult` (`video`, `transcript`, `summary`, ...);
    tasks that failed are listed under `errors` with their message and the others still run.
    `progress_cb` is called at each stage and with each task's result as it completes; an exception
    it raises (cancellation, lost lease) stops the analysis.
    """
    try:
        from analysis.runner import iter_analyze
        from analysis.schema import AnalysisRequest
    except ImportError:  # a serve-only build: metadata is the one task that exists
        return _metadata_only(request, progress_cb, settings)

    areq = AnalysisRequest.model_validate(analysis_params(request))
    doc: dict[str, Any] = {}
    errors: dict[str, str] = {}

    def on_progress(event: dict[str, Any]) -> None:
        progress_cb(str(event.get("stage", "analyze")), float(event.get("percent", 0.0)), None)
        if stage_delay_s:
            time.sleep(stage_delay_s)

    done = 0
    total = len(areq.tasks) + 1
    for name, out in iter_analyze(request["source"], areq, settings, on_progress):
        if name == "error":
            errors[out["task"]] = out["error"]
            progress_cb(
                f"task:{out['task']}", 100.0 * done / total, {"task": out["task"], "error": out["error"]}
            )
            continue
        done += 1
        out = _jsonable(out)  # tasks may return pydantic models/dataclasses; the DB stores JSON
        doc.update(out)
        progress_cb(f"task:{name}", round(100.0 * done / total, 1), {"task": name, "result": out})
    if errors:
        doc["errors"] = errors
    return doc


def _jsonable(value: Any) -> Any:
    from pydantic_core import to_jsonable_python

    return to_jsonable_python(value, fallback=str)


def _metadata_only(
    request: dict[str, Any], progress_cb: ProgressCb, settings: Settings | None
) -> dict[str, Any]:
    from data_pipeline.ingest import ingest

    progress_cb("ingest", 0.0, None)
    video = ingest(request["source"], settings)
    out = {"video": {"id": video.video_id, **video.metadata.model_dump(mode="json")}}
    progress_cb("task:video", 100.0, {"task": "video", "result": out})
    return out
