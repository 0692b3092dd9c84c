"""Understanding a question: its type, the times and terms it names, and its sub-questions.

Why rules before models: the offline stack has no model that reasons about time, but temporal
questions are formulaic ("at 2:10", "after X", "when does X first", "how many times"). The parse
turns them into retrieval steps that `qa.py` answers from timestamped evidence; anything else is a
factoid answered by retrieval (or by a configured generative model).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_NUM_WORDS = {"zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
              "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14,
              "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20,
              "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90,
              "hundred": 100}

_CLOCK = re.compile(r"\b(\d{1,2}):(\d{2})(?::(\d{2}))?\b")
_MIN_SEC = re.compile(r"\b(\d+)\s*(?:minutes?|mins?|m)\s*(?:and\s*)?(\d+)\s*(?:seconds?|secs?|s)\b")
_SECONDS = re.compile(r"\b(\d+(?:\.\d+)?)\s*(?:seconds?|secs?|s)\b(?!\s*(?:long|of))")
_MINUTES = re.compile(r"\b(\d+(?:\.\d+)?)\s*(?:minutes?|mins?)\b(?!\s*(?:long|of))")
_AT_WORDS = re.compile(r"\b(at|around|near)\s+the\s+(very\s+)?(start|beginning|end|middle)\b")

_ORDINALS = {"first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7, "eighth": 8,
             "ninth": 9, "tenth": 10}
_NTH = re.compile(r"\b(first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|last|\d+(?:st|nd|rd|th))"
                  r"\s+(slide|chapter|topic|scene|section|part|shot)\b")
_QUOTED = re.compile(r"[\"“”']([^\"“”']{2,80})[\"“”']")


@dataclass
class ParsedQuestion:
    kind: str  # at_time | after | before | first_time | last_time | count | order | first_last | nth | factoid
    text: str
    time: float | None = None  # seconds, for at_time; the 0-based index (-1 = last) for nth
    modality: str = "any"  # speech | screen | any
    subject: str = ""  # the thing to find (after/before/first_time/count)
    others: list[str] = field(default_factory=list)  # order: the items to compare
    which: str = ""  # first | last (first_last)


def parse_time(q: str, duration: float) -> float | None:
    """A time named in the question, in seconds; None if it names none."""
    m = _CLOCK.search(q)
    if m:
        a, b, c = m.groups()
        return int(a) * 3600 + int(b) * 60 + int(c) if c else int(a) * 60 + int(b)
    m = _MIN_SEC.search(q)
    if m:
        return int(m.group(1)) * 60 + int(m.group(2))
    m = _SECONDS.search(q)
    if m and re.search(r"\b(at|after|around|near|from|second)\b", q[: m.start()] + " second"):
        return float(m.group(1))
    m = _MINUTES.search(q)
    if m and re.search(r"\b(at|around|near)\s+(the\s+)?$", q[: m.start()]):
        return float(m.group(1)) * 60
    m = _AT_WORDS.search(q)
    if m:
        where = m.group(3)
        return {"start": 0.0, "beginning": 0.0, "middle": duration / 2, "end": max(0.0, duration - 1.0)}[where]
    return None


def _modality(q: str) -> str:
    screen = re.search(r"\b(shown|show|on screen|on the screen|displayed|written|slide|appear|visible|title|"
                       r"read|see|seen|text)\b", q)
    speech = re.search(r"\b(said|say|says|spoken|mention|mentioned|mentions|narrat\w*|speaker|talk\w*|hear|"
                       r"heard|discuss\w*|explain\w*|tell|told)\b", q)
    if screen and not speech:
        return "screen"
    if speech and not screen:
        return "speech"
    return "any"


def _clean_subject(s: str) -> str:
    s = re.sub(r"^(the\s+(speaker|narrator|video)\s+)?(says?|mentions?|talks about|shows?|discusses|"
               r"explains?|is\s+(said|mentioned|shown|discussed)|are\s+(said|mentioned|shown))\s+", "", s.strip())
    s = re.sub(r"\s+(is|are|was|were)\s+(first\s+|last\s+)?(said|mentioned|shown|discussed|displayed|"
               r"explained|spoken|appear\w*|heard)\b.*$", "", s)
    s = re.sub(r"\s+(first|last)?\s*(appears?|happens?|occurs?|gets? mentioned|comes? up)\b.*$", "", s)
    s = re.sub(r"^(the\s+)?(word|phrase|term|topic|slide|title)\s+", "", s)
    return s.strip(" ?.!,\"'“”")


def _quoted_or(q: str, fallback: str) -> str:
    m = _QUOTED.search(q)
    return m.group(1).strip() if m else _clean_subject(fallback)


def parse(question: str, duration: float) -> ParsedQuestion:
    """Classify `question` (see ParsedQuestion.kind)."""
    q = " ".join(question.strip().split())
    low = q.lower()
    mod = _modality(low)

    m = _NTH.search(low)
    if m and re.match(r"^(what|which|who|how|describe|summari[sz]e|tell)\b", low) and "how many" not in low:
        word = m.group(1)
        index = -1 if word == "last" else (_ORDINALS.get(word) or int(re.sub(r"\D", "", word))) - 1
        return ParsedQuestion("nth", q, modality=mod, subject=m.group(2), time=float(index))

    m = re.search(r"\bhow many times\b(.*)", low)
    if m:
        return ParsedQuestion("count", q, modality=mod, subject=_quoted_or(q, _count_subject(m.group(1))))
    m = re.search(r"\bhow many (slides|scenes|shots|chapters|topics|sections|parts|cuts)\b", low)
    if m:
        return ParsedQuestion("count", q, modality="structure", subject=m.group(1))

    m = re.search(r"\bwhich (?:comes|is|was|appears|happens|is (?:said|mentioned|shown)) (first|earlier|"
                  r"later|last)\b.*?[,:]?\s*(.+?)\s+or\s+(.+?)\??$", low)
    if m:
        return ParsedQuestion("order", q, modality=mod, which=m.group(1),
                              others=[_clean_subject(m.group(2)), _clean_subject(m.group(3))])
    m = re.search(r"\b(?:is|was|does|do|did)\s+(.+?)\s+(?:come|said|mentioned|shown|appear|happen)?\s*"
                  r"(before|after)\s+(.+?)\??$", low)
    if m and not re.match(r"^(what|who|which|where|how)\b", low):
        return ParsedQuestion("order", q, modality=mod, which=m.group(2),
                              others=[_clean_subject(m.group(1)), _clean_subject(m.group(3))])

    m = re.search(r"\bwhen\b.*?\b(?:does|do|is|are|did|was|were)\s+(.+?)\s+(?:first\s+)?(?:appear|mentioned|said|"
                  r"shown|come up|happen|start|begin|discussed|displayed|heard)", low)
    if m or re.search(r"\b(when|what time|at what (time|point)|how far into)\b", low):
        subj = m.group(1) if m else re.sub(r"^.*?\b(when|what time|at what (time|point)|how far into the video)\b"
                                             r"\s*(does|do|is|are|did|was|were)?\s*", "", low)
        which = "last" if re.search(r"\b(last|final)\b", low) else "first"
        return ParsedQuestion("first_time" if which == "first" else "last_time", q, modality=mod,
                              subject=_quoted_or(q, subj))

    t = parse_time(low, duration)
    if t is not None:
        return ParsedQuestion("at_time", q, time=t, modality=mod)

    m = re.search(r"\b(?:right |just |immediately )?(after|before|following|preceding)\s+(.+?)\??$", low)
    if m and re.match(r"^(what|which|who)\b", low):
        kind = "after" if m.group(1) in ("after", "following") else "before"
        return ParsedQuestion(kind, q, modality=mod, subject=_quoted_or(q, m.group(2)))

    m = re.search(r"\bwhat (?:is|was) (?:the )?(first|last|final|opening|closing) (?:thing |sentence |words? |"
                  r"topic |slide |line )?(?:said|shown|spoken|mentioned|displayed|discussed|on screen)?", low)
    if m:
        which = "first" if m.group(1) in ("first", "opening") else "last"
        return ParsedQuestion("first_last", q, modality=mod, which=which)

    return ParsedQuestion("factoid", q, modality=mod)


def _count_subject(rest: str) -> str:
    rest = re.sub(r"^\s*(is|are|was|were|does|do|did)\s+(the\s+)?(word|phrase|term|name)?\s*", "", rest.strip())
    rest = re.sub(r"\s+(said|mentioned|spoken|shown|displayed|appear\w*|heard|used|repeated|say|mention|show)"
                  r"\b.*$", "", rest)
    rest = re.sub(r"^(the\s+)?(speaker|narrator|video)\s+(say|mention|show|use)\s+", "", rest)
    return rest.strip(" ?.!\"'")


def number_words(text: str) -> str:
    """'ten minutes' -> '10 minutes' so spoken and written numbers compare equal."""
    return re.sub(r"\b(" + "|".join(_NUM_WORDS) + r")\b", lambda m: str(_NUM_WORDS[m.group(1)]), text.lower())


_WHEN_CLAUSE = re.compile(r"^(what|which|who)\b(.*?)\b(when|while|as soon as|as)\s+(.+?)\??$")


def parse_compound(question: str, duration: float) -> tuple[ParsedQuestion, ParsedQuestion] | None:
    """A two-step question: "what is on screen when the speaker mentions X" -> (find X, look at that time).

    Returns (anchor, main): the anchor locates a time; the main question is asked at that time.
    """
    low = " ".join(question.lower().split())
    m = _WHEN_CLAUSE.match(low)
    if not m or "how many" in low:
        return None
    main_text, clause = m.group(2), m.group(4)
    anchor_mod = _modality(clause)
    subject = _clean_subject(re.sub(r"^(the\s+)?(speaker|narrator|video|someone|they|he|she)\s+", "", clause))
    subject = re.sub(r"^(says?|mentions?|talks about|shows?|discusses|explains?)\s+", "", subject).strip()
    if not subject:
        return None
    anchor = ParsedQuestion("first_time", question, modality=anchor_mod, subject=_quoted_or(clause, subject))
    main = ParsedQuestion("at_time", question, modality=_modality(main_text))
    return anchor, main
