"""Recover text layout (indentation, spacing, blank lines) from OCR boxes of monospaced text.

Why: OCR engines return words or lines without their leading whitespace, and code without its
indentation is wrong code. On a screen, monospaced text sits on a grid of equal-width character
cells, so every glyph's centre lies half a cell right of a cell boundary. Fitting that grid
(cell width + origin) to the boxes gives each glyph its column, and columns give back indentation
and internal spacing exactly, independent of which glyph starts a line (box edges are not:
an `l` and a `(` start at different offsets inside their cells).

Two entry points:

* `lines_from_chars` (engines that report per-glyph boxes, e.g. Tesseract): glyphs to lines whose
  text already has its spaces, each `TextBox` aligned to cell boundaries so `w / len(text)` is
  the cell width.
* `to_text` (any engine's line boxes): lines to one text block, indentation from each line's x.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from models.base import TextBox

# Quotes that OCR language models "correct" into typographic ones; code and terminals use ASCII.
_SMART = str.maketrans({"“": '"', "”": '"', "„": '"', "‘": "'", "’": "'", "‚": "'", "—": "-", "–": "-"})
# Glyphs that touch their neighbours in monospaced fonts and so come back as one wide box.
_RUNS = set("_-=~")
# fit_grid error (squared cells) above which text is treated as proportional. Rendered code
# measures ~0.01 here; glyph centres scattered uniformly give 1/12 ≈ 0.083.
_MONO_MAX_ERR = 0.03


@dataclass(frozen=True)
class CharBox:
    """One recognised glyph (or a few, for ligature-like boxes): pixel box, x/y = top-left."""

    text: str
    x: float
    y: float
    w: float
    h: float
    line: int = -1  # engine's line id, if it groups lines (-1: group by position)
    word: int = -1  # engine's word id, used when the text is not monospaced
    confidence: float = 1.0


def ascii_quotes(text: str) -> str:
    """Typographic quotes and dashes back to the ASCII characters code is written with."""
    return text.translate(_SMART)


def fit_grid(centers: np.ndarray, cell_guess: float) -> tuple[float, float, float]:
    """Cell width and origin of the monospace grid that best explains glyph centre x positions.

    Searches cell widths within -15%..+25% of the guess (a glyph's ink is narrower than its cell,
    so guesses err low) and, for each, the origin phase; the score is the mean squared distance of
    each centre from the middle of its nearest cell. The range excludes cell/2, which would also fit.

    Returns (cell width, origin, error); error is in squared cells: ~0.005 for rendered monospace,
    ~0.08 (uniform) for proportional text, whose glyphs sit on no grid.
    """
    if len(centers) == 0 or cell_guess <= 0:
        return max(cell_guess, 1.0), 0.0, 0.0
    widths = np.linspace(cell_guess * 0.85, cell_guess * 1.25, 480)
    phases = np.linspace(0.0, 1.0, 32, endpoint=False)
    best = (np.inf, cell_guess, 0.0)
    for cw in widths:
        # r[p, i]: centre i measured in cells from origin phase p, minus the half cell.
        r = centers[None, :] / cw - phases[:, None] - 0.5
        err = np.mean((r - np.round(r)) ** 2, axis=1)
        p = int(np.argmin(err))
        if err[p] < best[0]:
            best = (float(err[p]), float(cw), float(phases[p] * cw))
    return best[1], best[2], best[0]


def _cell_guess(chars: Sequence[CharBox]) -> float:
    # Best evidence: neighbouring glyphs of one word are exactly one cell apart, centre to centre.
    by_word: dict[tuple[int, int], list[float]] = {}
    for c in chars:
        if c.word >= 0 and len(c.text) == 1:
            by_word.setdefault((c.line, c.word), []).append(c.x + c.w / 2)
    steps = [d for xs in by_word.values() for d in np.diff(sorted(xs)) if d > 0]
    if len(steps) >= 5:
        return float(np.median(steps))
    wide = [c.w for c in chars if len(c.text) == 1 and c.text in "mwMW"]
    if wide:
        return float(np.median(wide)) * 1.05
    # Multi-glyph boxes (engines that report words) span about (n - 0.2) cells of n glyphs.
    words = [c.w / (len(c.text) - 0.2) for c in chars if len(c.text) >= 3]
    if len(words) >= 3:
        return float(np.median(words))
    alnum = [c.w / len(c.text) for c in chars if c.text.isalnum()]
    return float(np.median(alnum)) * 1.3 if alnum else 10.0


def _bands(chars: Sequence[CharBox]) -> list[tuple[float, float]]:
    """Vertical extent of each text line, from the glyphs at least 60% of the median height."""
    hmed = float(np.median([c.h for c in chars]))
    tall = sorted((c for c in chars if c.h > 0.6 * hmed), key=lambda c: c.y)
    bands: list[list[float]] = []
    for c in tall:
        if bands and c.y < bands[-1][1] - 0.3 * hmed:
            bands[-1][0] = min(bands[-1][0], c.y)
            bands[-1][1] = max(bands[-1][1], c.y + c.h)
        else:
            bands.append([c.y, c.y + c.h])
    return [(a, b) for a, b in bands]


def _rows(chars: Sequence[CharBox]) -> list[list[CharBox]]:
    """Glyphs grouped into lines: by the engine's line ids when it gave them, else by position."""
    if all(c.line >= 0 for c in chars):
        by_id: dict[int, list[CharBox]] = {}
        for c in chars:
            by_id.setdefault(c.line, []).append(c)
        return list(by_id.values())
    bands = _bands(chars)
    if not bands:
        return []
    band_mid = np.array([(a + b) / 2 for a, b in bands])
    rows: list[list[CharBox]] = [[] for _ in bands]
    for c in chars:
        rows[int(np.argmin(np.abs(band_mid - (c.y + c.h / 2))))].append(c)
    return [r for r in rows if r]


def _grid_row(row: Sequence[CharBox], cw: float, origin: float) -> dict[int, str]:
    cells: dict[int, str] = {}
    for c in sorted(row, key=lambda c: c.x):
        text = ascii_quotes(c.text)
        n = len(text)
        if n == 1 and text in _RUNS:
            n = max(1, round(c.w / cw))  # "__" often comes back as one wide "_"
            text = text * n
        pos = (c.x + c.w / 2 - origin) / cw - 0.5 - (n - 1) / 2
        first = round(pos)
        for k, ch in enumerate(text):
            col = first + k
            # Two boxes claiming one cell: the later one takes the next cell only if it sits
            # right of its cell's centre; otherwise it is a duplicate (`""""` for `"""`) and
            # is dropped. Never shift a run of glyphs: that would eat the next space.
            if col in cells and pos - first > 0.25 and col + 1 not in cells:
                col += 1
            cells.setdefault(col, ch)
    return cells


def _words_row(row: Sequence[CharBox]) -> str:
    words: dict[int, list[CharBox]] = {}
    for c in row:
        words.setdefault(c.word, []).append(c)
    ordered = sorted(words.values(), key=lambda w: min(c.x for c in w))
    return " ".join(ascii_quotes("".join(c.text for c in sorted(w, key=lambda c: c.x))) for w in ordered)


def lines_from_chars(chars: Sequence[CharBox]) -> list[TextBox]:
    """Group glyph boxes into lines; on a monospace grid, place each glyph in its column.

    Returns one `TextBox` per line, top to bottom. For monospaced text, `text` keeps leading and
    internal spaces relative to the leftmost column of the whole block, and `x`/`w` span the
    cells from that column, so character i of `text` sits at `x + i * w / len(text)`. Text that sits on no grid (proportional fonts: slides, signs) comes back as the
    engine's words joined by single spaces, with the ink box.
    """
    chars = [c for c in chars if c.text.strip() and c.w > 0 and c.h > 0]
    rows = _rows(chars) if chars else []
    if not rows:
        return []
    rows.sort(key=lambda r: float(np.median([c.y + c.h / 2 for c in r])))
    centers = np.array([c.x + c.w / 2 for c in chars])
    cw, origin, err = fit_grid(centers, _cell_guess(chars))
    out: list[TextBox] = []
    if err > _MONO_MAX_ERR:
        for row in rows:
            x0, y0 = min(c.x for c in row), min(c.y for c in row)
            x1, y1 = max(c.x + c.w for c in row), max(c.y + c.h for c in row)
            out.append(
                TextBox(
                    text=_words_row(row),
                    x=round(x0),
                    y=round(y0),
                    w=round(x1 - x0),
                    h=round(y1 - y0),
                    confidence=_mean_conf(row),
                )
            )
        return out
    placed = [(cells, row) for row in rows if (cells := _grid_row(row, cw, origin))]
    col0 = min(min(cells) for cells, _ in placed)
    for cells, row in placed:
        start, end = min(cells), max(cells) + 1
        text = " " * (start - col0) + "".join(cells.get(i, " ") for i in range(start, end))
        top, bottom = min(c.y for c in row), max(c.y + c.h for c in row)
        out.append(
            TextBox(
                text=text,
                x=round(origin + col0 * cw),
                y=round(top),
                w=round((end - col0) * cw),
                h=round(bottom - top),
                confidence=_mean_conf(row),
            )
        )
    return out


def _mean_conf(row: Sequence[CharBox]) -> float:
    return float(np.clip(np.mean([c.confidence for c in row]), 0.0, 1.0))


def to_text(boxes: Sequence[TextBox], *, keep_blank_lines: bool = True) -> str:
    """Join line boxes into one block, re-indenting each line from its x position.

    Lines whose text already carries leading spaces (from `lines_from_chars`) are trusted as is.
    Otherwise the cell width comes from the boxes (width / characters) refined by `fit_grid` on
    line starts, and a line starting k cells right of the leftmost one gets k spaces. Vertical
    gaps of more than one line pitch become blank lines.
    """
    lines = sorted((b for b in boxes if b.text.strip()), key=lambda b: (b.y, b.x))
    if not lines:
        return ""
    if any(b.text.startswith(" ") for b in lines):
        texts = [ascii_quotes(b.text.rstrip()) for b in lines]
    else:
        per_char = [b.w / len(b.text) for b in lines if len(b.text.strip()) >= 6]
        guess = float(np.median(per_char)) if per_char else float(np.median([b.h for b in lines])) * 0.6
        starts = np.array([float(b.x) for b in lines])
        # Line starts are cell boundaries, not centres: shift by half a cell for fit_grid.
        cw, origin, _ = fit_grid(starts + guess / 2, guess)
        cols = [round((b.x - origin) / cw) for b in lines]
        c0 = min(cols)
        texts = [" " * (c - c0) + ascii_quotes(b.text.strip()) for c, b in zip(cols, lines, strict=True)]
    if not keep_blank_lines or len(lines) < 2:
        return "\n".join(texts)
    steps = np.diff([b.y for b in lines])
    pitch = float(np.median(steps[steps > 0])) if np.any(steps > 0) else 1.0
    out = [texts[0]]
    for gap, text in zip(steps, texts[1:], strict=True):
        out.extend([""] * max(0, round(gap / pitch) - 1))
        out.append(text)
    return "\n".join(out)
