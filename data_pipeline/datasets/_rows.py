"""Building Lance rows for videos and clips (and reading them back into records).

Why apart from the store: these are pure functions from probe metadata / clip specs to the column
layout of `schema.arrow_schema()`; the store only decides *which* rows to write in one commit.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np

from data_pipeline.datasets.schema import KIND_CLIP, KIND_VIDEO, ClipSpec, Video, arrow_schema


def lit(value: str) -> str:
    """A SQL string literal for Lance filters (single quotes doubled)."""
    return "'" + str(value).replace("'", "''") + "'"


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def video_row(data: bytes, meta: Any, source: str, title: str | None) -> dict[str, Any]:
    return {
        "id": meta.sha256,
        "kind": KIND_VIDEO,
        "video_sha256": meta.sha256,
        "start_s": float(meta.start_s),
        "end_s": float(meta.start_s + meta.duration_s),
        "duration_s": float(meta.duration_s),
        "source": source,
        "title": title or meta.title,
        "width": meta.width,
        "height": meta.height,
        "fps": float(meta.fps),
        "size_bytes": len(data),
        "metadata_json": meta.model_dump_json(),
        "updated_at": now(),
        "video": data,
        "frames": None,
    }


def clip_row(
    cid: str, sha: str, spec: ClipSpec, end: float, source: str | None, frames: np.ndarray | None
) -> dict[str, Any]:
    labelled = bool(spec.label or spec.text or spec.spans or spec.qa)
    return {
        "id": cid,
        "kind": KIND_CLIP,
        "video_sha256": sha,
        "start_s": float(spec.start),
        "end_s": float(end),
        "duration_s": round(float(end) - float(spec.start), 6),
        "split": spec.split,
        "label": spec.label,
        "text": spec.text,
        "spans": [s.model_dump() for s in spec.spans],
        "qa": [q.model_dump() for q in spec.qa],
        "status": spec.status or ("accepted" if labelled else "unlabeled"),
        "source": source,
        "frames_shape": list(frames.shape) if frames is not None else None,
        "updated_at": now(),
        "video": None,
        "frames": frames.tobytes() if frames is not None else None,
    }


def rows_to_table(rows: list[dict[str, Any]]) -> Any:
    import lance
    import pyarrow as pa

    schema = arrow_schema()
    arrays = []
    for f in schema:
        values = [r.get(f.name) for r in rows]
        arrays.append(
            lance.blob_array(values) if f.name in ("video", "frames") else pa.array(values, type=f.type)
        )
    return pa.Table.from_arrays(arrays, schema=schema)


def video_from_row(r: dict[str, Any]) -> Video:
    return Video(
        sha256=r["id"],
        source=r["source"],
        title=r["title"],
        start_s=r["start_s"] or 0.0,
        duration_s=r["duration_s"] or 0.0,
        width=r["width"] or 0,
        height=r["height"] or 0,
        fps=r["fps"] or 0.0,
        size_bytes=r["size_bytes"] or 0,
    )
