"""The one rule that turns a clip into fixed-size frames: used by training (both sources) and inference.

Start here: a model is only as good at inference as the match between the frames it sees there and
the frames it was trained on. Every path that builds a clip's frames goes through this module:

    Lance reader (data_pipeline.datasets.reader, stored frames too)  -> decode_clip
    train/data.py manifest decode stage                              -> decode_clip
    train.inference.ActionClassifier.predict_video                  -> decode_clip
    train.inference.ActionClassifier.predict(frames)                -> frames_to_clip (via train.preprocess)

The rule: take every frame whose presentation time lies in [start, end), pick `num_frames` of them
at evenly spaced *indices* (first and last included), resize each to size x size with PIL bilinear
(no crop: the aspect ratio is not kept). Index-based picking is what a caller holding only a list
of frames (no timestamps) can repeat, which is why the rule is stated in frames, not seconds.

Why it lives in data_pipeline: train imports data_pipeline, never the reverse, and the Lance reader
decodes on Ray actors that must apply the rule without importing train.

Frames are uint8 RGB, always: a float input would be ambiguous ([0, 1] or [0, 255]), and guessing
from the values (an all-dark clip has max <= 1) silently changes the scale.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cluster.errors import InputError

_EPS_S = 1e-6  # timestamps within a microsecond of a boundary count as on it


def open_media(src: bytes | str | Path) -> Any:
    """A PyAV container on a file path or on encoded bytes held in memory (Lance blobs: no temp file)."""
    import av

    return av.open(io.BytesIO(src) if isinstance(src, bytes | bytearray | memoryview) else str(src))


def sample_indices(available: int, num_frames: int) -> np.ndarray:
    """Indices of `num_frames` frames spread uniformly over `available` (first and last included)."""
    if available < 1 or num_frames < 1:
        raise InputError(f"cannot pick {num_frames} frames from {available}; a clip needs >= 1 frame")
    return np.linspace(0, available - 1, num_frames).round().astype(int)


def _check_frame(img: np.ndarray, i: int) -> None:
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[-1] != 3:
        raise InputError(
            f"frame {i} must be uint8 [H, W, 3] RGB, got {img.dtype} {tuple(img.shape)}; "
            "convert float frames in [0, 1] with (x * 255).round().astype(np.uint8)"
        )


def frames_to_clip(frames: np.ndarray | Sequence[np.ndarray], num_frames: int, size: int) -> np.ndarray:
    """Pick `num_frames` uniformly and resize each to size x size: uint8 [T, S, S, 3].

    PIL bilinear (which low-pass filters when shrinking) on the picked frames only, so a long clip
    costs `num_frames` resizes. The aspect ratio is not kept: training squashes, so inference must.
    `frames` may be any sequence; only the picked items are read (decode_clip converts just those).
    """
    from PIL import Image

    if isinstance(frames, np.ndarray) and frames.ndim != 4:
        raise InputError(f"frames must be uint8 [T, H, W, 3] RGB, got shape {tuple(frames.shape)}")
    pick = sample_indices(len(frames), num_frames)
    out = np.empty((num_frames, size, size, 3), dtype=np.uint8)
    for i, j in enumerate(pick):
        img = np.asarray(frames[j])
        _check_frame(img, int(j))
        if img.shape[0] != size or img.shape[1] != size:
            img = np.asarray(Image.fromarray(img).resize((size, size), Image.Resampling.BILINEAR))
        out[i] = img
    return out


class _RGBFrames(Sequence[np.ndarray]):
    """Decoded PyAV frames as a sequence of RGB arrays, converted only when an item is read."""

    def __init__(self, frames: list[Any]) -> None:
        self._frames = frames

    def __len__(self) -> int:
        return len(self._frames)

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [f.to_ndarray(format="rgb24") for f in self._frames[i]]
        return self._frames[i].to_ndarray(format="rgb24")


def decode_clip(
    src: bytes | str | Path,
    start: float = 0.0,
    end: float | None = None,
    *,
    num_frames: int = 8,
    size: int = 112,
) -> np.ndarray:
    """Decode [start, end) of a video (path or bytes) to uint8 [num_frames, size, size, 3] by the rule above.

    `end` None (or <= 0) means the end of the stream. A clip too short to hold a frame (between two
    frames of a low-fps video) gets the frame on screen at `start`, repeated. The clip's frames are
    kept in decoded (YUV) form until their count is known and only the picked ones are converted to
    RGB, so memory grows with clip length x resolution: split long videos into clips.
    """
    until = end if end is not None and end > 0 else None
    frames: list[Any] = []
    shown: Any = None  # the last frame before `start`: what is on screen at `start`
    with open_media(src) as container:
        if not container.streams.video:
            raise InputError(f"{_name(src)} has no video stream; a clip needs video frames")
        stream = container.streams.video[0]
        stream.thread_count = 1  # several decoders run side by side; their parallelism is what scales
        time_base = float(stream.time_base or 1e-3)
        if start > 0:
            container.seek(int(start / time_base), stream=stream, backward=True)
        for frame in container.decode(stream):
            t = frame.pts * time_base if frame.pts is not None else 0.0
            if t + _EPS_S < start:
                shown = frame
                continue
            if until is not None and t >= until - _EPS_S:
                break
            frames.append(frame)
        if not frames and shown is not None:
            frames = [shown]
        if not frames:
            raise InputError(
                f"no frames in {_name(src)} between {start}s and {end}s; check the clip's times against "
                "the video's duration (`vidray probe`)"
            )
        # Converted while the container is open: a PyAV frame read after its decoder is freed
        # crashed DataLoader workers with SIGSEGV (benchmarks/train_input.py).
        return frames_to_clip(_RGBFrames(frames), num_frames, size)


def _name(src: bytes | str | Path) -> str:
    return "the video bytes" if isinstance(src, bytes | bytearray | memoryview) else str(src)


__all__ = ["decode_clip", "frames_to_clip", "open_media", "sample_indices"]
