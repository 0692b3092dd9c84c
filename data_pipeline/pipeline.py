"""The batch pipeline on Ray Data: sources in, Parquet tables of frames, audio, videos and errors out.

    # Stage 1: Download into the content-addressed cache (1:1)      make_ingest_fn
    # Stage 2: Probe metadata, apply caps (1:1)                       make_probe_fn
    # Stage 3: Decode + sample frames (1:N), audio segments (1:N)     make_sample_fn / make_audio_fn
    # Stage 4: Encode frames to image bytes (1:1, batched)            make_encode_fn

Why the per-video table is materialised after stage 2: it is tiny (one row of metadata per video,
no pixels) and both fan-out branches (frames, audio) read it, so materialising it avoids
downloading and probing twice. Frames and audio stream from decode to Parquet without ever being
gathered on the driver, so memory stays bounded however many videos go in.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from cluster.config import Settings
from data_pipeline.stages import (
    VIDEO_COLUMNS,
    make_audio_fn,
    make_encode_fn,
    make_ingest_fn,
    make_probe_fn,
    make_sample_fn,
)

# Ray resource settings. Download is network/disk bound: a quarter CPU lets 8 run on 2 cores.
_INGEST_CPUS = 0.25
# Decode uses one FFmpeg thread per task; half a CPU each keeps 2-core machines from the deadlock
# DESIGN.md measured when stages claim whole CPUs, while still running two decodes at once.
_DECODE_CPUS = 0.5
_ENCODE_CPUS = 0.25
_ENCODE_BATCH = 16  # frames per JPEG-encode batch: ~16 x 0.5 MB decoded frames in flight per task


class PipelineConfig(BaseModel):
    """What to sample and where to write it."""

    model_config = ConfigDict(extra="forbid")

    out: Path = Field(description="Output directory; frames/, audio/, videos.parquet, errors.parquet, summary.json.")
    strategy: str = Field("uniform", description="uniform | fps | keyframes | scenes")
    num: int | None = Field(None, description="uniform: frames per video")
    fps: float | None = Field(None, description="fps: frames per second")
    max_side: int | None = Field(512, description="Resize frames so the longest side is at most this.")
    image_format: str = Field("jpeg", description="jpeg or png")
    audio_segment_s: float | None = Field(10.0, description="Audio segment length; None skips audio.")
    overwrite: bool = Field(False, description="Replace an existing output directory.")


def read_sources(path: str | Path) -> list[str]:
    """One source per line (URL or path); blank lines and # comments skipped."""
    lines = Path(path).read_text().splitlines()
    return [s.strip() for s in lines if s.strip() and not s.strip().startswith("#")]


def run_pipeline(sources: list[str], config: PipelineConfig, settings: Settings) -> dict[str, Any]:
    """Run the four stages over `sources` on the connected Ray cluster; returns the summary."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    import ray.data

    from data_pipeline.sampling import SamplingSpec

    spec = SamplingSpec(strategy=config.strategy, num=config.num, fps=config.fps, max_side=config.max_side)
    out = Path(config.out)
    if out.exists():
        if not config.overwrite:
            from cluster.errors import InputError

            raise InputError(f"output directory {out} exists; pass --overwrite or choose another --out")
        shutil.rmtree(out)
    out.mkdir(parents=True)
    errors_dir = out / "_errors"
    started = time.perf_counter()

    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False

    # Stage 1: Download (1:1)  +  Stage 2: Probe (1:1)
    items = [{"source": s} for s in sources]
    videos = (
        ray.data.from_items(items, override_num_blocks=max(1, len(items)))
        .map(make_ingest_fn(settings), num_cpus=_INGEST_CPUS)
        .map(make_probe_fn(settings), num_cpus=_INGEST_CPUS)
        .materialize()
    )
    rows = videos.take_all()
    good = [r for r in rows if not r.get("error")]

    # Stage 3: Decode + sample (1:N)  ->  Stage 4: Encode (1:1)
    frame_count = 0
    if good:
        frames = (
            ray.data.from_items(good, override_num_blocks=len(good))
            .flat_map(make_sample_fn(spec, errors_dir), num_cpus=_DECODE_CPUS)
            .map_batches(make_encode_fn(config.image_format), batch_size=_ENCODE_BATCH, num_cpus=_ENCODE_CPUS,
                         batch_format="numpy")
        )
        frames.write_parquet(str(out / "frames"))
        frame_count = sum(pq.ParquetFile(p).metadata.num_rows for p in (out / "frames").glob("*.parquet"))

    # Stage 3b: Audio segments (1:N)
    audio_count = 0
    with_audio = [r for r in good if r.get("audio_codec")]
    if config.audio_segment_s and with_audio:
        audio = ray.data.from_items(with_audio, override_num_blocks=len(with_audio)).flat_map(
            make_audio_fn(config.audio_segment_s, errors_dir), num_cpus=_DECODE_CPUS
        )
        audio.write_parquet(str(out / "audio"))
        audio_count = sum(pq.ParquetFile(p).metadata.num_rows for p in (out / "audio").glob("*.parquet"))

    # Tables of videos and errors, written by the driver (small).
    errors = [{"source": r["source"], "stage": r["stage"], "error": r["error"], "video_id": r.get("video_id")}
              for r in rows if r.get("error")]
    errors += [json.loads(p.read_text()) for p in sorted(errors_dir.glob("*.json"))] if errors_dir.exists() else []
    shutil.rmtree(errors_dir, ignore_errors=True)
    failed = {e["source"] for e in errors}
    table = {c: [r.get(c) for r in rows] for c in VIDEO_COLUMNS}
    table["status"] = ["failed" if r["source"] in failed else "ok" for r in rows]
    pq.write_table(pa.table(table), out / "videos.parquet")
    err_schema = pa.schema([("source", pa.string()), ("stage", pa.string()), ("error", pa.string()),
                            ("video_id", pa.string())])
    pq.write_table(pa.Table.from_pylist(errors, schema=err_schema), out / "errors.parquet")

    summary = {
        "sources": len(sources),
        "succeeded": len(sources) - len(failed),
        "failed": len(failed),
        "frames": frame_count,
        "audio_segments": audio_count,
        "strategy": spec.strategy,
        "seconds": round(time.perf_counter() - started, 2),
        "out": str(out.resolve()),
        "errors": errors,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary
