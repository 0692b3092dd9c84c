"""Which frames to take from a video: uniform, fixed rate, keyframes, or one per scene.

Every strategy turns into a list of times and then into `VideoReader.frames_at` calls on groups of
32 times (or, for 'every frame', one chunked full decode), so frames stream out with bounded memory
whatever the video length. Timestamps are the
true pts of the decoded frames (exact on variable-frame-rate video).

Strategies (times relative to the first frame, `begin_s`):
- ``uniform``: `num` frames (default 16) at the centres of `num` equal slices of the video, so the
  first and last frames (often black or a title card) are not favoured. When `num` >= the number of
  frames, every frame once.
- ``fps``: one frame every 1/`fps` seconds from the first frame; at or above the source rate, every
  frame once.
- ``keyframes``: the frames at the stream's keyframes (from the packet index: cheap, but keyframes
  are encoder decisions, not scene cuts).
- ``scenes``: one frame per detected scene, at the middle of the scene: the middle stays clear of
  the cut and of fades at either end, which makes it the most representative single frame.

`max_frames` (default 10 000) is a hard cap: a request that would produce more frames fails with an
`InputError` naming the numbers instead of silently truncating a dataset.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from cluster.errors import InputError
from data_pipeline.decode import Frame, VideoReader

_GROUP = 32  # times per frames_at call: the memory bound of the stream (32 frames in flight)


class SamplingSpec(BaseModel):
    """How to pick frames; validated at construction so a bad flag fails before any decode."""

    model_config = ConfigDict(extra="forbid")

    strategy: Literal["uniform", "fps", "keyframes", "scenes"] = Field(
        "uniform", description="uniform | fps | keyframes | scenes (see data_pipeline.sampling)")
    num: int | None = Field(None, description="uniform only: number of frames (default 16).")
    fps: float | None = Field(None, description="fps only: frames per second (default 1.0).")
    max_side: int | None = Field(None, description="Resize on decode so the longer side is at most this.")
    max_frames: int = Field(10_000, description="Hard cap on frames per video; more is an error.")

    @model_validator(mode="after")
    def _check(self) -> SamplingSpec:
        if self.num is not None and self.strategy != "uniform":
            raise ValueError(f"--num applies only to --strategy uniform (got strategy={self.strategy}); "
                             "drop --num or use --strategy uniform")
        if self.fps is not None and self.strategy != "fps":
            raise ValueError(f"--fps applies only to --strategy fps (got strategy={self.strategy}); "
                             "drop --fps or use --strategy fps")
        if self.num is not None and self.num < 1:
            raise ValueError(f"--num must be >= 1 (got {self.num})")
        if self.fps is not None and not self.fps > 0:
            raise ValueError(f"--fps must be > 0 (got {self.fps}); e.g. --fps 1 or --fps 0.2")
        if self.max_side is not None and self.max_side < 16:
            raise ValueError(f"--max-side must be >= 16 pixels (got {self.max_side}); e.g. 512, or omit it")
        if self.max_frames < 1:
            raise ValueError(f"max_frames must be >= 1 (got {self.max_frames})")
        if self.num is not None and self.num > self.max_frames:
            raise ValueError(f"--num {self.num} is over max_frames={self.max_frames}; lower --num or raise max_frames")
        return self

    @property
    def effective_num(self) -> int:
        return self.num if self.num is not None else 16

    @property
    def effective_fps(self) -> float:
        return self.fps if self.fps is not None else 1.0


def uniform_times(begin: float, duration: float, num: int) -> list[float]:
    """Centres of `num` equal slices of [begin, begin + duration)."""
    return [begin + (k + 0.5) * duration / num for k in range(num)]


def fps_times(begin: float, duration: float, fps: float) -> list[float]:
    """begin, begin + 1/fps, ... strictly before the end."""
    n = max(1, int(duration * fps - 1e-9) + 1)
    return [begin + k / fps for k in range(n) if k / fps < duration]


def plan_times(reader: VideoReader, spec: SamplingSpec) -> list[float] | None:
    """The times `spec` asks for on this video, or None for 'every frame'."""
    begin, duration = reader.begin_s, reader.duration_s
    if spec.strategy == "uniform":
        num = spec.effective_num
        return None if num >= reader.num_frames else uniform_times(begin, duration, num)
    if spec.strategy == "fps":
        if spec.effective_fps >= reader.fps * 0.999:
            return None
        return fps_times(begin, duration, spec.effective_fps)
    if spec.strategy == "keyframes":
        return reader.keyframe_times()
    from data_pipeline.scenes import detect_scenes

    result = detect_scenes(reader.path)
    return [(s.start + s.end) / 2 for s in result.scenes] or [begin + duration / 2]


def sample_frames(path: str | Path, spec: SamplingSpec, *, threads: int = 0) -> Iterator[Frame]:
    """Stream the frames `spec` selects from `path`, in time order, at most 32 decoded at once.

    Backend per use (measured, benchmarks/README.md): picking frames at times goes through PyAV, which
    skips non-reference frames on the way to each time and needs no torch import; decoding every
    frame goes through torchcodec, the cheaper full decoder. Timestamps agree between the two.

    Raises:
        InputError: unreadable video, or more frames than `spec.max_frames`.
    """
    try:
        reader = VideoReader(path, max_side=spec.max_side, threads=threads, backend="pyav")
    except InputError:
        reader = VideoReader(path, max_side=spec.max_side, threads=threads)  # raises its own clear error
    with reader:
        times = plan_times(reader, spec)
        total = reader.num_frames if times is None else len(times)
        if total > spec.max_frames:
            what = "every frame" if times is None else f"{spec.strategy} sampling"
            raise InputError(f"{Path(path).name}: {what} gives {total} frames, over max_frames={spec.max_frames}; "
                             "lower --num/--fps or raise max_frames")
        if times is not None:
            times.sort()
            for i in range(0, len(times), _GROUP):
                yield from reader.frames_at(times[i:i + _GROUP])
            return
    with VideoReader(path, max_side=spec.max_side, threads=threads) as full:
        for chunk in full.iter_frames(chunk=_GROUP):
            yield from chunk
