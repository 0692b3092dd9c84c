"""Annotating clips: labels, captions, time spans, QA pairs, splits and the draft → accepted review.

Why a separate module: the CLI (`vidray dataset label`) and the HTTP API call these functions with
the same validation, and every call is one commit (one new dataset version), so a labelling session
can be diffed, tagged and rolled back like any other change.

Review flow: auto-label (`autolabel.py`) writes `status="draft"`; a person either accepts the draft
as it is (`accept`) or corrects it (`fix`, which sets the given fields and marks it accepted).
Labelling by hand (`label`) marks the clip accepted unless told otherwise.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from cluster.errors import InputError
from data_pipeline.datasets.schema import QA, Clip, Span, Split, Status
from data_pipeline.datasets.store import VideoDataset

_SPAN_SLACK_S = 0.05  # spans may overhang the clip by this much (frame-time rounding)


class LabelUpdate(BaseModel):
    """One clip's changes. Unset fields are left alone; `spans`/`qa` append unless `replace` is set."""

    model_config = ConfigDict(extra="forbid")

    clip_id: str
    label: str | None = None
    text: str | None = None
    spans: list[Span] = Field(default_factory=list)
    qa: list[QA] = Field(default_factory=list)
    split: Split | None = None
    status: Status | None = Field(None, description="Default: accepted (a person labelled it).")
    replace: bool = Field(False, description="Replace the clip's spans/QA instead of appending to them.")


def _check_spans(clip: Clip, spans: list[Span]) -> None:
    for s in spans:
        if s.start < clip.start_s - _SPAN_SLACK_S or s.end > clip.end_s + _SPAN_SLACK_S:
            raise InputError(
                f"span {s.start}-{s.end}s lies outside clip {clip.id} ({clip.start_s}-{clip.end_s}s); "
                "span times are seconds of the video, not of the clip"
            )


def _row(clip: Clip, u: LabelUpdate) -> dict[str, Any]:
    _check_spans(clip, u.spans)
    row: dict[str, Any] = {"id": clip.id, "status": u.status or "accepted"}
    if u.label is not None:
        row["label"] = u.label
    if u.text is not None:
        row["text"] = u.text
    if u.split is not None:
        row["split"] = u.split
    if u.spans or u.replace:
        spans = u.spans if u.replace else [*clip.spans, *u.spans]
        row["spans"] = [s.model_dump() for s in spans]
    if u.qa or u.replace:
        qa = u.qa if u.replace else [*clip.qa, *u.qa]
        row["qa"] = [q.model_dump() for q in qa]
    return row


def apply_labels(ds: VideoDataset, updates: list[LabelUpdate]) -> int:
    """Apply many clips' changes in one commit; returns the new version."""
    if not updates:
        raise InputError(
            "no label changes given; pass --label, --text, --span, --qa, --split, --accept or --fix"
        )
    rows = [_row(ds.clip(u.clip_id), u) for u in updates]
    return ds.update_clips(rows)


def label(
    ds: VideoDataset,
    clip_id: str,
    *,
    label: str | None = None,
    text: str | None = None,
    spans: list[Span] | None = None,
    qa: list[QA] | None = None,
    split: Split | None = None,
    status: Status | None = None,
    replace: bool = False,
) -> int:
    """Label one clip by hand (status accepted unless `status` says otherwise)."""
    u = LabelUpdate(
        clip_id=clip_id,
        label=label,
        text=text,
        spans=spans or [],
        qa=qa or [],
        split=split,
        status=status,
        replace=replace,
    )
    if not (label is not None or text is not None or spans or qa or split or status or replace):
        raise InputError(
            f"nothing to change on clip {clip_id}; pass a label, text, span, QA pair, split or status"
        )
    return apply_labels(ds, [u])


def accept(ds: VideoDataset, clip_ids: list[str]) -> int:
    """Accept draft labels as they are."""
    if not clip_ids:
        raise InputError("no clips to accept; pass clip ids, or --all-drafts")
    return ds.update_clips([{"id": c, "status": "accepted"} for c in clip_ids])


def fix(ds: VideoDataset, clip_id: str, **changes: Any) -> int:
    """Correct a (draft) label: set the given fields, replacing spans/QA, and mark it accepted."""
    return apply_labels(ds, [LabelUpdate(clip_id=clip_id, replace=True, status="accepted", **changes)])


def drafts(ds: VideoDataset) -> list[Clip]:
    """Clips waiting for review."""
    return ds.clips(status="draft")


def parse_span(text: str) -> Span:
    """`START:END[:LABEL[:TEXT]]` (seconds) → Span; the CLI's `--span` format."""
    parts = text.split(":", 3)
    if len(parts) < 2:
        raise InputError(f"span {text!r} is not START:END[:LABEL[:TEXT]], e.g. 1.5:3.0:jump")
    try:
        start, end = float(parts[0]), float(parts[1])
    except ValueError as e:
        raise InputError(f"span {text!r}: START and END must be seconds, e.g. 1.5:3.0:jump") from e
    try:
        return Span(
            start=start,
            end=end,
            label=parts[2] if len(parts) > 2 and parts[2] else None,
            text=parts[3] if len(parts) > 3 else None,
        )
    except ValueError as e:
        raise InputError(f"span {text!r}: {e}") from e


def parse_qa(text: str) -> QA:
    """`QUESTION=ANSWER` → QA; the CLI's `--qa` format (the first '=' splits)."""
    if "=" not in text:
        raise InputError(f"QA pair {text!r} is not QUESTION=ANSWER, e.g. 'What colour is the car?=red'")
    q, a = text.split("=", 1)
    if not q.strip():
        raise InputError(f"QA pair {text!r} has an empty question")
    return QA(question=q.strip(), answer=a.strip())
