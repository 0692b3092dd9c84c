"""Transcript task: timestamped speech segments through the router, and SRT/WebVTT output.

Long audio is transcribed in windows of `_WINDOW_S` seconds so memory stays bounded and an hour of
speech never sits in one array; segment times are shifted by each window's start. The result is
cached by content hash and the router's order, so the index, QA, summary and code tasks (and a
repeat request) reuse one transcription.
"""

from __future__ import annotations

from typing import Any

from analysis.schema import TranscriptSegment
from cluster.errors import InputError

_WINDOW_S = 300.0  # 5 min of 16 kHz float32 = 19 MB; Whisper's own 30 s chunking runs inside
_VERSION = 2  # 2: word times stored beside the segments


def transcribe_video(ctx: Any) -> dict[str, Any]:
    """{"language", "backend", "segments": [TranscriptSegment]} for the context's video (memoised)."""
    return ctx.memo("transcript", lambda: _transcribe_cached(ctx))


def _transcribe_cached(ctx: Any) -> dict[str, Any]:
    from analysis._models import router_for
    from data_pipeline.cache import Cache

    router = router_for(ctx.settings)
    meta = ctx.video.metadata
    if meta.audio is None:
        return {"language": ctx.request.language, "backend": "none", "segments": [],
                "note": "the video has no audio stream"}
    params = {"v": _VERSION, "order": router.order("transcribe"), "language": ctx.request.language}

    def compute(_out: Any) -> dict[str, Any]:
        return _transcribe(ctx, router)

    art = Cache(ctx.settings.cache_dir).get_or_compute(meta.sha256, "transcript", params, compute)
    value = dict(art.value)
    value["segments"] = [TranscriptSegment.model_validate(s) for s in value["segments"]]
    return value


def _transcribe(ctx: Any, router: Any) -> dict[str, Any]:
    from data_pipeline.audio import iter_audio

    segments: list[dict[str, Any]] = []
    words: list[list[Any]] = []  # [start, end, text]: sentence-level evidence needs word times
    language, backend = ctx.request.language, "none"
    total = max(ctx.duration, 1e-6)
    for start, samples in iter_audio(ctx.path, sample_rate=16000, chunk_s=_WINDOW_S):
        ctx.progress({"stage": "transcript", "percent": round(100 * start / total, 1)})
        if len(samples) < 1600:  # under 0.1 s: nothing to transcribe
            continue
        routed = router.transcribe(samples, language=ctx.request.language)
        backend = routed.backend
        language = routed.value.language or language
        for seg in routed.value.segments:
            text = seg.text.strip()
            if text:
                segments.append({"start": round(start + seg.start, 3), "end": round(start + seg.end, 3),
                                 "text": text, "confidence": seg.confidence})
                words += [[round(start + w.start, 3), round(start + w.end, 3), w.text] for w in seg.words]
    return {"language": language, "backend": backend, "segments": segments, "words": words}


def run(ctx: Any) -> dict[str, Any]:
    """The transcript task's result keys."""
    t = transcribe_video(ctx)
    return {"transcript": t["segments"], "transcript_info": {"language": t["language"], "backend": t["backend"]}}


def _clock(t: float, sep: str) -> str:
    if t < 0:
        raise InputError(f"negative timestamp {t}; segment times must be >= 0")
    ms = round(t * 1000)
    h, rem = divmod(ms, 3_600_000)
    m, rem = divmod(rem, 60_000)
    s, ms = divmod(rem, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def to_srt(segments: list[TranscriptSegment]) -> str:
    """SubRip subtitles: numbered cues, comma before milliseconds."""
    cues = [f"{i}\n{_clock(s.start, ',')} --> {_clock(max(s.end, s.start), ',')}\n{s.text}\n"
            for i, s in enumerate(segments, 1)]
    return "\n".join(cues)


def to_vtt(segments: list[TranscriptSegment]) -> str:
    """WebVTT subtitles: header, dot before milliseconds."""
    cues = [f"{_clock(s.start, '.')} --> {_clock(max(s.end, s.start), '.')}\n{s.text}\n" for s in segments]
    return "WEBVTT\n\n" + "\n".join(cues)
