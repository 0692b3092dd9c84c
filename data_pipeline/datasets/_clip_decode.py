"""Decode one clip's audio (a time range of an encoded video held in memory) for training.

Why here and not `data_pipeline.decode`: dataset videos live as blobs inside Lance (bytes, possibly
on S3). PyAV decodes straight from an in-memory buffer, so a worker never writes a temporary file;
one seek before the clip start bounds the work to the clip itself.

Frames are not decoded here: `clip_frames.decode_clip` is the one frame rule, shared with train/
and inference (re-exported below for existing importers).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from data_pipeline.datasets.clip_frames import decode_clip, open_media

AUDIO_RATE = 16_000  # Hz; what speech and audio encoders expect


def decode_audio(src: bytes | str | Path, start: float, end: float, *, rate: int = AUDIO_RATE) -> np.ndarray:
    """Return mono float32 samples of [start, end) at `rate` Hz; zeros when the file has no audio."""
    import av

    n = max(0, round((end - start) * rate))
    out = np.zeros(n, dtype=np.float32)
    with open_media(src) as container:
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


__all__ = ["AUDIO_RATE", "decode_audio", "decode_clip"]
