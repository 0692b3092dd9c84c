"""Question answering with temporal evidence.

Each question is parsed (`qa_parse`) into a type - at a time, after/before something, when
something first/last happens, how many times, which comes first, first/last thing, a two-step
"what is shown when X is said", or a plain factoid - and answered from timestamped evidence:
word-aligned spoken sentences, on-screen text spans, scenes and chapters. Every answer carries the
spans it rests on. When the evidence is absent the answer is "Not in the video" (found=False)
rather than a guess: a subject must actually occur (its content words, lightly stemmed, or a close
paraphrase by embedding) before anything is said about it.

A capable generative backend (vLLM, Gemini, OpenAI; not the packaged SmolLM2) rewrites factoid
answers from the retrieved evidence; the evidence spans stay the retrieval's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from analysis.qa_parse import ParsedQuestion, number_words, parse, parse_compound
from analysis.report import clock
from analysis.schema import Answer, Span
from analysis.units import Unit, clause_units, embed_units, safe, screen_units, speech_units

NOT_FOUND = "Not in the video"
_FACT_DENSE = 0.55  # cosine above which a unit answers a factoid even with few shared words
_FACT_MIXED = (0.5, 0.25)  # or: this share of the question's content words and this cosine
_MENTION_DENSE = 0.6  # cosine above which a unit is a paraphrased mention of a subject
_NEAR_S = 5.0  # at_time: nearest evidence accepted within this distance
_WEAK_GENERATORS = frozenset({"smollm2"})
_GENERIC = frozenset(
    ["what", "which", "who", "whom", "whose", "where", "why", "how", "speaker", "narrator", "video", "say", "says", "said", "tell", "told", "mention", "mentioned", "mentions", "talk", "talks", "talked", "discuss", "discussed", "explain", "explained", "show", "shown", "shows", "screen", "slide", "thing", "things", "about", "does", "do", "did", "is", "are", "was", "were", "the", "a", "an", "of", "to", "in", "on", "at", "for", "and", "or", "it", "its", "this", "that", "there", "their", "they", "be", "been", "being", "can", "could", "would", "should", "will", "any", "some", "get", "got", "happen", "happens", "happened"]
)


def stem(word: str) -> str:
    w = word.lower()
    for suf in ("ations", "ation", "ings", "ing", "edly", "ies", "ied", "ed", "es", "ly", "s"):
        if w.endswith(suf) and len(w) - len(suf) >= 3:
            w = w[: -len(suf)]
            break
    return w[:-1] if len(w) > 4 and w[-1] == w[-2] else w


def content_stems(text: str) -> list[str]:
    words = re.findall(r"[a-z0-9_]+", number_words(text))
    return [stem(w) for w in words if w not in _GENERIC and len(w) > 1]


@dataclass
class _Evidence:
    speech: list[Unit]  # sentences
    screen: list[Unit]
    words: list[list[Any]]
    clauses: list[Unit]


def _evidence(ctx: Any) -> _Evidence:
    from analysis.transcript import transcribe_video

    def compute() -> _Evidence:
        t = safe(ctx, transcribe_video, {"words": []})
        return _Evidence(safe(ctx, speech_units, []), safe(ctx, screen_units, []), t.get("words") or [],
                         safe(ctx, clause_units, []))

    return ctx.memo("qa_evidence", compute)


def _pool(ev: _Evidence, modality: str) -> list[Unit]:
    if modality == "speech":
        return ev.speech
    if modality == "screen":
        return ev.screen
    return sorted(ev.speech + ev.screen, key=lambda u: u.start)


def _span(u: Unit) -> Span:
    return Span(start=round(u.start, 3), end=round(u.end, 3))


def _embed_query(ctx: Any, text: str) -> np.ndarray:
    from analysis._models import router_for

    return np.asarray(router_for(ctx.settings).embed([text]).value[0], dtype=np.float32)


def mentions(ctx: Any, subject: str, units: list[Unit], name: str) -> list[Unit]:
    """Units that mention `subject` (all its content words, or a close paraphrase), in time order."""
    want = content_stems(subject)
    if not want or not units:
        return []
    hits = []
    for u in units:
        have = set(content_stems(u.text))
        need = len(want) if len(want) <= 2 else int(np.ceil(0.67 * len(want)))
        if sum(1 for w in want if w in have) >= need:
            hits.append(u)
    if hits:
        return hits
    emb = embed_units(ctx, units, name)
    sims = emb @ _embed_query(ctx, subject)
    return [u for u, s in zip(units, sims, strict=True) if s >= _MENTION_DENSE]


def _quote(u: Unit) -> str:
    text = " ".join(u.text.split())
    return text if u.kind == "speech" else f"on screen: {text}"


def _answer(q: str, text: str, units: list[Unit], confidence: float, backend: str = "extractive",
            found: bool = True) -> Answer:
    return Answer(question=q, answer=text, evidence=[_span(u) for u in units], confidence=round(confidence, 3),
                  backend=backend, found=found)


def _absent(q: str, what: str = "") -> Answer:
    why = f": {what}" if what else ""
    return Answer(question=q, answer=f"{NOT_FOUND}{why}", evidence=[], confidence=0.7, backend="extractive",
                  found=False)


def _at_time(ctx: Any, p: ParsedQuestion, t: float) -> Answer:
    ev = _evidence(ctx)
    parts, used = [], []
    for modality in (["speech", "screen"] if p.modality == "any" else [p.modality]):
        pool = _pool(ev, modality)
        covering = [u for u in pool if u.start - 0.3 <= t <= u.end + 0.3]
        if not covering and pool:
            near = min(pool, key=lambda u: min(abs(u.start - t), abs(u.end - t)))
            covering = [near] if min(abs(near.start - t), abs(near.end - t)) <= _NEAR_S else []
        for u in covering[:2]:
            parts.append(("Said: " if modality == "speech" and p.modality == "any" else
                          "On screen: " if modality == "screen" else "") + " ".join(u.text.split()))
            used.append(u)
    if not used:
        return _absent(p.text, f"nothing is said or shown around {clock(t)}")
    return _answer(p.text, " | ".join(parts), used, 0.8)


def _first_last(ctx: Any, p: ParsedQuestion, subject: str, which: str) -> tuple[Unit | None, list[Unit]]:
    pool = _pool(_evidence(ctx), p.modality)
    found = mentions(ctx, subject, pool, f"pool:{p.modality}")
    if not found and p.modality != "any":  # said vs shown is a hint: speech recognition or OCR may miss it
        found = mentions(ctx, subject, _pool(_evidence(ctx), "any"), "pool:any")
    if not found:
        return None, []
    return (found[0] if which == "first" else found[-1]), found


def _count(ctx: Any, p: ParsedQuestion) -> Answer:
    ev = _evidence(ctx)
    if p.modality == "structure":
        from analysis.chapters import build_chapters
        from analysis.index import scenes_of

        if p.subject in ("chapters", "topics", "sections", "parts"):
            chapters = build_chapters(ctx)
            return Answer(question=p.text, answer=f"{len(chapters)} {p.subject}",
                          evidence=[Span(start=c.start, end=c.end) for c in chapters], confidence=0.7,
                          backend="extractive")
        scenes = scenes_of(ctx).scenes
        n = len(scenes) - 1 if p.subject == "cuts" else len(scenes)
        return Answer(question=p.text, answer=f"{n} {p.subject}",
                      evidence=[Span(start=s.start, end=s.end) for s in scenes], confidence=0.7,
                      backend="extractive")
    want = content_stems(p.subject)
    if not want:
        return _absent(p.text, "the question names nothing to count")
    spoken: list[Unit] = []
    if p.modality in ("speech", "any") and ev.words:
        stems = [content_stems(str(w[2])) for w in ev.words]
        flat = [(s[0] if s else "", w) for s, w in zip(stems, ev.words, strict=True)]
        flat = [(s, w) for s, w in flat if s]
        for i in range(len(flat) - len(want) + 1):
            if [s for s, _ in flat[i: i + len(want)]] == want:
                spoken.append(Unit("speech", float(flat[i][1][0]), float(flat[i + len(want) - 1][1][1]),
                                   " ".join(str(w[2]) for _, w in flat[i: i + len(want)])))
    elif p.modality in ("speech", "any"):
        for u in ev.speech:
            stems_u = content_stems(u.text)
            n = sum(1 for i in range(len(stems_u)) if stems_u[i: i + len(want)] == want)
            spoken += [u] * n
    shown: list[Unit] = []
    if p.modality in ("screen", "any"):
        for u in mentions(ctx, p.subject, ev.screen, "pool:screen"):
            if shown and u.start - shown[-1].end < 1.5:  # the same appearance, OCR'd twice
                shown[-1] = Unit("screen", shown[-1].start, u.end, shown[-1].text)
            else:
                shown.append(u)
    hits = spoken if (p.modality == "speech" or (p.modality == "any" and spoken)) else shown
    if not hits:
        return _absent(p.text, f"'{p.subject}' is never {'said' if p.modality == 'speech' else 'said or shown'}")
    verb = "said" if hits is spoken else "shown"
    times = ", ".join(clock(u.start) for u in hits[:12])
    n = len(hits)
    return _answer(p.text, f"{n} time{'s' if n != 1 else ''} ({verb} at {times})", hits, 0.75)


def _order(ctx: Any, p: ParsedQuestion) -> Answer:
    a, b = p.others
    ua, _ = _first_last(ctx, p, a, "first")
    ub, _ = _first_last(ctx, p, b, "first")
    if ua is None or ub is None:
        missing = a if ua is None else b
        return _absent(p.text, f"'{missing}' is never said or shown")
    if p.which in ("before", "after"):
        yes = ua.start < ub.start if p.which == "before" else ua.start > ub.start
        return _answer(p.text, f"{'Yes' if yes else 'No'}: '{a}' at {clock(ua.start)}, '{b}' at {clock(ub.start)}",
                       [ua, ub], 0.8)
    first, second = (ua, ub) if ua.start <= ub.start else (ub, ua)
    name_first = a if first is ua else b
    name_second = b if first is ua else a
    pick = (name_first, first) if p.which in ("first", "earlier") else (name_second, second)
    return _answer(p.text, f"{pick[0]} (at {clock(pick[1].start)}; the other at "
                           f"{clock((second if pick[1] is first else first).start)})", [pick[1]], 0.8)


def _neighbour(ctx: Any, p: ParsedQuestion) -> Answer:
    anchor, _ = _first_last(ctx, p, p.subject, "first")
    if anchor is None:
        return _absent(p.text, f"'{p.subject}' is never said or shown")
    pool = _pool(_evidence(ctx), "speech" if p.modality in ("any", "speech") else "screen")
    if p.kind == "after":
        nxt = [u for u in pool if u.start >= anchor.end - 0.05 and u is not anchor
               and " ".join(u.text.split()) != " ".join(anchor.text.split())]
        if not nxt:
            return _answer(p.text, f"Nothing more after {clock(anchor.end)}; the video ends.", [anchor], 0.5)
        return _answer(p.text, _quote(nxt[0]), [nxt[0], anchor], 0.75)
    prev = [u for u in pool if u.end <= anchor.start + 0.05 and u is not anchor]
    if not prev:
        return _answer(p.text, f"Nothing comes before it; it is at the start ({clock(anchor.start)}).", [anchor], 0.5)
    return _answer(p.text, _quote(prev[-1]), [prev[-1], anchor], 0.75)


def _factoid(ctx: Any, p: ParsedQuestion) -> Answer:
    ev = _evidence(ctx)
    speech = ev.clauses if p.modality in ("speech", "any") else []
    screen = ev.screen if p.modality in ("screen", "any") else []
    pool = speech + screen or ev.clauses + ev.screen
    if not pool:
        return _absent(p.text, "the video has no speech or on-screen text")
    emb = embed_units(ctx, pool, f"factoid:{p.modality}")
    dense = emb @ _embed_query(ctx, p.text)
    want = set(content_stems(p.text))
    cover = np.array([len(want & set(content_stems(u.text))) / max(1, len(want)) for u in pool])
    # A title-like screen line ("Ocean Tides") is similar to many questions but rarely their answer.
    title = np.array([0.1 if u.kind == "screen" and len(u.text.split()) <= 3 else 0.0 for u in pool])
    score = 0.6 * dense + 0.4 * cover - title
    best = int(np.argmax(score))
    ok = dense[best] >= _FACT_DENSE or (cover[best] >= _FACT_MIXED[0] and dense[best] >= _FACT_MIXED[1])
    if not ok:
        return _absent(p.text, "no speech or on-screen text matches the question")
    order = [int(i) for i in np.argsort(-score)[:4]]
    generated = _generate(ctx, p.text, [pool[i] for i in order])
    if generated is not None:
        text, backend = generated
        return _answer(p.text, text, [pool[best]], float(min(0.95, score[best] + 0.2)), backend)
    unit = pool[best]
    sentence = _sentence_of(ev, unit)  # answer with the whole sentence; the evidence is the clause
    return _answer(p.text, _quote(sentence or unit), [unit], float(min(0.95, 0.3 + score[best])))


def _sentence_of(ev: _Evidence, clause: Unit) -> Unit | None:
    if clause.kind != "speech":
        return None
    mid = (clause.start + clause.end) / 2
    return next((s for s in ev.speech if s.start - 0.05 <= mid <= s.end + 0.05), None)


def _generate(ctx: Any, question: str, units: list[Unit]) -> tuple[str, str] | None:
    from analysis._models import router_for
    from cluster.errors import UnavailableError
    from models.base import ChatMessage, Kind

    router = router_for(ctx.settings)
    strong = [n for n in router.order("qa", Kind.TEXT_GENERATION)
              if n not in _WEAK_GENERATORS and router.availability(n).ok]
    if not strong:
        return None
    context = "\n".join(f"[{clock(u.start)}-{clock(u.end)}] {_quote(u)}" for u in units)
    prompt = ("Answer the question from this video evidence only; if it is not there, answer exactly "
              f"'{NOT_FOUND}'.\nEvidence:\n{context}\nQuestion: {question}")
    try:
        routed = router.generate([ChatMessage("user", prompt)], task="qa", max_tokens=200,
                                 video_sha256=ctx.video.metadata.sha256)
    except UnavailableError:
        return None
    if routed.backend in _WEAK_GENERATORS or not routed.value.text.strip():
        return None
    return routed.value.text.strip(), routed.backend


def _nth(ctx: Any, p: ParsedQuestion, index: int) -> Answer:
    """The n-th slide/scene (by cuts) or chapter/topic: its on-screen text and what is said in it."""
    from analysis.chapters import build_chapters
    from analysis.index import scenes_of

    if p.subject in ("chapter", "topic", "section", "part"):
        spans = [(c.start, c.end, c.title) for c in build_chapters(ctx)]
    else:
        spans = [(s.start, s.end, "") for s in scenes_of(ctx).scenes]
    if not -len(spans) <= index < len(spans):
        return _absent(p.text, f"the video has only {len(spans)} {p.subject}s")
    start, end, title = spans[index]
    ev = _evidence(ctx)
    shown = [u for u in ev.screen if start - 0.5 <= u.start < end]
    said = [u for u in ev.speech if start - 0.5 <= (u.start + u.end) / 2 < end]
    parts = [f"Title: {title}"] if title else []
    if shown:
        parts.append("On screen: " + " ".join(shown[0].text.split()))
    if said:
        parts.append("Said: " + " ".join(said[0].text.split()))
    span = Unit("scene", start, end, "")
    return _answer(p.text, " | ".join(parts) or f"{p.subject} {index + 1}: {clock(start)}-{clock(end)}", [span], 0.75)


def answer(ctx: Any, question: str) -> Answer:
    """Answer one question about the context's video."""
    compound = parse_compound(question, ctx.duration)
    if compound is not None:
        anchor_q, main = compound
        anchor, _ = _first_last(ctx, anchor_q, anchor_q.subject, "first")
        if anchor is None:
            return _absent(question, f"'{anchor_q.subject}' is never said or shown")
        inner = _at_time(ctx, main, (anchor.start + anchor.end) / 2)
        if inner.found:
            inner.evidence.append(_span(anchor))
        return inner
    p = parse(question, ctx.duration)
    if p.kind == "at_time" and p.time is not None:
        if p.time > ctx.duration + 1:
            return _absent(question, f"the video is only {clock(ctx.duration)} long")
        return _at_time(ctx, p, p.time)
    if p.kind in ("first_time", "last_time"):
        u, _ = _first_last(ctx, p, p.subject, "first" if p.kind == "first_time" else "last")
        if u is None:
            return _absent(question, f"'{p.subject}' is never said or shown")
        return _answer(question, f"At {clock(u.start)}: {_quote(u)}", [u], 0.8)
    if p.kind == "count":
        return _count(ctx, p)
    if p.kind == "order":
        return _order(ctx, p)
    if p.kind in ("after", "before"):
        return _neighbour(ctx, p)
    if p.kind == "nth" and p.time is not None:
        return _nth(ctx, p, int(p.time))
    if p.kind == "first_last":
        pool = _pool(_evidence(ctx), p.modality)
        if not pool:
            return _absent(question, "the video has no speech or on-screen text")
        u = pool[0] if p.which == "first" else pool[-1]
        return _answer(question, _quote(u), [u], 0.8)
    return _factoid(ctx, p)


def run(ctx: Any) -> dict[str, Any]:
    questions = ctx.request.questions
    out = []
    for i, q in enumerate(questions):
        ctx.progress({"stage": "qa", "percent": round(100 * i / max(1, len(questions)), 1)})
        out.append(answer(ctx, q))
    return {"answers": out}
