"""Audio as mono float32 at a fixed rate (16 kHz for speech models), streamed, plus loudness features.

Why PyAV with one streaming resampler (and not per-chunk range requests): chunks cut from one
continuous resampler output join sample-exactly, with no gap or overlap at chunk borders and no
re-decoding of the codec's priming samples per chunk. Memory is one chunk plus one codec frame.

Times are seconds on the video's clock (the audio stream's pts), so an audio chunk starting at
`t` lines up with the video frame shown at `t`.
"""

from __future__ import annotations

import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from cluster.errors import InputError

_WIN_S = 0.05  # analysis window for silences and peaks: 50 ms resolves word gaps
_FLOOR_DB = -100.0  # dBFS reported for digital silence (log of 0 is -inf)
_PREROLL_S = 0.25  # decode this much before a seek target (codec and resampler warm-up)
_DEFAULT_TB = 1 / 48000  # time base when a stream reports none
_MAX_PEAKS = 20  # peaks reported; the loudest, at least 1 s apart
_PEAK_OVER_MEDIAN_DB = 10.0  # a peak stands this far above the median window level


def _open_audio(path: str | Path) -> tuple[Any, Any]:
    import av

    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p} does not exist or is not a file; pass a path to a video or audio file")
    try:
        container = av.open(str(p), metadata_errors="ignore")
    except (av.error.FFmpegError, UnicodeDecodeError) as e:
        raise InputError(f"{p.name} is not a readable media file ({e}); check the file is complete") from e
    if not container.streams.audio:
        container.close()
        raise InputError(f"{p.name} has no audio stream; pass a video with sound (or skip audio for this file)")
    return container, container.streams.audio[0]


def _decode_mono(path: str | Path, sample_rate: int, start: float | None) -> Iterator[tuple[float, np.ndarray]]:
    """(time of first sample, samples) blocks from `start` on, resampled to mono `sample_rate`."""
    import av

    container, stream = _open_audio(path)
    name = Path(path).name
    resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
    tb = float(stream.time_base or _DEFAULT_TB)
    with container:
        if start is not None and start > _PREROLL_S:
            # Seek early: the codec (AAC/Opus priming) and the resampler's filter need a few ms of
            # input before their output is exact; the caller trims the lead-in.
            container.seek(int((start - _PREROLL_S) / tb), stream=stream, backward=True, any_frame=False)
        t_next: float | None = None  # time of the next output sample; fixed at the first frame
        try:
            frames: Iterator[Any] = container.decode(stream)
            for frame in frames:
                if t_next is None:
                    t_next = float(frame.pts * tb) if frame.pts is not None else 0.0
                for out in resampler.resample(frame):
                    data = out.to_ndarray().reshape(-1).astype(np.float32, copy=False)
                    yield t_next, data
                    t_next += len(data) / sample_rate
            for out in resampler.resample(None):  # flush the resampler's delay line
                data = out.to_ndarray().reshape(-1).astype(np.float32, copy=False)
                yield (t_next or 0.0), data
                t_next = (t_next or 0.0) + len(data) / sample_rate
        except av.error.FFmpegError as e:
            raise InputError(f"{name}: the audio stream cannot be decoded ({e}); the file is corrupt") from e


def _check_rate(sample_rate: int) -> None:
    if not 1000 <= sample_rate <= 192_000:
        raise InputError(f"sample_rate={sample_rate} is out of range; use 8000-48000 (16000 for speech models)")


def iter_audio(path: str | Path, *, sample_rate: int = 16000, chunk_s: float = 30.0,
               start: float | None = None, end: float | None = None) -> Iterator[tuple[float, np.ndarray]]:
    """Yield (start time, mono float32 samples) chunks of `chunk_s` seconds (the last may be shorter).

    Chunks are contiguous: chunk k+1 starts exactly where chunk k ends.
    """
    _check_rate(sample_rate)
    if not chunk_s > 0:
        raise InputError(f"chunk_s={chunk_s} must be > 0 seconds")
    size = max(1, round(chunk_s * sample_rate))
    buf: list[np.ndarray] = []
    have = 0
    t0: float | None = None
    for t, data in _decode_mono(path, sample_rate, start):
        if start is not None and t < start:  # the seek landed before `start`: drop the lead-in
            skip = min(len(data), round((start - t) * sample_rate))
            data, t = data[skip:], t + skip / sample_rate
        if end is not None and t + len(data) / sample_rate > end:
            data = data[: max(0, round((end - t) * sample_rate))]
        if not len(data):
            if end is not None and t >= end:
                break
            continue
        if t0 is None:
            t0 = t
        buf.append(data)
        have += len(data)
        while have >= size:
            joined = np.concatenate(buf)
            yield t0, joined[:size]
            t0 += size / sample_rate
            rest = joined[size:]
            buf, have = ([rest] if len(rest) else []), len(rest)
    if have and t0 is not None:
        yield t0, np.concatenate(buf)


def load_audio(path: str | Path, *, sample_rate: int = 16000, start: float | None = None,
               end: float | None = None) -> np.ndarray:
    """The audio of `path` between `start` and `end` (seconds) as one mono float32 array."""
    if start is not None and end is not None and end <= start:
        raise InputError(f"end={end} must be after start={start} (seconds)")
    parts = [d for _, d in iter_audio(path, sample_rate=sample_rate, chunk_s=60.0, start=start, end=end)]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)


def write_wav(path: str | Path, samples: np.ndarray, sample_rate: int = 16000) -> None:
    """Write mono samples (float in [-1, 1], clipped) as a 16-bit PCM WAV file."""
    x = np.asarray(samples)
    if x.ndim != 1:
        raise InputError(f"write_wav expects mono 1-D samples, got shape {x.shape}; average the channels first")
    pcm = (np.clip(x.astype(np.float32), -1.0, 1.0) * 32767.0).round().astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(pcm.tobytes())


class Silence(BaseModel):
    model_config = ConfigDict(extra="forbid")
    start: float
    end: float


class Peak(BaseModel):
    model_config = ConfigDict(extra="forbid")
    t: float = Field(description="start of the loudest 50 ms window of the peak (s)")
    db: float


class AudioFeatures(BaseModel):
    """Loudness over time: per-second RMS level, silent stretches, and the loudest moments."""

    model_config = ConfigDict(extra="forbid")
    sample_rate: int
    duration_s: float
    loudness_db: list[float] = Field(description="RMS level in dBFS of each whole or partial second.")
    silences: list[Silence] = Field(description=f"Stretches below silence_db for >= min_silence_s ({_WIN_S}s grid).")
    peaks: list[Peak] = Field(description=f"Up to {_MAX_PEAKS} loudest 50 ms windows, >= 1 s apart, "
                                          f">= {_PEAK_OVER_MEDIAN_DB} dB over the median.")


def _db(mean_square: np.ndarray) -> np.ndarray:
    return np.maximum(_FLOOR_DB, 10.0 * np.log10(np.maximum(mean_square, 1e-12)))


def audio_features(path_or_samples: str | Path | np.ndarray, *, sample_rate: int = 16000,
                   silence_db: float = -40.0, min_silence_s: float = 0.5) -> AudioFeatures:
    """Loudness features of a file (streamed) or of mono samples already in memory."""
    win = max(1, round(_WIN_S * sample_rate))
    # Sums of squares per 50 ms window, accumulated chunk by chunk (bounded memory).
    sums: list[np.ndarray] = []
    counts: list[np.ndarray] = []
    carry = np.zeros(0, dtype=np.float32)
    if isinstance(path_or_samples, np.ndarray):
        blocks: Iterator[np.ndarray] = iter([np.asarray(path_or_samples, dtype=np.float32).reshape(-1)])
    else:
        blocks = (d for _, d in iter_audio(path_or_samples, sample_rate=sample_rate, chunk_s=30.0))
    for block in blocks:
        x = np.concatenate([carry, block]) if len(carry) else block
        n = len(x) // win * win
        sums.append(np.square(x[:n], dtype=np.float64).reshape(-1, win).sum(axis=1))
        counts.append(np.full(n // win, win))
        carry = x[n:]
    if len(carry):
        sums.append(np.array([np.square(carry, dtype=np.float64).sum()]))
        counts.append(np.array([len(carry)]))
    s = np.concatenate(sums) if sums else np.zeros(0)
    c = np.concatenate(counts) if counts else np.zeros(0)
    total = int(c.sum())
    per_s = round(1.0 / _WIN_S)
    loud = [float(_db(np.array([s[i:i + per_s].sum() / c[i:i + per_s].sum()]))[0]) for i in range(0, len(s), per_s)]
    win_db = _db(s / np.maximum(c, 1))
    silences: list[Silence] = []
    quiet = win_db < silence_db
    i = 0
    while i < len(quiet):
        if quiet[i]:
            j = i
            while j < len(quiet) and quiet[j]:
                j += 1
            a, b = i * _WIN_S, min(j * _WIN_S, total / sample_rate)
            if b - a >= min_silence_s - 1e-9:
                silences.append(Silence(start=round(a, 3), end=round(b, 3)))
            i = j
        else:
            i += 1
    peaks: list[Peak] = []
    if len(win_db):
        median = float(np.median(win_db))
        gap = round(1.0 / _WIN_S)
        for k in np.argsort(-win_db, kind="stable"):
            if win_db[k] < median + _PEAK_OVER_MEDIAN_DB or len(peaks) >= _MAX_PEAKS:
                break
            if all(abs(int(k) - round(p.t / _WIN_S)) >= gap for p in peaks):
                peaks.append(Peak(t=round(int(k) * _WIN_S, 3), db=round(float(win_db[k]), 2)))
        peaks.sort(key=lambda p: p.t)
    return AudioFeatures(sample_rate=sample_rate, duration_s=round(total / sample_rate, 4),
                         loudness_db=[round(x, 2) for x in loud], silences=silences, peaks=peaks)
