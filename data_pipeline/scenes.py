"""Hard-cut scene detection on a low-resolution decode, with an adaptive threshold.

How it works (one pass, bounded memory):
1. Decode every frame shrunk to `max_side` (96 px by default) — resizing happens inside the decoder,
   and at this size the scoring costs far less than the decode itself.
2. Score each frame against the previous one with two cues that fail differently:
   - *pixel*: mean absolute luma difference (0..1). Catches cuts between shots with similar colours.
   - *colour*: half the L1 distance between 4x4x4-bin RGB histograms (0..1). Ignores motion and
     noise inside a shot, catches cuts between shots with different palettes.
   The frame's score is their mean. Downscaling averages away sensor/compression noise, so a noisy
   but continuous shot still scores low on *pixel*.
3. A frame starts a new shot when its score is (a) a local maximum, (b) at least `threshold` times
   the median score of the `_WINDOW` frames on either side (adaptive: fast motion or a noisy shot
   raises its own bar), and (c) above `min_score` (an absolute floor so a still shot's tiny
   changes, whose median is ~0, never count).
   A second rule catches cuts between still images (slides, screen pages), whose score is small
   but enormous against a local median of ~0: see `_still_cut`.
4. Cuts closer than `min_scene_s` to the previous cut (or to the start) are merged, keeping the
   stronger one: flashes and single-frame glitches do not make scenes.

The cut time is the pts of the first frame of the new shot. Fades and dissolves are not hard cuts
and are not reported (their per-frame scores rise slowly, so the adaptive ratio stays low).
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from cluster.errors import InputError
from data_pipeline.decode import VideoReader

DETECTOR_VERSION = 2  # cached cuts are keyed by this: bump when detection changes
DEFAULT_THRESHOLD = 3.0  # score / local median; real cuts measured 10-100x, fast pans 1-2x
DEFAULT_MIN_SCORE = 0.08  # generated and real cuts score >= 0.15; in-shot motion rarely > 0.05
_WINDOW = 6  # frames each side for the local median: ~0.25 s at 24 fps, short enough to adapt
_BINS = 4  # histogram levels per RGB channel (64 bins): coarse, so lighting flicker does not count
_EPS = 0.004  # keeps the ratio finite on still shots (median 0); ~1/255 luma
# Slides and screen pages: the next slide often differs only in text on the same background (scores
# 0.01-0.03, under DEFAULT_MIN_SCORE), but the frames around it are identical (median ~1e-4).
_STILL_MIN_SCORE = 0.008
_STILL_BASE = 0.0015  # "still": the local median change is under ~0.4/255 per pixel
_STILL_RATIO = 30.0


class Scene(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start: float = Field(description="pts of the scene's first frame (s)")
    end: float = Field(description="start of the next scene, or the end of the video (s)")


class SceneResult(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cuts: list[float] = Field(description="Cut times: pts of the first frame of each new shot (s).")
    scenes: list[Scene]
    scores: list[float] | None = Field(None, description="Per-frame scores when asked for (debugging).")


def _features(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Luma planes (N,H,W float32 0..1) and normalised RGB histograms (N, _BINS**3) of a chunk."""
    x = images.astype(np.float32)
    luma = (x[..., 0] * 0.299 + x[..., 1] * 0.587 + x[..., 2] * 0.114) / 255.0
    q = (images // (256 // _BINS)).astype(np.int32)
    code = (q[..., 0] * _BINS + q[..., 1]) * _BINS + q[..., 2]
    n = images.shape[0]
    flat = code.reshape(n, -1) + (np.arange(n, dtype=np.int32) * _BINS**3)[:, None]
    hist = np.bincount(flat.ravel(), minlength=n * _BINS**3).reshape(n, _BINS**3).astype(np.float32)
    hist /= max(1, code[0].size)
    return luma, hist


def frame_scores(path: str | Path, *, max_side: int = 96,
                 threads: int = 0) -> tuple[np.ndarray, np.ndarray, float]:
    """Per-frame change scores, their pts, and the stream end for `path` (score[0] is 0)."""
    times: list[float] = []
    scores: list[np.ndarray] = []
    prev_luma: np.ndarray | None = None
    prev_hist: np.ndarray | None = None
    with VideoReader(path, max_side=max_side, threads=threads) as reader:
        for chunk in reader.iter_frames(chunk=128):
            luma, hist = _features(np.stack([f.image for f in chunk]))
            times += [f.t for f in chunk]
            if prev_luma is not None and prev_hist is not None:
                luma = np.concatenate([prev_luma[None], luma])
                hist = np.concatenate([prev_hist[None], hist])
                pix = np.abs(np.diff(luma, axis=0)).mean(axis=(1, 2))
                col = 0.5 * np.abs(np.diff(hist, axis=0)).sum(axis=1)
            else:
                pix = np.concatenate([[0.0], np.abs(np.diff(luma, axis=0)).mean(axis=(1, 2))])
                col = np.concatenate([[0.0], 0.5 * np.abs(np.diff(hist, axis=0)).sum(axis=1)])
            scores.append(((pix + col) / 2).astype(np.float32))
            prev_luma, prev_hist = luma[-1], hist[-1]
        end = reader.end_s
    if not times:
        raise InputError(f"{Path(path).name}: no frame could be decoded for scene detection")
    return np.concatenate(scores), np.asarray(times, dtype=np.float64), end


def _still_cut(score: float, base: float) -> bool:
    """A cut between two still images (slides, screen pages): tiny score, but huge over a ~0 median."""
    return score >= _STILL_MIN_SCORE and base < _STILL_BASE and score >= _STILL_RATIO * max(base, 1e-5)


def pick_cuts(scores: np.ndarray, times: np.ndarray, *, threshold: float = DEFAULT_THRESHOLD,
              min_score: float = DEFAULT_MIN_SCORE, min_scene_s: float = 0.5) -> list[float]:
    """Cut times from per-frame scores (steps 3 and 4 of the module docstring)."""
    n = len(scores)
    candidates: list[tuple[float, float]] = []  # (time, score)
    for i in range(1, n):
        s = float(scores[i])
        if s < min(min_score, _STILL_MIN_SCORE):
            continue
        lo, hi = max(1, i - _WINDOW), min(n, i + _WINDOW + 1)
        if s < scores[lo:hi].max():
            continue  # not the local maximum
        around = np.concatenate([scores[lo:i], scores[i + 1:hi]])
        base = float(np.median(around)) if len(around) else 0.0
        if s >= threshold * (base + _EPS) or _still_cut(s, base):
            candidates.append((float(times[i]), s))
    cuts: list[tuple[float, float]] = []
    start = float(times[0])
    for t, s in candidates:
        if t - start < min_scene_s:
            continue
        if cuts and t - cuts[-1][0] < min_scene_s:
            if s > cuts[-1][1]:
                cuts[-1] = (t, s)
            continue
        cuts.append((t, s))
    return [t for t, _ in cuts]


def detect_scenes(path: str | Path, *, threshold: float | None = None, min_scene_s: float = 0.5,
                  min_score: float = DEFAULT_MIN_SCORE, max_side: int = 96, threads: int = 0,
                  return_scores: bool = False) -> SceneResult:
    """Find hard cuts in `path`.

    Args:
        path: a local video file.
        threshold: how many times above the local median a frame's score must be to count as a cut
            (default 3.0). Lower finds more cuts (and more false ones).
        min_scene_s: shortest scene kept; closer cuts are merged (the stronger wins).
        min_score: absolute floor on a cut's score (0..1).
        max_side: decode size; 64-128 px all work, larger only costs time.
        threads: FFmpeg decode threads (0 = one per decoder).
        return_scores: include the per-frame scores (for tuning and debugging).
    """
    thr = DEFAULT_THRESHOLD if threshold is None else threshold
    if thr <= 1.0:
        raise InputError(f"threshold={thr} must be > 1 (a ratio to the local median; default {DEFAULT_THRESHOLD})")
    if min_scene_s < 0:
        raise InputError(f"min_scene_s={min_scene_s} must be >= 0 seconds")
    scores, times, end = frame_scores(path, max_side=max_side, threads=threads)
    cuts = pick_cuts(scores, times, threshold=thr, min_score=min_score, min_scene_s=min_scene_s)
    bounds = [float(times[0]), *cuts, end]
    scenes = [Scene(start=a, end=b) for a, b in itertools.pairwise(bounds)]
    return SceneResult(cuts=cuts, scenes=scenes, scores=scores.tolist() if return_scores else None)
