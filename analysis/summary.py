"""Summaries in three lengths and four styles, extractive offline and generative when a model is set.

Offline (the default here) the summary is *extractive*: DESIGN.md measured the packaged SmolLM2
inventing content, so sentences are selected, never written. Selection covers every chapter (so
each topic is named) and prefers central sentences (high mean similarity to the rest of their
chapter); the output keeps time order. When a capable generative backend is configured (vLLM,
Gemini, OpenAI - anything but the packaged SmolLM2), it rewrites the extractive draft in the
requested length and style, grounded in the selected sentences and chapter titles.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from analysis.chapters import build_chapters, key_moments
from analysis.qa import content_stems
from analysis.units import Unit, embed_units, safe, screen_units, speech_units

_PER_CHAPTER = {"one_line": 0, "short": 1, "detailed": 3}
_MAX_SENTENCES = {"one_line": 1, "short": 6, "detailed": 24}
_WEAK_GENERATORS = frozenset({"smollm2"})  # packaged model: too weak to rewrite faithfully


def _fmt(t: float) -> str:
    return f"{int(t // 60)}:{int(t % 60):02d}"


def _fluent(text: str) -> bool:
    words = text.lower().split()
    return len(words) < 6 or len(set(words)) / len(words) >= 0.6


def _select(ctx: Any, length: str) -> list[tuple[Unit, str]]:
    """(sentence, chapter title) pairs chosen for the summary, in time order."""
    chapters = build_chapters(ctx)
    speech = safe(ctx, speech_units, []) or safe(ctx, screen_units, [])
    if not speech:
        return []
    emb = embed_units(ctx, speech, "summary_units")
    centrality = (emb @ emb.T).mean(axis=1) if len(speech) > 1 else np.ones(1)
    # Degenerate recognitions ("animal marvellous animal marvellous") are never quoted.
    centrality = centrality - np.array([0.0 if _fluent(u.text) else 1.0 for u in speech])
    chosen: list[tuple[int, str]] = []
    per = _PER_CHAPTER[length]
    for c in chapters:
        idx = [i for i, u in enumerate(speech) if c.start - 0.5 <= (u.start + u.end) / 2 < c.end]
        title = set(content_stems(c.title))
        # Prefer the sentence that names the chapter's topic, then the most central one.
        idx.sort(key=lambda i: -(centrality[i] + 0.3 * len(title & set(content_stems(speech[i].text)))))
        chosen += [(i, c.title) for i in idx[: max(per, 0)]]
    if length == "one_line" or not chosen:
        best = int(np.argmax(centrality))
        chosen = [(best, chapters[0].title if chapters else "")]
    chosen = sorted(set(chosen))[: _MAX_SENTENCES[length]]
    return [(speech[i], title) for i, title in chosen]


def extractive_summary(ctx: Any, length: str, style: str) -> str:
    picked = _select(ctx, length)
    chapters = build_chapters(ctx)
    titles = [c.title for c in chapters]
    if not picked:
        return "The video has no speech or on-screen text to summarise" + (
            f"; it has {len(chapters)} {'part' if len(chapters) == 1 else 'parts'}." if chapters else ".")
    sentences = [u.text.rstrip() if u.text.rstrip().endswith((".", "!", "?")) else u.text.rstrip() + "."
                 for u, _ in picked]
    if length == "one_line":
        topics = f" Topics: {'; '.join(titles)}." if len(titles) > 1 else ""
        return sentences[0] + topics
    covers = f"Covers {len(titles)} topics: {'; '.join(titles)}. " if len(titles) > 1 else ""
    if style == "bullets":
        return "\n".join(f"- [{_fmt(u.start)}] {title}: {s}" if title else f"- [{_fmt(u.start)}] {s}"
                         for (u, title), s in zip(picked, sentences, strict=True))
    if style == "executive":
        lines = [f"Bottom line: {sentences[0]}", "Key points:"]
        lines += [f"- {s}" for s in sentences[1:]] or [f"- {sentences[0]}"]
        lines.append(f"Covers: {'; '.join(titles)}.")
        return "\n".join(lines)
    if style == "technical":
        shown = [u.text.strip().splitlines()[0] for u in safe(ctx, screen_units, [])[:8] if u.text.strip()]
        body = " ".join(f"[{_fmt(u.start)}] {s}" for (u, _), s in zip(picked, sentences, strict=True))
        extra = f"\nOn screen: {' | '.join(dict.fromkeys(shown))}" if shown else ""
        return covers + body + extra
    return covers + " ".join(sentences)


def generative_summary(ctx: Any, draft: str, length: str, style: str) -> tuple[str, str] | None:
    """Rewrite with a capable configured model; None when only weak/offline generators exist."""
    from analysis._models import router_for
    from cluster.errors import UnavailableError
    from models.base import ChatMessage, Kind

    router = router_for(ctx.settings)
    strong = [n for n in router.order("summary", Kind.TEXT_GENERATION) if n not in _WEAK_GENERATORS and router.availability(n).ok]
    if not strong:
        return None
    titles = "; ".join(f"{_fmt(c.start)} {c.title}" for c in build_chapters(ctx))
    words = {"one_line": "one sentence", "short": "3-5 sentences", "detailed": "2-4 paragraphs"}[length]
    prompt = (f"Summarise this video in {words}, style: {style}. Use only the facts below.\n"
              f"Chapters: {titles}\nKey sentences:\n{draft}")
    try:
        routed = router.generate([ChatMessage("user", prompt)], task="summary", max_tokens=600,
                                 video_sha256=ctx.video.metadata.sha256)
    except UnavailableError:
        return None
    if routed.backend in _WEAK_GENERATORS or not routed.value.text.strip():
        return None
    return routed.value.text.strip(), routed.backend


def run(ctx: Any) -> dict[str, Any]:
    length, style = ctx.request.summary_length, ctx.request.summary_style
    draft = extractive_summary(ctx, length, style)
    rewritten = generative_summary(ctx, draft, length, style)
    text, backend = rewritten if rewritten else (draft, "extractive")
    return {"summary": text, "summary_info": {"backend": backend, "length": length, "style": style},
            "key_moments": key_moments(ctx)}
