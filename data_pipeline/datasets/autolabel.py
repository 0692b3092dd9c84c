"""Auto-label: fill draft labels from video analysis, for a person to accept or fix.

Flow, per video that has clips to label (status `unlabeled`, or `draft` again with `overwrite`):
1. write the stored video to a temporary file (analysis and scene detection read files);
2. ask the analyzer — by default `analysis.runner.analyze` with the transcript, chapters and actions
   tasks — for a result document (`AnalysisResult.public()` shape);
3. per clip, derive a draft from what overlaps the clip's time range: the label is the action (else
   the chapter title) covering most of the clip, the text is the transcript spoken inside it (else
   the chapter summary), and actions/chapters become time spans;
4. when analysis is not installed, fails, or finds nothing for a clip, fall back to a draft from
   the video's metadata and its scenes (`data_pipeline.scenes.detect_scenes`): one span per scene,
   the label from the title or file name.
All drafts are written in one commit with `status="draft"`; accepted clips are never touched.
Accept or correct them with `labels.accept` / `labels.fix` (`vidray dataset label --accept/--fix`).
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from cluster.config import Settings
from cluster.errors import VidrayError
from data_pipeline.datasets.schema import Clip, Span
from data_pipeline.datasets.store import VideoDataset

log = logging.getLogger("data_pipeline.datasets.autolabel")

Analyzer = Callable[[Path], dict[str, Any] | None]
_ANALYSIS_TASKS = ["transcript", "chapters", "actions"]


class AutoLabelReport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    drafted: list[str] = Field(default_factory=list, description="Clip ids that received a draft.")
    method: dict[str, str] = Field(
        default_factory=dict, description="video sha256 -> 'analysis' or 'scenes'."
    )
    notes: dict[str, str] = Field(
        default_factory=dict, description="video sha256 -> why analysis was not used."
    )
    version: int


def default_analyzer(settings: Settings | None = None) -> Analyzer:
    """`analysis.runner.analyze` on a file, limited to the tasks that yield labels."""

    def run(path: Path) -> dict[str, Any] | None:
        from analysis.runner import analyze
        from analysis.schema import AnalysisRequest

        return analyze(str(path), AnalysisRequest(tasks=_ANALYSIS_TASKS), settings).public()

    return run


def _overlap(a0: float, a1: float, b0: float, b1: float) -> float:
    return max(0.0, min(a1, b1) - max(a0, b0))


def draft_from_analysis(clip: Clip, doc: dict[str, Any]) -> dict[str, Any] | None:
    """A draft (label/text/spans) for `clip` from an analysis document, or None when nothing overlaps."""
    c0, c1 = clip.start_s, clip.end_s
    spans: list[Span] = []
    best: dict[str, tuple[float, str]] = {}  # kind -> (overlap, name) of the item covering most of the clip
    for kind in ("actions", "chapters"):
        for item in doc.get(kind) or []:
            ov = _overlap(c0, c1, float(item["start"]), float(item["end"]))
            if ov <= 0:
                continue
            name = item.get("label") or item.get("title")
            spans.append(
                Span(
                    start=max(c0, float(item["start"])),
                    end=min(c1, float(item["end"])),
                    label=name,
                    text=item.get("summary"),
                )
            )
            if name and ov > best.get(kind, (0.0, ""))[0]:
                best[kind] = (ov, name)
    said = [
        s["text"].strip()
        for s in doc.get("transcript") or []
        if _overlap(c0, c1, float(s["start"]), float(s["end"])) > 0 and s.get("text")
    ]
    text = " ".join(said) or next((s.text for s in spans if s.text), None)
    if not (spans or text):
        return None
    top = best.get("actions") or best.get("chapters")  # an action names what happens; a chapter, the topic
    return {"label": top[1] if top else None, "text": text, "spans": spans}


def draft_from_scenes(clip: Clip, video_path: Path, meta: dict[str, Any]) -> dict[str, Any]:
    """A metadata + scene-cut draft: always available (decoding only)."""
    from data_pipeline.scenes import detect_scenes

    scenes = [
        s for s in detect_scenes(video_path).scenes if _overlap(clip.start_s, clip.end_s, s.start, s.end) > 0
    ]
    spans = [
        Span(start=max(clip.start_s, s.start), end=min(clip.end_s, s.end), label=f"scene {i + 1}")
        for i, s in enumerate(scenes)
    ]
    name = meta.get("title") or Path(str(meta.get("source") or clip.source or "video")).stem
    text = (
        f"{len(spans)} scene(s) in {clip.duration_s:.1f} s of {name} "
        f"({meta.get('width', '?')}x{meta.get('height', '?')}, {meta.get('fps', 0):.0f} fps)"
    )
    return {"label": name, "text": text, "spans": spans}


def autolabel(
    ds: VideoDataset,
    *,
    clip_ids: list[str] | None = None,
    analyzer: Analyzer | None = None,
    use_analysis: bool = True,
    overwrite: bool = False,
    settings: Settings | None = None,
) -> AutoLabelReport:
    """Write draft labels for unlabelled clips (or `clip_ids`); one commit. See the module doc."""
    wanted = {"unlabeled", "draft"} if overwrite else {"unlabeled"}
    clips = [
        c
        for c in ds.clips()
        if (c.id in clip_ids if clip_ids else c.status in wanted) and c.status != "accepted"
    ]
    by_video: dict[str, list[Clip]] = {}
    for c in clips:
        by_video.setdefault(c.video_sha256, []).append(c)
    analyzer = analyzer or (default_analyzer(settings) if use_analysis else None)
    report = AutoLabelReport(version=ds.version)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="vidray-autolabel-") as tmp:
        for sha, vclips in by_video.items():
            path = Path(tmp) / f"{sha}.mp4"
            path.write_bytes(ds.video_bytes(sha))
            doc = None
            if analyzer is not None:
                try:
                    doc = analyzer(path)
                except (ImportError, VidrayError) as e:  # analysis missing or refused: fall back, say why
                    report.notes[sha] = f"analysis unavailable: {e}"
                    log.info("auto-label %s: %s", sha[:12], report.notes[sha])
                except Exception as e:  # a failing analyzer must not lose the drafts scenes can give
                    report.notes[sha] = f"analysis failed: {type(e).__name__}: {e}"
                    log.warning("auto-label %s: %s", sha[:12], report.notes[sha], exc_info=True)
            meta = {**ds.video_metadata(sha), **ds.video(sha).model_dump()}
            for c in vclips:
                draft = draft_from_analysis(c, doc) if doc else None
                method = "analysis" if draft else "scenes"
                if draft is None:
                    draft = draft_from_scenes(c, path, meta)
                report.method[sha] = method if report.method.get(sha) in (None, method) else "mixed"
                rows.append(
                    {
                        "id": c.id,
                        "status": "draft",
                        "label": draft["label"],
                        "text": draft["text"],
                        "spans": [s.model_dump() for s in draft["spans"]],
                    }
                )
                report.drafted.append(c.id)
    if rows:
        report.version = ds.update_clips(rows)
    return report
