"""Stage logic of the batch pipeline as plain functions over row dicts.

Why plain functions built by small factories: every stage is testable without a cluster, and Ray
calls live only in `pipeline.py`. A stage never raises for a bad source: it returns (or records) an
error row so one bad video is reported without failing the run.
"""

from __future__ import annotations

import io
import json
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from cluster.config import Settings
from cluster.errors import VidrayError

Row = dict[str, Any]

# Columns of the per-video table; kept flat so it writes to Parquet without nesting.
VIDEO_COLUMNS = ("source", "video_id", "path", "sha256", "duration_s", "width", "height", "fps", "is_vfr",
                 "video_codec", "audio_codec", "container", "size_bytes", "title", "cached", "stage", "error")


def _error_text(e: BaseException) -> str:
    if isinstance(e, VidrayError):
        return str(e)
    # Unexpected failures keep their type and last frame so the report is actionable.
    last = traceback.extract_tb(e.__traceback__)[-1:] if e.__traceback__ else []
    where = f" at {last[0].filename}:{last[0].lineno}" if last else ""
    return f"{type(e).__name__}: {e}{where}"


def make_ingest_fn(settings: Settings) -> Callable[[Row], Row]:
    """Stage 1 (1:1): download/copy the source into the content-addressed cache."""

    def ingest_row(row: Row) -> Row:
        from data_pipeline.ingest import ingest

        out: Row = dict.fromkeys(VIDEO_COLUMNS)
        out["source"] = row["source"]
        try:
            video = ingest(row["source"], settings)
        except Exception as e:  # a bad source becomes an error row, never a failed run
            out.update(stage="ingest", error=_error_text(e))
            return out
        out.update(video_id=video.video_id, path=str(video.path), cached=video.cached,
                   metadata_json=video.metadata.model_dump_json())
        return out

    return ingest_row


def make_probe_fn(settings: Settings) -> Callable[[Row], Row]:
    """Stage 2 (1:1): flatten the probed metadata into columns and apply the duration cap."""

    def probe_row(row: Row) -> Row:
        raw = row.pop("metadata_json", None)
        if row.get("error") or raw is None:
            return row
        meta = json.loads(raw)
        row.update(sha256=meta["sha256"], duration_s=meta["duration_s"], width=meta["width"], height=meta["height"],
                   fps=meta["fps"], is_vfr=meta["is_vfr"], video_codec=meta["video_codec"],
                   audio_codec=(meta["audio"] or {}).get("codec"), container=meta["container"],
                   size_bytes=meta["size_bytes"], title=meta.get("title"), stage="probe")
        if meta["duration_s"] > settings.ingest.max_duration_s:
            row["error"] = (f"{row['source']}: duration {meta['duration_s']:.0f}s is over ingest.max_duration_s="
                            f"{settings.ingest.max_duration_s:.0f}; raise the limit or trim the video")
        return row

    return probe_row


def make_sample_fn(spec: Any, errors_dir: Path, threads: int = 1) -> Callable[[Row], Iterator[Row]]:
    """Stage 3 (1:N): decode and sample frames of one video, streaming (bounded memory).

    A decode failure mid-video is written to `errors_dir` as JSON (the output tables stay one schema)
    and the frames already produced are kept.
    """

    def sample_row(row: Row) -> Iterator[Row]:
        from data_pipeline.sampling import sample_frames

        try:
            for frame in sample_frames(row["path"], spec, threads=threads):
                yield {"video_id": row["video_id"], "source": row["source"], "strategy": spec.strategy,
                       "t": float(frame.t), "frame_index": frame.index if frame.index is not None else -1,
                       "image": frame.image}
        except Exception as e:  # recorded, not raised: one bad video must not fail the run
            record_error(errors_dir, row["source"], "sample", _error_text(e), row.get("video_id"))

    return sample_row


def make_encode_fn(image_format: str = "jpeg", quality: int = 90) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """Stage 4 (1:1, batched): encode decoded frames to image bytes for storage."""

    def encode_batch(batch: dict[str, Any]) -> dict[str, Any]:
        from PIL import Image

        images = batch.pop("image")
        encoded, widths, heights = [], [], []
        for img in images:
            arr = np.asarray(img, dtype=np.uint8)
            buf = io.BytesIO()
            Image.fromarray(arr).save(buf, format=image_format.upper(), quality=quality)
            encoded.append(buf.getvalue())
            heights.append(arr.shape[0])
            widths.append(arr.shape[1])
        batch.update(image=encoded, width=np.array(widths), height=np.array(heights),
                     format=np.array([image_format] * len(encoded)))
        return batch

    return encode_batch


def make_audio_fn(segment_s: float, errors_dir: Path) -> Callable[[Row], Iterator[Row]]:
    """Stage 3b (1:N): cut the 16 kHz mono audio into fixed segments, stored as 16-bit PCM WAV bytes."""

    def audio_row(row: Row) -> Iterator[Row]:
        from data_pipeline.audio import iter_audio

        if not row.get("audio_codec"):
            return
        try:
            for start, samples in iter_audio(row["path"], sample_rate=16000, chunk_s=segment_s):
                buf = io.BytesIO()
                _wav_bytes(buf, samples, 16000)
                rms = float(np.sqrt(np.mean(np.square(samples)))) if len(samples) else 0.0
                yield {"video_id": row["video_id"], "source": row["source"], "start": float(start),
                       "end": float(start + len(samples) / 16000), "sample_rate": 16000,
                       "rms_db": float(20 * np.log10(max(rms, 1e-9))), "audio": buf.getvalue()}
        except Exception as e:  # recorded, not raised
            record_error(errors_dir, row["source"], "audio", _error_text(e), row.get("video_id"))

    return audio_row


def _wav_bytes(buf: io.BytesIO, samples: np.ndarray, sample_rate: int) -> None:
    import wave

    pcm = (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2")
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(pcm.tobytes())


def record_error(errors_dir: Path, source: str, stage: str, error: str, video_id: str | None = None) -> None:
    """Write one error record as its own small JSON file (safe from many workers at once)."""
    import hashlib

    errors_dir.mkdir(parents=True, exist_ok=True)
    key = hashlib.sha256(f"{source}|{stage}".encode()).hexdigest()[:16]
    doc = {"source": source, "stage": stage, "error": error, "video_id": video_id}
    (errors_dir / f"{stage}-{key}.json").write_text(json.dumps(doc))
