"""`vidray transcribe SOURCE`: speech in a video (URL or path) to timed text, offline by default.

    vidray transcribe talk.mp4                       # [00:00:01.20 -> 00:00:04.80] text, one line per segment
    vidray transcribe https://host/v.mp4 --json      # {"language", "backend", "segments": [{"start","end","text"}]}
    vidray transcribe talk.mp4 --srt talk.srt        # also write SubRip subtitles
    vidray transcribe talk.mp4 --backend pocketsphinx --chunk-s 120

The source goes through the ingest cache; audio is decoded at 16 kHz mono in chunks (`--chunk-s`)
that are cut at pauses (models.offline.chunked), so memory stays flat on long videos and segment
times are on the video's clock. The model comes from the router's "transcribe" order
(faster-whisper, then what is configured) unless `--backend` names one.
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path
from typing import Any

from vidray.commands._common import atomic_path, print_json, settings_from


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("transcribe", help="speech to timed text (Whisper offline by default)")
    p.add_argument("source", help="video URL or file path")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--srt", metavar="FILE", help="also write SubRip subtitles to FILE")
    p.add_argument("--language", help="spoken language code, e.g. en (default: detect or the model's)")
    p.add_argument("--backend", help="a backend name (see `vidray models`) instead of the router's order")
    p.add_argument(
        "--chunk-s",
        type=float,
        default=300.0,
        help="audio seconds per model call; cuts move to the nearest pause (default 300)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cluster.errors import InputError

    if not args.chunk_s >= 10:
        raise InputError(
            f"--chunk-s {args.chunk_s}: use at least 10 seconds (pauses are searched in the last 5)"
        )
    settings = settings_from(args)
    doc = transcribe_source(
        args.source, settings, language=args.language, backend=args.backend, chunk_s=args.chunk_s
    )
    if args.srt:
        with atomic_path(args.srt) as tmp:
            Path(tmp).write_text(to_srt(doc["segments"]), encoding="utf-8")
    if args.json:
        print_json(doc)
    else:
        for s in doc["segments"]:
            print(f"[{_clock(s['start'], '.')} -> {_clock(s['end'], '.')}] {s['text']}")
    return 0


def transcribe_source(
    source: str,
    settings: Any,
    *,
    language: str | None = None,
    backend: str | None = None,
    chunk_s: float = 300.0,
) -> dict[str, Any]:
    """Ingest `source`, transcribe its audio chunk by chunk, and return the command's JSON document."""
    from data_pipeline.audio import iter_audio
    from data_pipeline.ingest import ingest
    from models.offline.chunked import offset_segments, transcribe_chunks

    video = ingest(source, settings)
    call, close = _transcriber(settings, backend, language)
    used: Counter[str] = Counter()
    languages: Counter[str] = Counter()
    segments: list[dict[str, Any]] = []

    def one(piece: Any) -> Any:
        transcript, name = call(piece)
        used[name] += 1
        return transcript

    try:
        for transcript, t0 in transcribe_chunks(iter_audio(video.path, chunk_s=chunk_s), one):
            if transcript.segments:
                languages[transcript.language] += len(transcript.segments)
            segments += [
                {"start": round(s.start, 3), "end": round(s.end, 3), "text": s.text.strip()}
                for s in offset_segments(transcript, t0)
                if s.text.strip()
            ]
    finally:
        close()
    return {
        "video_id": video.video_id,
        "language": languages.most_common(1)[0][0] if languages else (language or ""),
        "backend": used.most_common(1)[0][0] if used else (backend or ""),
        "segments": segments,
    }


def _transcriber(settings: Any, backend: str | None, language: str | None) -> tuple[Any, Any]:
    """(piece -> (Transcript, backend name), close): a named backend, or the router's order."""
    if backend:
        from cluster.errors import InputError, UnavailableError
        from models import registry
        from models.base import SpeechToText

        b = registry.create(backend, settings.models)
        if not isinstance(b, SpeechToText):
            raise InputError(f"backend {backend!r} is not a speech-to-text backend; see `vidray models`")
        ok = b.availability()
        if not ok.ok:
            raise UnavailableError(f"backend {backend!r} cannot run here: {ok.reason}")
        return (lambda piece: (b.transcribe(piece, language=language), b.name)), b.close
    from models.router import Router

    router = Router(settings)

    def call(piece: Any) -> tuple[Any, str]:
        routed = router.transcribe(piece, language=language)
        return routed.value, routed.backend

    return call, router.close


def _clock(seconds: float, sep: str) -> str:
    ms = round(seconds * 1000)
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def to_srt(segments: list[dict[str, Any]]) -> str:
    """SubRip text: numbered cues, `HH:MM:SS,mmm --> HH:MM:SS,mmm`, blank line between cues."""
    cues = [
        f"{i}\n{_clock(s['start'], ',')} --> {_clock(s['end'], ',')}\n{s['text']}\n"
        for i, s in enumerate(segments, 1)
    ]
    return "\n".join(cues)
