"""Decode one clip (a time range of an encoded video held in memory) to training tensors.

Why here and not `data_pipeline.decode`: dataset videos live as blobs inside Lance (bytes, possibly
on S3), and the reader needs a fixed T×size×size×3 tensor per clip. PyAV decodes straight from an
in-memory buffer, so a worker never writes a temporary file; one seek to the keyframe before the
clip start bounds the work to the clip itself. One FFmpeg thread per call: the reader runs several
decode workers on a small machine, and their parallelism is what scales.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

AUDIO_RATE = 16_000  # Hz; what speech and audio encoders expect


def _open(src: bytes | str | Path) -> Any:
    import av

    return av.open(io.BytesIO(src) if isinstance(src, bytes | bytearray | memoryview) else str(src))


def sample_times(start: float, end: float, num_frames: int) -> np.ndarray:
    """Centres of `num_frames` equal segments of [start, end): uniform sampling that never hits `end`."""
    return start + (end - start) * (np.arange(num_frames) + 0.5) / num_frames


def _to_square(frame: Any, size: int) -> np.ndarray:
    # Scale the shorter side to `size` (swscale, in C), then centre-crop: keeps aspect, fixed shape.
    scale = size / min(frame.width, frame.height)
    w, h = max(size, round(frame.width * scale)), max(size, round(frame.height * scale))
    img = frame.to_ndarray(format="rgb24", width=w, height=h)
    y, x = (h - size) // 2, (w - size) // 2
    return np.ascontiguousarray(img[y : y + size, x : x + size])


def decode_clip(
    src: bytes | str | Path, start: float, end: float, *, num_frames: int = 8, size: int = 112
) -> np.ndarray:
    """Return uint8 frames T×size×size×3 sampled uniformly from [start, end) of `src`.

    Each target time takes the last frame shown at or before it (the first frame when the clip starts
    before the stream does); past the end of the stream the last frame repeats, so the shape is fixed.
    """
    targets = sample_times(start, end, num_frames)
    out = np.zeros((num_frames, size, size, 3), dtype=np.uint8)
    with _open(src) as container:
        stream = container.streams.video[0]
        stream.thread_count = 1
        if start > 0 and stream.time_base:
            container.seek(int(start / stream.time_base), stream=stream, backward=True, any_frame=False)
        i, prev, prev_img = 0, None, None
        for frame in container.decode(stream):
            t = frame.time if frame.time is not None else 0.0
            while i < num_frames and t > targets[i] + 1e-6:
                if prev_img is None:
                    prev_img = _to_square(prev if prev is not None else frame, size)
                out[i] = prev_img
                i += 1
            if i >= num_frames:
                break
            prev, prev_img = frame, None
        if i < num_frames:
            if prev is None:
                raise ValueError(f"no video frames decoded in [{start}, {end})")
            out[i:] = _to_square(prev, size)
    return out


def decode_audio(src: bytes | str | Path, start: float, end: float, *, rate: int = AUDIO_RATE) -> np.ndarray:
    """Return mono float32 samples of [start, end) at `rate` Hz; zeros when the file has no audio."""
    import av

    n = max(0, round((end - start) * rate))
    out = np.zeros(n, dtype=np.float32)
    with _open(src) as container:
        if not container.streams.audio:
            return out
        stream = container.streams.audio[0]
        if start > 0 and stream.time_base:
            container.seek(int(start / stream.time_base), stream=stream, backward=True)
        resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
        pos = None  # sample index (in clip coordinates) of the next resampled sample
        for frame in container.decode(stream):
            for rf in resampler.resample(frame):
                samples = rf.to_ndarray().reshape(-1)
                if pos is None:
                    t0 = rf.time if rf.time is not None else (frame.time or 0.0)
                    pos = round((t0 - start) * rate)
                lo, hi = pos, pos + samples.shape[0]
                pos = hi
                a, b = max(lo, 0), min(hi, n)
                if b > a:
                    out[a:b] = samples[a - lo : b - lo]
            if pos is not None and pos >= n:
                break
    return out
