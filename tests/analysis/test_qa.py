"""Q&A over a generated lecture: spoken facts, on-screen text, timing, order, counting, absent facts.

The video has four narrated topics, each with its own slide (title + body lines); the topic spans are
known exactly, so every answer's evidence is checked against the span that holds the fact.
"""

from __future__ import annotations

import re

import pytest

from analysis.qa import answer
from analysis.qa_parse import number_words, parse

# (question, acceptable answer fragments (any), topic index whose span the evidence must overlap)
# topic None: structural/count answers checked by fragments only; ABSENT: must be "not in the video".
ABSENT = "absent"
CASES: list[tuple[str, list[str], int | str | None]] = [
    # spoken facts
    ("When was the mountain railway built?", ["1898"], 0),
    ("How long does the train take to climb?", ["40 minutes"], 0),
    ("How high does the train climb?", ["2000", "2,000"], 0),
    ("What is the bridge at the top made of?", ["granite"], 0),
    ("At what temperature are the coffee beans roasted?", ["200"], 1),
    ("What does a light roast keep?", ["acidity"], 1),
    ("What do solar panels turn sunlight into?", ["electricity"], 2),
    ("How much power does a typical panel produce?", ["400"], 2),
    ("Which direction do panels face in the northern hemisphere?", ["south"], 2),
    ("What are the largest animals on earth?", ["whale"], 3),
    ("What do blue whales eat?", ["krill"], 3),
    ("How far can a whale song travel?", ["1000", "1,000", "thousand"], 3),
    # on-screen text
    ("What length is written on the railway slide?", ["9 km", "9km"], 0),
    ("What efficiency is shown on the slide?", ["22"], 2),
    ("What is the title of the second slide?", ["coffee"], 1),
    ("What is on the last slide?", ["whale"], 3),
    ("What is shown on screen at the beginning?", ["mountain", "railway"], 0),
    ("What is shown at the end?", ["whale"], 3),
    ("What output is displayed on the solar slide?", ["400"], 2),
    ("What food is listed on the whale slide?", ["krill"], 3),
    # timing
    ("When are blue whales first mentioned?", ["whale"], 3),
    ("When does the slide Solar Panels appear?", ["solar"], 2),
    ("When is krill mentioned?", ["krill"], 3),
    ("When does the speaker talk about acidity?", ["acidity"], 1),
    ("What is said at {t1}?", ["coffee", "roast", "bridge", "acidity"], 1),
    ("What is shown on screen at {t2}?", ["solar"], 2),
    ("What is said at {t3}?", ["whale", "krill", "song", "bridge", "earth"], 3),
    # order
    ("Which comes first, coffee roasting or solar panels?", ["coffee"], 1),
    ("Which is mentioned later, electricity or acidity?", ["electricity"], 2),
    ("Is coffee mentioned before whales?", ["yes"], None),
    ("Is granite mentioned after krill?", ["no"], None),
    ("What is said right after the speaker mentions granite?", ["coffee", "roast"], 1),
    ("What is said just before the speaker talks about krill?", ["largest", "whale"], 3),
    ("What is the last thing said?", ["bridge", "harbour", "whale"], 3),
    ("What is the first thing said?", ["1898", "railway"], 0),
    # counting
    ("How many times is the word bridge said?", ["3 times"], None),
    ("How many slides are there?", ["4"], None),
    ("How many topics are covered?", ["4"], None),
    ("How many times is the word coffee shown on screen?", ["1 time"], None),
    # two-step
    ("What is on screen when the speaker mentions krill?", ["whale", "krill"], 3),
    ("What is shown when the speaker talks about acidity?", ["coffee", "roast", "temperature"], 1),
    ("What is said while the slide Solar Panels is shown?", ["solar", "panel", "electricity", "watts", "south"], 2),
    ("What is on screen when granite is mentioned?", ["mountain", "railway", "1898", "9 km"], 0),
    # absent facts
    ("What does the speaker say about volcanoes?", [], ABSENT),
    ("Who invented the telephone?", [], ABSENT),
    ("When is the Eiffel Tower mentioned?", [], ABSENT),
    ("How many times is the word pizza said?", [], ABSENT),
    ("What is shown on screen when the speaker mentions dinosaurs?", [], ABSENT),
    ("What is said at 9:00?", [], ABSENT),
    ("Is tea mentioned before coffee?", [], ABSENT),
    ("What happens after the speaker mentions the moon landing?", [], ABSENT),
    ("What is the capital of Australia?", [], ABSENT),
]


def test_question_set_is_large_enough() -> None:
    assert len(CASES) >= 50
    assert sum(1 for c in CASES if c[2] == ABSENT) >= 8


@pytest.mark.parametrize(("q", "kind"), [
    ("What is said at 1:05?", "at_time"), ("What is shown 12 seconds in?", "at_time"),
    ("How many times is 'data' said?", "count"), ("When does the word budget first appear?", "first_time"),
    ("Which comes first, A or B?", "order"), ("What happens after the demo?", "after"),
    ("What is the title of the third slide?", "nth"), ("Why is the sky blue?", "factoid"),
])
def test_parse_kinds(q: str, kind: str) -> None:
    assert parse(q, 600).kind == kind


def test_number_words() -> None:
    assert number_words("Ten minutes and four hundred watts") == "10 minutes and 4 100 watts"


def _norm(text: str) -> str:
    return re.sub(r"(?<=\d),(?=\d{3})", "", number_words(text))


@pytest.mark.slow
def test_qa_accuracy_offline(lecture) -> None:
    video, ctx = lecture
    mid = [(s + e) / 2 for s, e in video.spans]
    clock = lambda t: f"{int(t // 60)}:{int(t % 60):02d}"  # noqa: E731
    correct, failures = 0, []
    for q, frags, topic in CASES:
        q = q.format(t1=clock(mid[1]), t2=clock(mid[2]), t3=clock(mid[3]))
        a = answer(ctx, q)
        if topic == ABSENT:
            ok = not a.found and not a.evidence
        else:
            text = _norm(a.answer)
            ok = a.found and any(_norm(f) in text for f in frags)
            if ok and isinstance(topic, int):  # evidence must overlap the span that holds the fact
                lo, hi = video.spans[topic]
                ok = any(e.start < hi and e.end > lo for e in a.evidence)
        correct += ok
        if not ok:
            failures.append(f"{q} -> {a.answer!r} found={a.found} ev={[(e.start, e.end) for e in a.evidence]}")
    accuracy = correct / len(CASES)
    print(f"QA accuracy {correct}/{len(CASES)} = {accuracy:.2f}", *failures, sep="\n")
    assert accuracy >= 0.8, "\n".join(failures)
