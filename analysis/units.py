"""Text units on the timeline: spoken sentences and on-screen text spans, embedded once.

Why sentences: transcript segments from Whisper run 2-10 s and can hold several sentences on
different points; summaries, chapter boundaries and QA evidence all want sentence-sized spans.
A segment's sentences get times in proportion to their character offsets, which is within a
second or so of the true times for ordinary speech.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")


@dataclass(frozen=True)
class Unit:
    kind: str  # speech | screen
    start: float
    end: float
    text: str


def split_sentences(text: str, start: float, end: float) -> list[Unit]:
    """Sentences of one transcript segment with proportional times."""
    parts = [p.strip() for p in _SENTENCE_END.split(text.strip()) if p.strip()]
    if len(parts) <= 1:
        return [Unit("speech", start, end, text.strip())] if text.strip() else []
    total = sum(len(p) for p in parts)
    out, t = [], start
    for p in parts:
        dt = (end - start) * len(p) / total
        out.append(Unit("speech", round(t, 3), round(t + dt, 3), p))
        t += dt
    return out


def sentences_from_words(words: list[list[Any]], max_words: int = 40) -> list[Unit]:
    """Sentences with exact times from aligned words: a sentence ends at . ! ? (or every `max_words`)."""
    units: list[Unit] = []
    cur: list[list[Any]] = []
    for w in words:
        cur.append(w)
        text = str(w[2])
        if text.endswith((".", "!", "?")) or len(cur) >= max_words:
            units.append(Unit("speech", float(cur[0][0]), float(cur[-1][1]), " ".join(str(x[2]) for x in cur)))
            cur = []
    if cur:
        units.append(Unit("speech", float(cur[0][0]), float(cur[-1][1]), " ".join(str(x[2]) for x in cur)))
    return units


def clauses_from_words(words: list[list[Any]], min_words: int = 3) -> list[Unit]:
    """Clauses (split at , ; : and sentence ends) with exact word times, for precise retrieval.

    A long sentence dilutes its embedding; the clause "knead the dough for ten minutes" matches
    "how long should the dough be kneaded" far better than the whole three-clause sentence.
    """
    units: list[Unit] = []
    cur: list[list[Any]] = []
    for w in words:
        cur.append(w)
        if str(w[2]).endswith((".", "!", "?", ",", ";", ":")) and len(cur) >= min_words:
            units.append(Unit("speech", float(cur[0][0]), float(cur[-1][1]), " ".join(str(x[2]) for x in cur)))
            cur = []
    if cur:
        units.append(Unit("speech", float(cur[0][0]), float(cur[-1][1]), " ".join(str(x[2]) for x in cur)))
    return units


def clause_units(ctx: Any) -> list[Unit]:
    """Spoken clauses when word times exist, else the sentences."""
    from analysis.transcript import transcribe_video

    def compute() -> list[Unit]:
        words = transcribe_video(ctx).get("words") or []
        return clauses_from_words(words) if words else speech_units(ctx)

    return ctx.memo("clause_units", compute)


def speech_units(ctx: Any) -> list[Unit]:
    from analysis.transcript import transcribe_video

    def compute() -> list[Unit]:
        t = transcribe_video(ctx)
        if t.get("words"):
            return sentences_from_words(t["words"])
        units: list[Unit] = []
        for seg in t["segments"]:
            units += split_sentences(seg.text, seg.start, seg.end)
        return units

    return ctx.memo("speech_units", compute)


def screen_units(ctx: Any) -> list[Unit]:
    from analysis.screen_text import screen_spans

    def compute() -> list[Unit]:
        return [Unit("screen", s.start, s.end, s.text) for s in screen_spans(ctx)]

    return ctx.memo("screen_units", compute)


def timeline(ctx: Any) -> list[Unit]:
    """Speech and screen units merged in time order."""
    return sorted(speech_units(ctx) + screen_units(ctx), key=lambda u: (u.start, u.kind))


def embed_units(ctx: Any, units: list[Unit], name: str) -> np.ndarray:
    """Unit-norm embeddings of `units` (memoised under `name`)."""
    from analysis._models import router_for

    def compute() -> np.ndarray:
        if not units:
            return np.zeros((0, 384), dtype=np.float32)
        return np.asarray(router_for(ctx.settings).embed([u.text for u in units]).value, dtype=np.float32)

    return ctx.memo(f"emb:{name}", compute)


def safe(ctx: Any, fn: Any, default: Any) -> Any:
    """Run an evidence source that may be unavailable here (no OCR engine, no speech model)."""
    from cluster.errors import UnavailableError

    try:
        return fn(ctx)
    except UnavailableError:
        return default
