"""Chapters: topic shifts in speech and on-screen text, snapped to scene cuts; and key moments.

Method (offline, no generative model needed):
1. Text units (sentences + screen spans) in time order are embedded. For each gap between units,
   the similarity of the mean embedding of the `_WINDOW` units before and after it is computed
   (TextTiling with embeddings). A gap is a topic boundary when that similarity is a local minimum
   and falls under `min(_ABS_SIM, _REL_SIM * median)` - relative, so a video whose sentences are all
   loosely related still splits where it changes most, and absolute, so one topic never splits.
2. A boundary moves to a scene cut inside its gap (+-`_SNAP_S`), because slides and shots change
   exactly where the topic does while speech pauses are fuzzy.
3. With little text (under `_TEXT_COVERAGE` of the duration), chapters come from scene cuts alone,
   short scenes merged up to a minimum length.
Titles: a short on-screen line at the chapter's start (a slide title) when there is one, else the
chapter's most distinctive words. Each chapter's one-line summary is its most central sentence.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from analysis.schema import Chapter, KeyMoment
from analysis.units import Unit, embed_units, safe, screen_units, speech_units

_WINDOW = 3
_ABS_SIM = 0.45
_REL_SIM = 0.75
_SNAP_S = 2.5
_TEXT_COVERAGE = 0.3
_MIN_CHAPTER_FRACTION = 0.04  # no chapter shorter than 4% of the video (or _MIN_CHAPTER_S)
_MIN_CHAPTER_S = 4.0
_LOUD_OVER_MEDIAN_DB = 15.0
_SILENT_DB = -60.0


def chapter_bounds(ctx: Any) -> list[float]:
    """Chapter start times (the first is the video start); memoised."""
    return ctx.memo("chapter_bounds", lambda: _bounds(ctx))


def _units(ctx: Any) -> list[Unit]:
    speech = safe(ctx, speech_units, [])
    screen = safe(ctx, screen_units, [])
    return sorted(speech + screen, key=lambda u: (u.start, u.kind))


def _cuts(ctx: Any) -> list[float]:
    from analysis.index import scenes_of

    return [float(c) for c in scenes_of(ctx).cuts]


def _bounds(ctx: Any) -> list[float]:
    duration = ctx.duration
    min_len = max(_MIN_CHAPTER_S, _MIN_CHAPTER_FRACTION * duration)
    units = _units(ctx)
    cuts = _cuts(ctx)
    covered = sum(u.end - u.start for u in units if u.kind == "speech") + sum(
        u.end - u.start for u in units if u.kind == "screen") / 2
    if len(units) < 4 or covered < _TEXT_COVERAGE * duration:
        return _merge_short([0.0, *cuts], duration, min_len)
    emb = embed_units(ctx, units, "chapter_units")
    n = len(units)
    sims = np.ones(n, dtype=np.float32)  # sims[i]: similarity across the gap before unit i
    for i in range(1, n):
        left = emb[max(0, i - _WINDOW): i].mean(axis=0)
        right = emb[i: i + _WINDOW].mean(axis=0)
        sims[i] = float(left @ right / (np.linalg.norm(left) * np.linalg.norm(right) + 1e-9))
    body = sims[1:]
    limit = min(_ABS_SIM, _REL_SIM * float(np.median(body)))
    bounds = [0.0]
    for i in range(1, n):
        lo, hi = max(1, i - 1), min(n - 1, i + 1)
        if sims[i] > limit or sims[i] > sims[lo:hi + 1].min() + 1e-6:
            continue
        gap_lo, gap_hi = units[i - 1].end, units[i].start
        t = _snap((gap_lo + gap_hi) / 2, gap_lo, gap_hi, cuts)
        if t - bounds[-1] >= min_len and duration - t >= min_len:
            bounds.append(t)
    return bounds


def _snap(t: float, lo: float, hi: float, cuts: list[float]) -> float:
    near = [c for c in cuts if lo - _SNAP_S <= c <= hi + _SNAP_S]
    return min(near, key=lambda c: abs(c - t)) if near else t


def _merge_short(starts: list[float], duration: float, min_len: float) -> list[float]:
    out = [0.0]
    for s in starts[1:]:
        if s - out[-1] >= min_len and duration - s >= min_len / 2:
            out.append(s)
    return out


def _distinctive_words(texts: list[str], all_counts: Counter[str], n: int = 3) -> list[str]:
    from analysis.index import tokens

    counts = Counter(t for text in texts for t in tokens(text) if len(t) > 2 and not t.isdigit())
    total = sum(all_counts.values()) or 1
    scored = sorted(counts, key=lambda w: -(counts[w] * np.log(1 + total / (1 + all_counts[w]))))
    return scored[:n]


def _central(units: list[Unit], emb: np.ndarray) -> Unit | None:
    if not units:
        return None
    if len(units) <= 2:
        return max(units, key=lambda u: len(u.text))
    sims = emb @ emb.T
    return units[int(np.argmax(sims.mean(axis=1)))]


def build_chapters(ctx: Any) -> list[Chapter]:
    """Chapters with titles and one-line summaries (memoised)."""
    return ctx.memo("chapters", lambda: _chapters(ctx))


def _chapters(ctx: Any) -> list[Chapter]:
    from analysis.index import tokens

    bounds = chapter_bounds(ctx)
    ends = [*bounds[1:], ctx.duration]
    speech = safe(ctx, speech_units, [])
    screen = safe(ctx, screen_units, [])
    all_counts = Counter(t for u in speech + screen for t in tokens(u.text))
    chapters = []
    for k, (start, end) in enumerate(zip(bounds, ends, strict=True)):
        said = [u for u in speech if start - 0.5 <= (u.start + u.end) / 2 < end]
        shown = [u for u in screen if start - 1.0 <= u.start < end]
        title = _slide_title(shown, start) or " ".join(w.capitalize() for w in
                                                       _distinctive_words([u.text for u in said + shown],
                                                                          all_counts))
        pool = said or shown
        central = _central(pool, embed_units(ctx, pool, f"chapter{k}")) if pool else None
        summary = central.text if central else "No speech or on-screen text in this part."
        chapters.append(Chapter(start=round(start, 3), end=round(end, 3),
                                title=title or f"Part {k + 1}", summary=summary))
    return chapters


def _slide_title(shown: list[Unit], start: float) -> str | None:
    for u in shown:
        if u.start > start + 3.0:
            break
        first = u.text.strip().splitlines()[0].strip() if u.text.strip() else ""
        if 2 <= len(first.split()) <= 8 and any(c.isalpha() for c in first) and not first.endswith((";", "{", ":")):
            return first
    return None


def key_moments(ctx: Any, limit: int = 10) -> list[KeyMoment]:
    """Chapter starts, loudness peaks and new on-screen text, scored and capped at `limit`."""
    from analysis.index import audio_features_of

    moments: list[KeyMoment] = []
    chapters = build_chapters(ctx)
    for c in chapters:
        moments.append(KeyMoment(t=c.start, label=c.title, score=0.9 if c.start > 0 else 0.6,
                                 why="chapter start (topic or scene change)"))
    feats = audio_features_of(ctx)
    if feats is not None and feats.loudness_db:
        # The median of the sounding seconds: silence-heavy videos would otherwise make every
        # syllable look like a loud moment.
        sounding = [db for db in feats.loudness_db if db > _SILENT_DB] or feats.loudness_db
        med = float(np.median(sounding))
        for p in feats.peaks[:5]:
            if p.db - med < _LOUD_OVER_MEDIAN_DB:  # ordinary syllables peak ~10 dB over the median
                continue
            score = float(min(0.8, 0.4 + (p.db - med) / 40))
            moments.append(KeyMoment(t=round(p.t, 3), label="loud moment", score=round(score, 3),
                                     why=f"audio peak {p.db:.0f} dBFS, {p.db - med:.0f} dB over the median"))
    for u in safe(ctx, screen_units, [])[:50]:
        if any(abs(u.start - c.start) < 1.0 for c in chapters):
            continue
        line = u.text.strip().splitlines()[0][:60]
        moments.append(KeyMoment(t=round(u.start, 3), label=f"on screen: {line}", score=0.5,
                                 why="new on-screen text"))
    moments.sort(key=lambda m: -m.score)
    kept: list[KeyMoment] = []
    for m in moments:
        if all(abs(m.t - k.t) >= 1.0 for k in kept):
            kept.append(m)
    return sorted(kept[:limit], key=lambda m: m.t)


def run(ctx: Any) -> dict[str, Any]:
    return {"chapters": build_chapters(ctx), "key_moments": key_moments(ctx)}
