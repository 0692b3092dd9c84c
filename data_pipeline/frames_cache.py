"""Sampled frames and scene cuts of a video, computed once per (content hash, parameters).

Why: the CLI, the HTTP API and the analysis tasks all ask for the same frames and cuts of the same
bytes; the content-addressed cache makes the second ask a directory read instead of a decode.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cluster.config import Settings
from data_pipeline.cache import Cache

_FRAMES_VERSION = 1


def _cache(settings: Settings) -> Cache:
    return Cache(settings.cache_dir)


def sampled_frames_dir(video: Any, spec: Any, settings: Settings, *, image_format: str = "jpg",
                       quality: int = 92) -> Path:
    """Directory holding the sampled frames of `video` as image files plus `index.json`.

    index.json: {"strategy", "frames": [{"file", "t", "index"}], "width", "height"}.
    """
    from PIL import Image

    from data_pipeline.sampling import sample_frames

    fmt = "jpg" if image_format in ("jpg", "jpeg") else image_format
    params = {"v": _FRAMES_VERSION, "spec": spec.model_dump(mode="json"), "format": fmt, "quality": quality}

    def compute(out: Path) -> dict[str, Any]:
        frames = []
        size = (0, 0)
        for i, frame in enumerate(sample_frames(video.path, spec, threads=settings.decode.threads)):
            name = f"frame_{i:05d}.{fmt}"
            img = Image.fromarray(frame.image)
            size = img.size
            img.save(out / name, quality=quality) if fmt == "jpg" else img.save(out / name)
            frames.append({"file": name, "t": round(float(frame.t), 6), "index": frame.index})
        index = {"strategy": spec.strategy, "frames": frames, "width": size[0], "height": size[1]}
        (out / "index.json").write_text(json.dumps(index, indent=2))
        return {"count": len(frames)}

    return _cache(settings).get_or_compute(video.metadata.sha256, "frames", params, compute).path


def cached_scenes(video: Any, settings: Settings) -> Any:
    """Scene cuts of `video` (`data_pipeline.scenes.SceneResult`), detected once."""
    from data_pipeline.scenes import DETECTOR_VERSION, SceneResult, detect_scenes

    params = {"v": DETECTOR_VERSION}  # a changed detector never reuses stale cached cuts
    art = _cache(settings).get_or_compute(
        video.metadata.sha256, "scenes", params, lambda _out: detect_scenes(video.path).model_dump(mode="json")
    )
    return SceneResult.model_validate(art.value)
