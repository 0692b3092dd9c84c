"""Transcribe long audio in chunks, cut at quiet moments, with segment times on the whole recording.

Why chunk at all: a speech backend takes one array, and an hour of 16 kHz audio is 230 MB of
float32 before the model's own buffers; chunks bound memory, give progress, and let a router fall
back per chunk. Why cut at the quietest moment near each boundary: a cut through a word garbles it
on both sides, while a cut in a pause costs nothing. Works with any `SpeechToText`-shaped callable.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import numpy as np

from models.base import SAMPLE_RATE, Segment, Transcript

_WINDOW_S = 0.1  # energy window for finding a pause; shorter than most pauses between words


def quietest_cut(audio: np.ndarray, search_s: float, sample_rate: int = SAMPLE_RATE) -> int:
    """Sample index of the quietest `_WINDOW_S` window (its middle) within the last `search_s` seconds."""
    win = max(1, int(_WINDOW_S * sample_rate))
    lo = max(0, audio.size - int(search_s * sample_rate))
    tail = audio[lo:]
    if tail.size < 2 * win:
        return audio.size
    n = tail.size // win
    energy = (tail[: n * win].reshape(n, win) ** 2).mean(axis=1)
    return lo + int(np.argmin(energy)) * win + win // 2


def transcribe_chunks(
    chunks: Iterable[tuple[float, np.ndarray]],
    transcribe: Callable[[np.ndarray], Transcript],
    *,
    search_s: float = 5.0,
    sample_rate: int = SAMPLE_RATE,
) -> Iterator[tuple[Transcript, float]]:
    """Yield (transcript of one piece, its start time) for contiguous (start time, samples) chunks.

    Each chunk but the last is cut at its quietest point within its last `search_s` seconds; the
    remainder is carried into the next chunk. Segment times in the yielded transcripts are
    relative to the piece; add the yielded start time (or use `offset_segments`).
    """
    carry = np.zeros(0, dtype=np.float32)
    carry_t: float | None = None
    for (t, data), last in _with_last(chunks):
        if carry_t is None:
            carry_t = t
        buf = np.concatenate([carry, data]) if carry.size else data
        cut = buf.size if last else quietest_cut(buf, search_s, sample_rate)
        piece = buf[:cut]
        if piece.size:
            yield transcribe(piece), carry_t
        carry = buf[cut:]
        carry_t += cut / sample_rate


def _with_last(items: Iterable[tuple[float, np.ndarray]]) -> Iterator[tuple[tuple[float, np.ndarray], bool]]:
    it = iter(items)
    try:
        prev = next(it)
    except StopIteration:
        return
    for item in it:
        yield prev, False
        prev = item
    yield prev, True


def offset_segments(transcript: Transcript, offset: float) -> list[Segment]:
    """The transcript's segments moved `offset` seconds later."""
    return [Segment(s.start + offset, s.end + offset, s.text, s.confidence) for s in transcript.segments]
