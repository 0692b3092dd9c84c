"""Merge noisy OCR observations of an editor, over time, into one file and its history.

Start here: the input is a list of `Obs` (one OCR'd text line: time, pixel box, text) taken from
frames of one editor pane; some come from OCR of the whole pane, some from OCR of only the rows
that changed since the last look. The output is the final text plus the sequence of code states.

1. Columns: every line box from `models.offline.layout` sits on the monospace cell grid
   (`w / len(text)` is the cell width, `x` a cell boundary), so one global grid (cell width,
   leftmost column) turns each line into absolute indentation, whether it came from a whole-pane
   or a one-row OCR.
2. Rows: a line-number gutter (digits at the left of most lines) gives each line its row
   directly, which also survives scrolling; without one, rows come from y on the line pitch.
3. Votes: each row's observations over time split into runs of similar text (an edited line
   starts a new run); a run's text is its most frequent reading, so one misread frame loses the
   vote. One-observation runs between others are OCR noise and fold into their neighbour.
4. History: the state at time t is every row seen by t with the text of its run at t; each
   change between consecutive distinct states is one step (unified diff + time span).
"""

from __future__ import annotations

import difflib
import re
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

_GUTTER = re.compile(r"^(\s*)(\d{1,4})(?=\s|$)")
_GUTTER_SHARE = 0.6  # share of observed lines that must start with a number for a gutter
_SAME_RUN = 0.6  # difflib ratio above which two readings are the same line (noise, not an edit)


@dataclass(frozen=True)
class Obs:
    """One OCR'd line: time (s), pixel box in the frame, text (may carry leading spaces)."""

    t: float
    x: float
    y: float
    w: float
    h: float
    text: str
    full: bool  # from OCR of the whole pane (so absent rows really are absent)
    confidence: float = 1.0
    source: str = ""  # how it was read ("full@1", "rows@2", ...): one opinion per way of reading


@dataclass
class _Run:
    start: float
    texts: list[str] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    weights: list[float] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        # Identical pixels read the same way give the same misread every time, so repeated reads
        # are not independent votes. Each way of reading (crop and scale) gives one opinion, its
        # own most frequent text; opinions are counted, then total confidence breaks ties.
        total: dict[str, float] = {}
        by_source: dict[str, dict[str, float]] = {}
        for text, w, src in zip(self.texts, self.weights, self.sources, strict=True):
            total[text] = total.get(text, 0.0) + 0.5 + w
            votes = by_source.setdefault(src, {})
            votes[text] = votes.get(text, 0.0) + 0.5 + w
        opinions: Counter[str] = Counter(max(v, key=lambda k: v[k]) for v in by_source.values())
        best = max(opinions.values())
        tied = [t for t in opinions if opinions[t] == best]
        top = max(total[t] for t in tied)
        # Remaining ties go to the latest reading: later frames show the settled line.
        return next(t for t in reversed(self.texts) if t in tied and total[t] >= top - 1e-9)

    def add(self, t: float, text: str, weight: float, source: str = "") -> None:
        self.texts.append(text)
        self.times.append(t)
        self.weights.append(weight)
        self.sources.append(source)


@dataclass(frozen=True)
class CodeState:
    t: float
    lines: list[str]


@dataclass(frozen=True)
class Merged:
    text: str
    states: list[CodeState]  # distinct states in time order
    gutter: bool


def _similar(a: str, b: str) -> bool:
    if a == b:
        return True
    if not a.strip() or not b.strip():
        return False
    return difflib.SequenceMatcher(None, a.strip(), b.strip(), autojunk=False).ratio() >= _SAME_RUN


def _grid(obs: list[Obs]) -> tuple[float, float]:
    """Cell width and leftmost cell boundary over all observations."""
    widths = [o.w / len(o.text) for o in obs if len(o.text.strip()) >= 4]
    cw = float(np.median(widths)) if widths else 12.0
    xs = sorted(o.x for o in obs)
    # The leftmost boundary seen at least twice (a single stray box must not shift every line).
    for x in xs:
        if sum(1 for y in xs if abs(y - x) < cw / 2) >= 2:
            return cw, x
    return cw, xs[0] if xs else 0.0


def absolute_lines(obs: list[Obs]) -> list[tuple[Obs, str]]:
    """Each observation's text re-indented on the global grid (column 0 = leftmost glyph seen)."""
    if not obs:
        return []
    cw, x0 = _grid(obs)
    out = []
    for o in obs:
        body = o.text.lstrip(" ")
        col = max(0, round((o.x - x0) / cw)) + (len(o.text) - len(body))
        out.append((o, " " * col + body.rstrip()))
    return out


def _strip_gutter(lines: list[tuple[Obs, str]]) -> tuple[list[tuple[Obs, int, str]], bool]:
    """(obs, row, code text) with the line-number gutter cut off, when most lines carry one.

    Gutter digits are dim and small, so OCR misreads some ("B)" for 5): the gutter's *column* is
    taken from the lines read well, every line is cut there, and rows come from y positions with
    the numbers only fixing each read's offset (which is what changes when the editor scrolls).
    """
    numbered = [(o, _GUTTER.match(text), text) for o, text in lines if text.strip()]
    hits = [(o, m, text) for o, m, text in numbered if m]
    if not numbered or len(hits) < _GUTTER_SHARE * len(numbered):
        return [], False
    # The code column: the smallest column where code starts on at least two lines (unindented
    # lines); a larger one on a given line is that line's indentation.
    starts = []
    for _o, m, text in hits:
        rest = text[m.end() :]
        if rest.strip():
            starts.append(m.end() + len(rest) - len(rest.lstrip(" ")))
    counts = Counter(starts)
    common = sorted(c for c, n in counts.items() if n >= 2) or sorted(counts) or [0]
    code_col = common[0]
    pitch, y0 = _pitch(lines)
    # Per read (one OCR call = one time and kind), the offset row - y-row that most numbers agree on.
    offsets: dict[tuple[float, bool], Counter[int]] = {}
    for o, m, _text in hits:
        offsets.setdefault((o.t, o.full), Counter())[int(m.group(2)) - 1 - round((o.y - y0) / pitch)] += 1
    known = sorted((key[0], c.most_common(1)[0][0]) for key, c in offsets.items())
    out = []
    for o, text in lines:
        gutter = text[:code_col]
        if len(gutter.strip()) > 4:  # prose or code left of the gutter column: not an editor line
            continue
        before = [off for t, off in known if t <= o.t]
        offset = before[-1] if before else (known[0][1] if known else 0)
        if (o.t, o.full) in offsets:
            offset = offsets[(o.t, o.full)].most_common(1)[0][0]
        out.append((o, round((o.y - y0) / pitch) + offset, text[code_col:].rstrip()))
    return out, True


def _pitch(lines: list[tuple[Obs, str]]) -> tuple[float, float]:
    """Line pitch (px) and the top line's y over all observations."""
    h = float(np.median([o.h for o, _ in lines]))
    reads: dict[tuple[float, bool], list[float]] = {}
    for o, _ in lines:
        reads.setdefault((o.t, o.full), []).append(o.y)
    # Neighbouring lines of one read are one pitch apart (blank lines make gaps of 2+ pitches).
    steps = [d for ys in reads.values() for d in np.diff(sorted(ys)) if 0.6 * h <= d <= 1.9 * h]
    pitch = float(np.median(steps)) if steps else h * 1.3
    return pitch, min(o.y for o, _ in lines)


def _rows_by_y(lines: list[tuple[Obs, str]]) -> list[tuple[Obs, int, str]]:
    pitch, y0 = _pitch(lines)
    return [(o, round((o.y - y0) / pitch), text) for o, text in lines if text.strip()]


def merge(obs: list[Obs]) -> Merged:
    """Final text and distinct states of one editor pane from its OCR observations."""
    lines = absolute_lines([o for o in obs if o.text.strip()])
    if not lines:
        return Merged("", [], False)
    rows, gutter = _strip_gutter(lines)
    if not gutter:
        rows = _rows_by_y(lines)
    by_row: dict[int, list[tuple[float, str, float, str]]] = {}
    for o, row, text in rows:
        if 0 <= row < 5000:
            by_row.setdefault(row, []).append((o.t, text, o.confidence, o.source))
    runs = {row: _runs(sorted(seen)) for row, seen in by_row.items()}
    ends = _row_ends(obs, rows, gutter)
    # Without a gutter, rows are relative to the top line: drop leading columns of emptiness.
    times = sorted({o.t for o in obs})
    states: list[CodeState] = []
    for t in times:
        state = _state_at(runs, ends, t)
        if not states or state != states[-1].lines:
            states.append(CodeState(t, state))
    final = states[-1].lines if states else []
    return Merged("\n".join(final), states, gutter)


def _runs(seen: list[tuple[float, str, float, str]]) -> list[_Run]:
    runs: list[_Run] = []
    for t, text, weight, source in seen:
        if not (runs and _similar(runs[-1].text, text)):
            runs.append(_Run(t))
        runs[-1].add(t, text, weight, source)
    # Fold single readings that sit between (or after) longer runs: one bad frame is not an edit.
    changed = True
    while changed and len(runs) > 1:
        changed = False
        for i, r in enumerate(runs):
            if len(r.texts) == 1:
                j = i - 1 if i > 0 else i + 1
                if len(runs[j].texts) > 1 or (i == len(runs) - 1 and i > 0):
                    target = runs[j]
                    target.add(r.times[0], r.texts[0], r.weights[0], r.sources[0])
                    target.start = min(target.start, r.start)
                    del runs[i]
                    changed = True
                    break
    return runs


def _row_ends(obs: list[Obs], rows: list[tuple[Obs, int, str]], gutter: bool) -> dict[int, float]:
    """When trailing rows vanish: a whole-pane OCR after a row's last reading that ends above it."""
    last_seen: dict[int, float] = {}
    for o, row, _ in rows:
        last_seen[row] = max(last_seen.get(row, -1.0), o.t)
    full_max: dict[float, int] = {}
    for o, row, _ in rows:
        if o.full:
            full_max[o.t] = max(full_max.get(o.t, -1), row)
    ends: dict[int, float] = {}
    for row, t_last in last_seen.items():
        later = [t for t, m in full_max.items() if t > t_last and m < row]
        if later:
            ends[row] = min(later)
    return ends


def _state_at(runs: dict[int, list[_Run]], ends: dict[int, float], t: float) -> list[str]:
    present: dict[int, str] = {}
    for row, rs in runs.items():
        if rs[0].start > t or ends.get(row, float("inf")) <= t:
            continue
        current = [r for r in rs if r.start <= t][-1]
        present[row] = current.text
    if not present:
        return []
    last = max(present)
    return [present.get(i, "") for i in range(0, last + 1)]


def unified_diff(before: list[str], after: list[str], name: str = "code") -> str:
    """The change between two states as a unified diff (no file header timestamps)."""
    return "\n".join(
        difflib.unified_diff(before, after, fromfile=f"a/{name}", tofile=f"b/{name}", lineterm="", n=1)
    )
