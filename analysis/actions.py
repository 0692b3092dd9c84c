"""Action analysis: what happens when, as labelled segments with people counts (+ screen workflow).

Start here (`run`):
1. Motion profile (1 pass over a 320 px decode, `analysis.motion`): per sample at 2 fps, frame
   difference, camera flow, local flow, flatness (screen-likeness) and a moving-people count.
2. Classes per sample (1:1): static / camera motion / moving things; screens are told apart by
   flatness. A 5-sample median filter removes single-sample flicker.
3. Segments (1:N per scene): scene cuts (`scenes_of`) always split; inside a scene a change of
   class that lasts at least `_MIN_SEG_S` splits too.
4. Labels per segment: the class name in words ("people walking", "camera motion", "static",
   "talking head", "screen recording: typing", "screen recording: scrolling/app switch"), the
   ImageNet top tag of the middle frame in brackets, and, when a trained action model is
   configured (env VIDRAY_ACTION_MODEL = a train/ export dir), its top label after " / ".
5. Workflow (screen recordings only): large layout changes (app switch, page change) cut the
   screen time into steps with durations, returned under the extra key "workflow".
"""

from __future__ import annotations

import itertools
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from analysis.motion import MotionSample
from analysis.schema import ActionSegment

log = logging.getLogger("analysis.actions")

_VERSION = 1
_FPS = 2.0  # motion classes change over seconds; 2 samples/s keeps flow cheap on long videos
_MIN_SEG_S = 2.0  # shorter runs of a class inside a scene fold into a neighbour
_STATIC_DIFF = 0.003  # mean grey change (0..1) under which nothing moves (~0.8 grey levels)
_CAMERA_FLOW = 0.5  # px/sample of median flow at 160 px: the whole frame moves
_SCREEN_FLAT = 0.35  # share of pixels in one grey level: UI and editor backgrounds
_BIG_SCREEN_CHANGE = 0.04  # mean grey change of a screen that means a new page/app, not typing
_TAG_MIN = 0.15
_CLASSES = ("static", "camera", "moving")


@dataclass(frozen=True)
class _Seg:
    start: float
    end: float
    samples: list[MotionSample]
    cls: str


def run(ctx: Any) -> dict[str, Any]:
    """The task: {"actions": [ActionSegment], "workflow": [{"start","end","label","duration"}]}."""
    from analysis.index import scenes_of

    cuts = list(scenes_of(ctx).cuts)
    samples = motion_of(ctx, cuts)
    if not samples:
        return {"actions": [], "workflow": []}
    segs = segment(samples, cuts, ctx.duration)
    speech = _speech(ctx)
    tags = _tags(ctx, segs)
    model = _action_model(ctx)
    actions: list[ActionSegment] = []
    for seg, tag in zip(segs, tags, strict=True):
        base, score = label_segment(seg, speech)
        label = f"{base} ({tag})" if tag else base
        if model is not None:
            extra = _model_label(ctx, model, seg)
            if extra:
                label += f" / {extra}"
        actions.append(
            ActionSegment(
                start=round(seg.start, 3),
                end=round(seg.end, 3),
                label=label,
                score=round(score, 3),
                people=None if is_screen(seg) else people_count(seg),
            )
        )
    return {"actions": actions, "workflow": workflow(samples, segs)}


def prefetch_motion(ctx: Any) -> list[MotionSample]:
    """The motion profile at the video's own scene cuts: what `run` will ask for, started early."""
    from analysis.index import scenes_of

    return motion_of(ctx, list(scenes_of(ctx).cuts))


def motion_of(ctx: Any, cuts: list[float]) -> list[MotionSample]:
    """The video's motion profile (memoised, cached by content hash)."""
    from analysis.motion import motion_profile, to_json
    from data_pipeline.cache import Cache

    def compute() -> list[MotionSample]:
        params = {"v": _VERSION, "fps": _FPS, "cuts": [round(c, 3) for c in cuts]}
        art = Cache(ctx.settings.cache_dir).get_or_compute(
            ctx.video.metadata.sha256,
            "motion",
            params,
            lambda _out: to_json(
                motion_profile(ctx.path, fps=_FPS, cuts=cuts, threads=ctx.settings.decode.threads)
            ),
        )
        return [MotionSample(**s) for s in art.value]

    return ctx.memo("motion", compute)


def sample_class(s: MotionSample) -> str:
    if s.camera >= _CAMERA_FLOW:
        return "camera"
    if s.diff < _STATIC_DIFF and s.moving < 0.01:
        return "static"
    return "moving"


def _smooth(classes: list[str], k: int = 5) -> list[str]:
    out = []
    for i in range(len(classes)):
        window = classes[max(0, i - k // 2) : i + k // 2 + 1]
        out.append(max(_CLASSES, key=window.count))
    return out


def segment(samples: list[MotionSample], cuts: list[float], duration: float) -> list[_Seg]:
    """Segments split at scene cuts and at lasting changes of motion class."""
    bounds = [0.0, *[c for c in cuts if 0 < c < duration], duration]
    segs: list[_Seg] = []
    for a, b in itertools.pairwise(bounds):
        inside = [s for s in samples if a <= s.t < b]
        if not inside:
            continue
        classes = _smooth([sample_class(s) for s in inside])
        runs: list[list[int]] = []
        for i, c in enumerate(classes):
            if runs and classes[runs[-1][0]] == c:
                runs[-1].append(i)
            else:
                runs.append([i])
        # Fold runs shorter than _MIN_SEG_S into the previous run (or the next, for the first).
        merged: list[list[int]] = []
        for r in runs:
            length = (inside[r[-1]].t - inside[r[0]].t) + 1 / _FPS
            if merged and length < _MIN_SEG_S:
                merged[-1].extend(r)
            else:
                merged.append(list(r))
        if len(merged) > 1 and (inside[merged[0][-1]].t - inside[merged[0][0]].t) + 1 / _FPS < _MIN_SEG_S:
            merged[1] = merged[0] + merged[1]
            merged.pop(0)
        for j, r in enumerate(merged):
            start = a if j == 0 else inside[r[0]].t
            end = b if j == len(merged) - 1 else inside[merged[j + 1][0]].t
            ss = [inside[i] for i in r]
            cls = max(_CLASSES, key=[classes[i] for i in r].count)
            segs.append(_Seg(start, end, ss, cls))
    return segs


def is_screen(seg: _Seg) -> bool:
    return float(np.median([s.flat for s in seg.samples])) >= _SCREEN_FLAT


def label_segment(seg: _Seg, speech: list[tuple[float, float]]) -> tuple[str, float]:
    """The words for a segment's activity and how clearly its samples agree (0..1)."""
    share = sum(1 for s in seg.samples if sample_class(s) == seg.cls) / max(1, len(seg.samples))
    if is_screen(seg):
        changes = [s.diff for s in seg.samples]
        if max(changes, default=0) >= _BIG_SCREEN_CHANGE or seg.cls == "camera":
            return "screen recording: scrolling/app switch", share
        if any(d > 0 for d in changes[1:]):
            return "screen recording: typing", share
        return "screen recording: static", share
    if seg.cls == "camera":
        return "camera motion", share
    talking = _overlap(seg.start, seg.end, speech) / max(seg.end - seg.start, 1e-6)
    if seg.cls == "static":
        return ("talking head", share) if talking > 0.5 else ("static", share)
    people = people_count(seg)
    if people:
        return "people walking", share
    moving = float(np.median([s.moving for s in seg.samples]))
    if talking > 0.5 and moving < 0.15:
        return "talking head", share  # a speaker moves a little inside a fixed frame
    return "motion", share


def people_count(seg: _Seg) -> int | None:
    """People in the segment: the 75th percentile of the per-sample counts (None: camera moves)."""
    counts = [s.people for s in seg.samples if s.people >= 0]
    if len(counts) < max(2, len(seg.samples) // 3):
        return None
    return round(float(np.percentile(counts, 75)))


def workflow(samples: list[MotionSample], segs: list[_Seg]) -> list[dict[str, Any]]:
    """Screen-recording steps: cut at large layout changes (and scene cuts), with durations."""
    steps: list[dict[str, Any]] = []
    for seg in segs:
        if not is_screen(seg):
            continue
        marks = [seg.start] + [s.t for s in seg.samples[1:] if s.diff >= _BIG_SCREEN_CHANGE] + [seg.end]
        for a, b in itertools.pairwise(marks):
            if b - a < 1.0 / _FPS:
                continue
            inside = [s for s in seg.samples if a <= s.t < b]
            typing = any(0 < s.diff < _BIG_SCREEN_CHANGE for s in inside[1:])
            kind = "typing" if typing else "viewing"
            if (
                steps
                and abs(steps[-1]["end"] - a) < 1e-6
                and steps[-1]["label"].endswith(kind)
                and a not in marks[1:-1]
            ):
                steps[-1]["end"] = round(b, 3)
                steps[-1]["duration"] = round(b - steps[-1]["start"], 3)
                continue
            steps.append(
                {
                    "start": round(a, 3),
                    "end": round(b, 3),
                    "label": f"step {len(steps) + 1}: {kind}",
                    "duration": round(b - a, 3),
                }
            )
    return steps


def _overlap(a: float, b: float, spans: list[tuple[float, float]]) -> float:
    return sum(max(0.0, min(b, e) - max(a, s)) for s, e in spans)


def _speech(ctx: Any) -> list[tuple[float, float]]:
    from analysis.units import safe, speech_units

    if ctx.video.metadata.audio is None:
        return []
    return [(u.start, u.end) for u in safe(ctx, speech_units, [])]


def _tags(ctx: Any, segs: list[_Seg]) -> list[str | None]:
    """Top ImageNet tag of each segment's middle frame (None when no tagger runs here)."""
    from analysis._models import router_for
    from cluster.errors import UnavailableError
    from data_pipeline.decode import VideoReader

    try:
        router = router_for(ctx.settings)
        with VideoReader(ctx.path, max_side=320) as reader:
            frames = reader.frames_at([(s.start + s.end) / 2 for s in segs])
        out: list[str | None] = []
        for f in frames:
            tags = [(label, score) for label, score in router.tag(f.image).value if score >= _TAG_MIN]
            out.append(tags[0][0] if tags else None)
        return out
    except UnavailableError as e:
        log.info("no frame tags: %s", e)
        return [None] * len(segs)


def _action_model(ctx: Any) -> Any:
    """A trained action classifier from env VIDRAY_ACTION_MODEL, when set and loadable."""
    directory = os.environ.get("VIDRAY_ACTION_MODEL", "").strip()
    if not directory or not Path(directory).is_dir():
        return None
    try:
        import importlib

        inference = importlib.import_module("train.inference")
        return inference.ActionClassifier.from_pretrained(directory)
    except Exception as e:  # a broken checkpoint must not fail the motion analysis
        log.warning("action model %s not used: %s", directory, e)
        return None


def _model_label(ctx: Any, model: Any, seg: _Seg) -> str | None:
    from data_pipeline.decode import VideoReader

    n = max(2, int(getattr(model, "num_frames", 8)))
    times = list(np.linspace(seg.start, max(seg.start, seg.end - 0.05), n))
    with VideoReader(ctx.path, max_side=256) as reader:
        frames = np.stack([f.image for f in reader.frames_at(times)])
    ranked = model.predict(frames, top_k=1)
    return str(ranked[0][0]) if ranked else None
