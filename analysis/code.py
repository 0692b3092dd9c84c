"""Video-to-code: the source files a screencast types, with per-step diffs and narration.

Start here (`run`):
1. Find code on screen (1:1 per sampled frame): the shared 1 fps screen OCR (`screen_frames`)
   scores each frame for code-likeness (symbols, indentation, keywords). Consecutive code frames
   with the same file name in the title bar form a *span*; the union of their code lines' boxes
   is the editor pane (title bars and side panels fall outside it).
2. Watch the pane closely (1:N observations): decode the span at 1 fps, crop the pane, and
   compare each frame with the last one read. Only the pixel rows that changed are OCR'd (a new
   line of code costs one line of OCR), and the whole pane is re-read after a large change
   (scroll, file switch) and every `_FULL_EVERY` changes so every line gets several votes.
   Why not reuse `screen_frames` alone: its thumbnail dedupe is tuned for slides; one new line
   of code changes a 64 px thumbnail by ~0.4 grey levels, under its 1.5 threshold, so it re-reads
   only every few lines and step times would be off by several seconds.
3. Merge (`analysis.code_merge`): global monospace grid → indentation, gutter/pitch → rows,
   per-row votes → final text, state changes → steps.
4. Name and narrate: language from a scored heuristic (`analysis.code_lang`) plus the file
   extension; each step carries the spoken sentences overlapping its time span.

The observations are cached by content hash, so a second `--tasks code` run only merges.
"""

from __future__ import annotations

import itertools
import logging
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from analysis.code_lang import EXTENSIONS, detect_language
from analysis.code_merge import Merged, Obs, merge, unified_diff
from analysis.schema import CodeFile, CodeStep

log = logging.getLogger("analysis.code")

_VERSION = 2
_CODE_FRAME = 0.45  # share of a frame's lines that must look like code
_MIN_CODE_LINES = 2
_DIFF_LEVEL = 48  # grey-level change (0-255) that counts as a changed pixel: anti-aliasing noise is < 20
_ROW_PIXELS = 2  # changed pixels a pixel row needs to count (isolated codec flicker does not)
_FULL_EVERY = 6  # re-read the whole pane after this many partial reads (votes for every line)
_BIG_CHANGE = 0.4  # changed share of the pane's height that triggers a whole-pane read
_REWRITTEN = 0.6  # share of the on-screen text rows that changed at once: another file or page
_SAME_FILE = 0.3  # share of lines a whole-pane read keeps across a scroll; fewer: another file
_MAX_BANDS = 6  # more separate changed bands than this: read the whole pane
_MAX_SIDE = 1280  # as analysis.screen_text: code needs native 720p resolution
_FINAL_SCALE = 1.5  # the last whole-pane read: rows are read at 2x, other whole-pane reads at 1x
_FPS = 1.0  # typing is resolved to ~1 s; tutorials type a line every 2-5 s
_MAX_SPAN_FRAMES = 1800  # at most 30 min of 1 fps sampling per span; longer spans are subsampled
_KEYWORDS = frozenset(
    [
        "import",
        "from",
        "def",
        "class",
        "return",
        "if",
        "else",
        "elif",
        "for",
        "while",
        "const",
        "let",
        "var",
        "function",
        "public",
        "private",
        "static",
        "void",
        "int",
        "func",
        "package",
        "fn",
        "let",
        "mut",
        "use",
        "impl",
        "struct",
        "include",
        "echo",
        "fi",
        "done",
        "then",
        "try",
        "except",
        "catch",
        "new",
        "self",
        "this",
        "print",
        "printf",
        "println",
    ]
)
_CODE_CHARS = re.compile(r"[(){}\[\];=<>:\"'#$]|->|::|\b\w+\.\w+\(")
_FILENAME = re.compile(r"([\w-]+(?:\.[\w-]+)*(" + "|".join(re.escape(e) for e in EXTENSIONS) + r"))\b")


@dataclass(frozen=True)
class Span:
    """Consecutive code frames of one file: time range, pane box (x0, y0, x1, y1), file name."""

    start: float
    end: float
    box: tuple[int, int, int, int]
    filename: str | None


def run(ctx: Any) -> dict[str, Any]:
    """The task: {"code": [CodeFile, ...]} (empty when the video shows no code)."""
    from analysis.screen_text import screen_frames
    from analysis.units import safe, speech_units

    frames = screen_frames(ctx)
    spans = code_spans(frames, ctx.duration)
    if not spans:
        return {"code": []}
    speech = safe(ctx, speech_units, [])
    files: list[CodeFile] = []
    for filename, obs, start, end in _documents(ctx, spans):
        merged = merge(obs)
        if not merged.text.strip():
            continue
        code_file = _code_file(merged, filename, speech, start, end)
        if code_file.language != "text":  # prose read off a screen is not a source file
            files.append(code_file)
    return {"code": files}


def line_score(text: str) -> float:
    """How much one OCR'd line looks like code: 0 (prose) to 1."""
    body = text.strip()
    if not body:
        return 0.0
    score = 0.0
    if _CODE_CHARS.search(body):
        score += 0.6
    if text.startswith("  "):
        score += 0.3
    if any(w in _KEYWORDS for w in re.findall(r"[A-Za-z_]+", body)[:3]):
        score += 0.4
    return min(1.0, score)


def frame_code_lines(frame: Any) -> list[Any]:
    """The lines of a `ScreenFrame` that look like code (score >= 0.5)."""
    return [line for line in frame.lines if line_score(line.text) >= 0.5]


def is_code_frame(frame: Any) -> bool:
    lines = [line for line in frame.lines if line.text.strip()]
    code = frame_code_lines(frame)
    if len(code) >= _MIN_CODE_LINES and len(code) >= _CODE_FRAME * len(lines):
        return True
    # The first lines of a file ("1 import sys"): every line is a little code-like. Prose slides
    # fail this (their titles score 0); a false start costs one pane watch and no CodeFile,
    # since text with no language markers is dropped.
    return bool(lines) and len(lines) <= 3 and all(line_score(line.text) >= 0.4 for line in lines)


def filename_of(frame: Any) -> str | None:
    """A file name shown near the top of the frame (title bar or tab), if any."""
    for line in sorted(frame.lines, key=lambda b: b.y):
        if line.y > 0.15 * frame.height:
            break
        m = _FILENAME.search(line.text)
        if m:
            return m.group(1)
    return None


def code_spans(frames: list[Any], duration: float) -> list[Span]:
    """Time spans (with pane box and file name) during which the screen shows code."""
    spans: list[Span] = []
    cur: list[int] = []
    names: list[str | None] = [filename_of(f) for f in frames]

    def close() -> None:
        if not cur:
            return
        first, last = cur[0], cur[-1]
        # The pane: lines that look at least a little like code ("package main" scores 0.4, a title
        # bar "store.py - Editor" 0), so a file's first line is not cropped off.
        boxes = [line for i in cur for line in frames[i].lines if line_score(line.text) >= 0.4]
        boxes = boxes or [line for i in cur for line in frames[i].lines if line.text.strip()]
        x0 = min(b.x for b in boxes)
        y0 = min(b.y for b in boxes)
        x1 = max(b.x + b.w for b in boxes)
        h = float(np.median([b.h for b in boxes]))
        # Code appears before the frame that first looked like code (one or two lines don't score,
        # and screen_frames reuses a read while the thumbnail barely changes): go back over frames
        # whose text lies inside the pane, then one more sample. The pane extends to the bottom.
        while first > 0 and _inside(frames[first - 1], x0, y0 - h, x1 + 8 * h):
            first -= 1
        start = frames[first - 1].t if first > 0 else 0.0
        end = frames[last + 1].t if last + 1 < len(frames) else duration
        fw, fh = frames[first].width, frames[first].height
        box = (max(0, int(x0 - 3 * h)), max(0, int(y0 - 0.5 * h)), min(fw, int(x1 + 8 * h)), fh)
        name = next((names[i] for i in cur if names[i]), None)
        spans.append(Span(start, end, box, name))
        cur.clear()

    for i, f in enumerate(frames):
        if is_code_frame(f):
            if cur and names[i] and names[cur[-1]] and names[i] != names[cur[-1]]:
                close()
            cur.append(i)
        elif (cur and f.lines and any(line.text.strip() for line in f.lines)) or cur:
            close()
    close()
    return spans


def _inside(frame: Any, x0: float, y0: float, x1: float) -> bool:
    lines = [line for line in frame.lines if line.text.strip()]
    return bool(lines) and all(line.y >= y0 and line.x >= x0 - 40 and line.x < x1 for line in lines)


def _documents(ctx: Any, spans: list[Span]) -> list[tuple[str | None, list[Obs], float, float]]:
    """Observations per file: spans (and parts of spans split at a file switch) by file name.

    Parts with the same file name are one document (tabs switched back and forth); parts without
    a name are documents of their own.
    """
    docs: dict[str, tuple[str | None, list[Obs], float, float]] = {}
    order: list[str] = []
    for k, span in enumerate(spans):
        obs, titles, big = observe(ctx, span)
        for j, (start, end, part) in enumerate(split_documents(obs, titles, big, span.start, span.end)):
            names = [n for t, n in titles if start <= t < end and n]
            name = names[0] if names else (span.filename if j == 0 else None)
            key = name or f"#{k}.{j}"
            if key in docs:
                _name, prev, s, _e = docs[key]
                docs[key] = (name, prev + part, s, end)
            else:
                docs[key] = (name, part, start, end)
                order.append(key)
    return [docs[k] for k in order]


def split_documents(
    obs: list[Obs], titles: list[tuple[float, str | None]], big: list[float], start: float, end: float
) -> list[tuple[float, float, list[Obs]]]:
    """Cut a span's observations where the pane switched to another file.

    A big change is a switch when the title names another file, or when the whole-pane read after
    it shares under `_SAME_FILE` of its lines with the read before it (scrolling keeps most lines).
    """
    cuts: list[float] = []
    name_at = dict(titles)
    last_name = next((n for _t, n in titles if n), None)
    for t in big:
        name = name_at.get(t)
        before = [
            o.text.strip()
            for o in obs
            if o.full and o.t == max((x.t for x in obs if x.full and x.t < t), default=-1.0)
        ]
        after = [o.text.strip() for o in obs if o.full and o.t == t]
        shared = sum(1 for a in after if a in before) / max(1, len(after))
        if (name and last_name and name != last_name) or (len(after) >= 2 and shared < _SAME_FILE):
            cuts.append(t)
        last_name = name or last_name
    bounds = [start, *cuts, end + 1.0]
    return [(a, min(b, end), [o for o in obs if a <= o.t < b]) for a, b in itertools.pairwise(bounds)]


def observe(ctx: Any, span: Span) -> tuple[list[Obs], list[tuple[float, str | None]], list[float]]:
    """OCR observations of the pane over the span, file names read above it, big-change times (cached)."""
    from analysis._models import router_for
    from data_pipeline.cache import Cache

    router = router_for(ctx.settings)
    params = {
        "v": _VERSION,
        "order": router.order("ocr"),
        "span": [span.start, span.end],
        "box": list(span.box),
        "fps": _FPS,
        "diff": _DIFF_LEVEL,
        "full": _FULL_EVERY,
        "prep": "contrast",
        "final": _FINAL_SCALE,
        "titles": 2,
    }
    art = Cache(ctx.settings.cache_dir).get_or_compute(
        ctx.video.metadata.sha256, "code_obs", params, lambda _out: _observe(ctx, router, span)
    )
    value = art.value
    return [Obs(**o) for o in value["obs"]], [(t, n) for t, n in value["titles"]], list(value["big"])


def _grey(image: np.ndarray) -> np.ndarray:
    return (image[..., 0] * 0.299 + image[..., 1] * 0.587 + image[..., 2] * 0.114).astype(np.int16)


def changed_bands(prev: np.ndarray, cur: np.ndarray, *, gap: int = 4) -> list[tuple[int, int]]:
    """Pixel-row ranges [a, b) of `cur` that differ from `prev` (greyscale crops of one pane)."""
    rows = (np.abs(cur - prev) > _DIFF_LEVEL).sum(axis=1) >= _ROW_PIXELS
    idx = np.flatnonzero(rows)
    bands: list[tuple[int, int]] = []
    for i in idx:
        if bands and i - bands[-1][1] <= gap:
            bands[-1] = (bands[-1][0], int(i) + 1)
        else:
            bands.append((int(i), int(i) + 1))
    return bands


def _rewritten(prev: np.ndarray, bands: list[tuple[int, int]]) -> float:
    """Share of the text rows already on screen that changed: near 1 for a file switch, small for typing."""
    values, counts = np.unique(prev, return_counts=True)
    bg = values[np.argmax(counts)]
    ink = (np.abs(prev - bg) > _DIFF_LEVEL).sum(axis=1) >= _ROW_PIXELS
    if ink.sum() == 0:
        return 0.0
    changed = np.zeros_like(ink)
    for a, b in bands:
        changed[a:b] = True
    return float((ink & changed).sum() / ink.sum())


def contrast(image: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """Dark text on white whatever the theme: distance from the background grey, stretched.

    Why: syntax colouring puts keywords, strings and the line-number gutter at grey levels
    between the text and the background; Tesseract misreads the dim ones (a gutter "5" as "B)").
    Measured on a dark-theme frame: gutter numbers 17/20 read raw, 20/20 after this.
    """
    g = _grey(image).astype(np.float32)
    values, counts = np.unique(g.astype(np.uint8), return_counts=True)
    bg = float(values[np.argmax(counts)])
    d = np.abs(g - bg)
    ink = d[d > 20]
    top = max(40.0, float(np.percentile(ink, 90))) if ink.size else 255.0
    out = (255 - np.clip(d * 255.0 / top, 0, 255)).astype(np.uint8)
    if scale != 1:
        from PIL import Image

        pil = Image.fromarray(out)
        size = (round(pil.width * scale), round(pil.height * scale))
        out = np.asarray(pil.resize(size, Image.Resampling.LANCZOS))
    return np.ascontiguousarray(np.repeat(out[..., None], 3, axis=2))


def _observe(ctx: Any, router: Any, span: Span) -> dict[str, Any]:
    from data_pipeline.decode import VideoReader
    from data_pipeline.sampling import fps_times

    x0, y0, x1, y1 = span.box
    out: list[dict[str, Any]] = []

    def read(t: float, image: np.ndarray, top: int, bottom: int, full: bool, scale: float = 0.0) -> None:
        # Single rows are read at 2x: cheap, and their misreads differ from the 1x whole-pane
        # reads', so the per-line vote has two independent opinions.
        scale = scale or (1.0 if full else 2.0)
        boxes = router.ocr(contrast(image[top:bottom], scale)).value
        for b in boxes:
            if b.text.strip():
                out.append(
                    {
                        "t": round(t, 3),
                        "x": b.x / scale + x0,
                        "y": b.y / scale + top + y0,
                        "w": b.w / scale,
                        "h": b.h / scale,
                        "text": b.text.rstrip(),
                        "full": full,
                        "confidence": round(float(b.confidence), 3),
                        "source": f"{'full' if full else 'rows'}@{scale:g}",
                    }
                )

    # The same 1280 px decode as screen_frames, so the pane box found there fits these frames.
    with VideoReader(ctx.path, max_side=_MAX_SIDE, threads=ctx.settings.decode.threads) as reader:
        length = max(0.0, min(span.end, reader.end_s) - span.start)
        fps = min(_FPS, _MAX_SPAN_FRAMES / max(length, 1e-6))
        times = fps_times(span.start, length, fps) or [span.start]
        prev: np.ndarray | None = None
        partial = 0
        last: tuple[float, np.ndarray] | None = None
        titles: list[list[Any]] = []  # [t, file name or None] at the start and after each big change
        big: list[float] = []  # times of whole-pane changes: a file switch starts a new document here
        for k in range(0, len(times), 16):
            for frame in reader.frames_at(times[k : k + 16]):
                pane = frame.image[y0:y1, x0:x1]
                grey = _grey(pane)
                last = (frame.t, pane)
                if prev is None:
                    read(frame.t, pane, 0, pane.shape[0], True)
                    titles.append([round(frame.t, 3), _title(router, frame.image, y0)])
                    prev, partial = grey, 0
                    continue
                bands = changed_bands(prev, grey)
                if not bands:
                    continue
                height = sum(b - a for a, b in bands)
                large = (
                    height > _BIG_CHANGE * grey.shape[0]
                    or len(bands) > _MAX_BANDS
                    or _rewritten(prev, bands) >= _REWRITTEN
                )
                if large or partial >= _FULL_EVERY:
                    read(frame.t, pane, 0, pane.shape[0], True)
                    partial = 0
                    if large:
                        big.append(round(frame.t, 3))
                        titles.append([round(frame.t, 3), _title(router, frame.image, y0)])
                else:
                    pad = 6
                    for a, b in bands:
                        read(frame.t, pane, max(0, a - pad), min(pane.shape[0], b + pad), False)
                    partial += 1
                prev = grey
            ctx.progress({"stage": "code", "percent": round(100 * min(k + 16, len(times)) / len(times), 1)})
        if last is not None:  # the settled end state, read whole at a third scale: a third opinion per line
            read(last[0] + 1e-3, last[1], 0, last[1].shape[0], True, _FINAL_SCALE)
    return {"obs": out, "titles": titles, "big": big}


def _title(router: Any, image: np.ndarray, pane_top: int) -> str | None:
    """The file name in the title bar or tab row above the pane, read at 2x (small UI font)."""
    if pane_top < 8:
        return None
    for b in router.ocr(contrast(image[:pane_top], 2)).value:
        # A proportional UI font sometimes gets a spurious space ("gre et.py"): glue a short
        # fragment right before the name back on.
        m = re.search(r"(?:\b(\w{1,3}) )?" + _FILENAME.pattern, b.text)
        if m:
            return (m.group(1) or "") + m.group(2)
    return None


def _code_file(merged: Merged, filename: str | None, speech: list[Any], start: float, end: float) -> CodeFile:
    language, _conf = detect_language(merged.text, filename)
    steps: list[CodeStep] = []
    before: list[str] = []
    name = filename or "code"
    for i, state in enumerate(merged.states):
        t0 = state.t
        t1 = merged.states[i + 1].t if i + 1 < len(merged.states) else end
        said = " ".join(u.text for u in speech if u.end > t0 and u.start < t1)
        steps.append(
            CodeStep(
                start=round(t0, 3),
                end=round(max(t1, t0), 3),
                diff=unified_diff(before, state.lines, name),
                narration=said,
            )
        )
        before = state.lines
    return CodeFile(language=language, text=merged.text, steps=steps, filename=filename)
