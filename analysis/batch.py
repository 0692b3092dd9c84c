"""Batch analysis of many sources on Ray: one result folder per source, failures listed, none lost.

Why an actor pool (Ray Data `map` with a callable class): each analyzer loads Whisper, OCR and
MiniLM once and then serves many videos; a task per video would reload them every time.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from analysis.schema import AnalysisRequest
from cluster.config import Settings

# One analyzer holds ~1.5 GB of models; on 2 cores a single CPU each leaves room for Ray's own work.
_ANALYZER_CPUS = 1.0


class _Analyzer:
    def __init__(self, request_json: str, settings_json: str, out: str) -> None:
        self.request = AnalysisRequest.model_validate_json(request_json)
        self.settings = Settings.model_validate_json(settings_json)
        self.out = Path(out)

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        from analysis.runner import analyze
        from vidray.commands.analyze import _write_outputs

        source = row["source"]
        name = hashlib.sha256(source.encode()).hexdigest()[:12]
        try:
            doc = analyze(source, self.request, self.settings).public()
            _write_outputs(self.out / name, doc)
            return {"source": source, "dir": name, "video_id": doc["video"]["id"], "error": None}
        except Exception as e:  # one bad source is reported, the batch goes on
            return {"source": source, "dir": None, "video_id": None, "error": f"{type(e).__name__}: {e}"}


def analyze_batch(sources: list[str], request: AnalysisRequest, settings: Settings, out: Path,
                  *, concurrency: int = 2) -> dict[str, Any]:
    """Analyse `sources` on the Ray cluster (local loopback Ray unless RAY_ADDRESS is set)."""
    import ray.data

    from cluster.ray_runtime import init_ray

    init_ray(settings.ray_address)
    out.mkdir(parents=True, exist_ok=True)
    ds = ray.data.from_items([{"source": s} for s in sources], override_num_blocks=len(sources))
    rows = ds.map(
        _Analyzer,  # type: ignore[arg-type]  # Ray Data accepts a callable class (an actor pool)
        fn_constructor_args=(request.model_dump_json(), settings.model_dump_json(), str(out)),
        concurrency=(1, max(1, min(concurrency, len(sources)))),
        num_cpus=_ANALYZER_CPUS,
    ).take_all()
    summary = {"sources": len(sources), "succeeded": sum(1 for r in rows if not r["error"]),
               "failed": sum(1 for r in rows if r["error"]), "results": rows}
    (out / "batch.json").write_text(json.dumps(summary, indent=2))
    return summary
