"""Modes: presets of tasks, summary options and mode-specific extras for a kind of user.

| mode | tasks | extras |
|---|---|---|
| developer | transcript, code, summary (technical), chapters | - |
| researcher | transcript, summary (detailed bullets, each with its timestamp), chapters, qa | `citations` |
| data-engineer | transcript, chapters, actions | `clips`: dataset-ready clips with labels and text |
| trading | transcript, summary (executive), chapters | `market_mentions`: tickers, prices, percentages |
| legal | transcript | `speaker_turns` (by pauses), `pii` (emails, phones, card and ID numbers) |

A mode fills what the request left at its default; tasks the user named explicitly are kept.
`speaker_turns` split at pauses: no speaker-diarisation model ships offline, so turns are not
attributed to named speakers (documented limit).
"""

from __future__ import annotations

import re
from typing import Any

from analysis.schema import AnalysisRequest
from cluster.errors import InputError

MODES: dict[str, dict[str, Any]] = {
    "developer": {"tasks": ["transcript", "summary", "chapters", "code"], "summary_style": "technical"},
    "researcher": {"tasks": ["transcript", "summary", "chapters", "qa"], "summary_length": "detailed",
                   "summary_style": "bullets"},
    "data-engineer": {"tasks": ["transcript", "chapters", "actions"]},
    "trading": {"tasks": ["transcript", "summary", "chapters"], "summary_style": "executive"},
    "legal": {"tasks": ["transcript"]},
}
_TURN_PAUSE_S = 1.5  # a silence this long between words starts a new turn


def apply_mode(request: AnalysisRequest) -> AnalysisRequest:
    if request.mode not in MODES:
        raise InputError(f"unknown mode {request.mode!r}; choose one of {', '.join(MODES)}")
    preset = MODES[request.mode]
    explicit = request.model_fields_set
    update = {k: v for k, v in preset.items() if k not in explicit}
    if "tasks" in explicit:  # keep the user's tasks, add the mode's
        update["tasks"] = list(dict.fromkeys([*request.tasks, *preset["tasks"]]))
    return request.model_copy(update=update)


def extras(ctx: Any) -> dict[str, Any]:
    """The mode's extra result keys."""
    fn = {"researcher": _citations, "data-engineer": _clips, "trading": _market, "legal": _legal}.get(
        ctx.request.mode or "")
    return fn(ctx) if fn else {}


def _citations(ctx: Any) -> dict[str, Any]:
    from analysis.units import safe, speech_units

    return {"citations": [{"t": round(u.start, 3), "end": round(u.end, 3), "text": u.text}
                          for u in safe(ctx, speech_units, [])]}


def _clips(ctx: Any) -> dict[str, Any]:
    from analysis.chapters import build_chapters
    from analysis.units import safe, speech_units

    speech = safe(ctx, speech_units, [])
    clips = []
    for c in build_chapters(ctx):
        text = " ".join(u.text for u in speech if c.start <= (u.start + u.end) / 2 < c.end)
        clips.append({"video_id": ctx.video.video_id, "start": c.start, "end": c.end, "label": c.title,
                      "text": text, "split": "train"})
    return {"clips": clips}


_TICKER = re.compile(r"(?<![A-Za-z])\$?([A-Z]{2,5})(?=\s+(?:at|is|was|up|down|rose|fell|closed|traded|\$|\d))")
_PRICE = re.compile(r"(?:\$|USD\s?|EUR\s?|€|£)\s?\d[\d,]*(?:\.\d+)?|\b\d[\d,]*(?:\.\d+)?\s?(?:dollars|euros|usd)\b",
                    re.I)
_PERCENT = re.compile(r"[-+]?\d+(?:\.\d+)?\s?(?:%|percent\b)", re.I)


def _market(ctx: Any) -> dict[str, Any]:
    from analysis.units import safe, screen_units, speech_units

    found = []
    for u in safe(ctx, speech_units, []) + safe(ctx, screen_units, []):
        for kind, rx in (("ticker", _TICKER), ("price", _PRICE), ("percent", _PERCENT)):
            for m in rx.finditer(u.text):
                value = m.group(1) if kind == "ticker" else m.group(0)
                found.append({"t": round(u.start, 3), "end": round(u.end, 3), "kind": kind, "value": value.strip(),
                              "source": u.kind, "context": " ".join(u.text.split())[:160]})
    found.sort(key=lambda x: (x["t"], x["kind"]))
    return {"market_mentions": found}


_EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+\.[\w.]+\b")
_PHONE = re.compile(r"(?<!\d)(?:\+?\d{1,3}[\s.-]?)?(?:\(\d{3}\)|\d{3})[\s.-]?\d{3}[\s.-]?\d{4}(?!\d)")
_SSN = re.compile(r"\b\d{3}-\d{2}-\d{4}\b")
_CARD = re.compile(r"\b(?:\d[ -]?){13,19}\b")


def _luhn(digits: str) -> bool:
    total, alt = 0, False
    for ch in reversed(digits):
        d = int(ch) * (2 if alt else 1)
        total += d - 9 if d > 9 else d
        alt = not alt
    return total % 10 == 0


def find_pii(text: str) -> list[tuple[str, str]]:
    """(kind, value) for emails, phone numbers, US SSNs and Luhn-valid card numbers in `text`."""
    out = [("email", m.group(0)) for m in _EMAIL.finditer(text)]
    out += [("ssn", m.group(0)) for m in _SSN.finditer(text)]
    for m in _CARD.finditer(text):
        digits = re.sub(r"\D", "", m.group(0))
        if 13 <= len(digits) <= 19 and _luhn(digits):
            out.append(("card_number", m.group(0).strip()))
    taken = {v for _, v in out}
    out += [("phone", m.group(0).strip()) for m in _PHONE.finditer(text)
            if not any(m.group(0).strip() in v for v in taken)]
    return out


def _legal(ctx: Any) -> dict[str, Any]:
    from analysis.transcript import transcribe_video
    from analysis.units import safe, screen_units

    t = transcribe_video(ctx)
    words = t.get("words") or [[s.start, s.end, s.text] for s in t["segments"]]
    turns: list[dict[str, Any]] = []
    for w in words:
        if turns and float(w[0]) - turns[-1]["end"] < _TURN_PAUSE_S:
            turns[-1]["end"] = float(w[1])
            turns[-1]["text"] += " " + str(w[2])
        else:
            turns.append({"turn": len(turns) + 1, "start": float(w[0]), "end": float(w[1]), "text": str(w[2]),
                          "speaker": None})
    pii = []
    for turn in turns:
        pii += [{"t": turn["start"], "end": turn["end"], "kind": k, "value": v, "source": "speech"}
                for k, v in find_pii(turn["text"])]
    for u in safe(ctx, screen_units, []):
        pii += [{"t": u.start, "end": u.end, "kind": k, "value": v, "source": "screen"} for k, v in find_pii(u.text)]
    return {"speaker_turns": turns, "pii": pii,
            "speaker_note": "turns are split at pauses; no diarisation model ships offline, so speakers are unnamed"}
