"""The row layout of a vidray dataset and the public records built from it.

Why one Lance table holds both videos and clips: Lance versions, tags, checkout and deletion are
per table. With videos and clips in one table, a dataset version *is* a Lance version, and one
commit adds a video with its clips or deletes a video with every clip that references it — no
cross-table bookkeeping to keep consistent. Rows carry a `kind`:

* ``video`` rows (id = sha256 of the file) hold the encoded file once, in the `video` blob column
  (Lance stores large blobs out of line in sidecar files under the dataset root), plus probe metadata.
* ``clip`` rows reference a video by `video_sha256` + `start_s`/`end_s` and carry the annotations
  (label, text, time spans, QA pairs, split, review status) and optionally pre-decoded frames
  (`frames` blob: uint8 T×H×W×3, shape in `frames_shape`).
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any, Literal

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

KIND_VIDEO = "video"
KIND_CLIP = "clip"
TABLE_NAME = "items.lance"  # the Lance table under a dataset root

Split = Literal["train", "val", "test", "unassigned"]
Status = Literal["unlabeled", "draft", "accepted"]
SPLITS: tuple[str, ...] = ("train", "val", "test", "unassigned")

# Blob columns are never scanned with the annotation columns: reading them means reading video bytes.
BLOB_COLUMNS = ("video", "frames")

SPAN_TYPE = pa.struct(
    [("start", pa.float64()), ("end", pa.float64()), ("label", pa.string()), ("text", pa.string())]
)
QA_TYPE = pa.struct([("question", pa.string()), ("answer", pa.string())])


def arrow_schema() -> pa.Schema:
    """The table schema. Column order is stable; new columns are appended (Lance add_columns)."""
    import lance  # local: pylance is in the "train" extra; callers went through `require` already

    return pa.schema(
        [
            pa.field("id", pa.string(), nullable=False),
            pa.field("kind", pa.string(), nullable=False),
            pa.field("video_sha256", pa.string(), nullable=False),
            pa.field("start_s", pa.float64()),
            pa.field("end_s", pa.float64()),
            pa.field("duration_s", pa.float64()),
            pa.field("split", pa.string()),
            pa.field("label", pa.string()),
            pa.field("text", pa.string()),
            pa.field("spans", pa.list_(SPAN_TYPE)),
            pa.field("qa", pa.list_(QA_TYPE)),
            pa.field("status", pa.string()),
            pa.field("source", pa.string()),
            pa.field("title", pa.string()),
            pa.field("width", pa.int32()),
            pa.field("height", pa.int32()),
            pa.field("fps", pa.float64()),
            pa.field("size_bytes", pa.int64()),
            pa.field("metadata_json", pa.string()),
            pa.field("frames_shape", pa.list_(pa.int32())),
            pa.field("updated_at", pa.string()),
            lance.blob_field("video"),
            lance.blob_field("frames"),
        ]
    )


def scalar_columns() -> list[str]:
    """Every column except the blobs: what listings, diffs, exports and the reader scan."""
    return [f.name for f in arrow_schema() if f.name not in BLOB_COLUMNS]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Span(_Strict):
    """A labelled time span inside a clip, in seconds of the *video* timeline."""

    start: float = Field(ge=0)
    end: float = Field(ge=0)
    label: str | None = None
    text: str | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Span:
        if self.end < self.start:
            raise ValueError(f"span end {self.end} is before its start {self.start}; swap them")
        return self


class QA(_Strict):
    question: str = Field(min_length=1)
    answer: str


class ClipSpec(_Strict):
    """A clip to add: a time range of a video and its first annotations."""

    start: float = Field(0.0, ge=0, description="Start in seconds of the video timeline.")
    end: float | None = Field(None, description="End in seconds; None means the end of the video.")
    split: Split = "train"
    label: str | None = None
    text: str | None = None
    spans: list[Span] = Field(default_factory=list)
    qa: list[QA] = Field(default_factory=list)
    status: Status | None = Field(
        None, description="Defaults to accepted when a label/text is given, else unlabeled."
    )

    @model_validator(mode="after")
    def _range(self) -> ClipSpec:
        if self.end is not None and self.end <= self.start:
            raise ValueError(f"clip end {self.end} must be after its start {self.start}")
        return self


class Clip(_Strict):
    """A clip row as the API returns it."""

    id: str
    video_sha256: str
    start_s: float
    end_s: float
    duration_s: float
    split: str
    label: str | None = None
    text: str | None = None
    spans: list[Span] = Field(default_factory=list)
    qa: list[QA] = Field(default_factory=list)
    status: str
    source: str | None = None
    frames_shape: list[int] | None = None
    updated_at: str | None = None

    @field_validator("spans", "qa", mode="before")
    @classmethod
    def _none_list(cls, v: Any) -> Any:
        return [] if v is None else v

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Clip:
        return cls.model_validate({k: row.get(k) for k in cls.model_fields})


class Video(_Strict):
    """A video row (without its bytes)."""

    sha256: str
    source: str | None
    title: str | None
    start_s: float = 0.0
    duration_s: float
    width: int
    height: int
    fps: float
    size_bytes: int


class VersionInfo(_Strict):
    version: int
    timestamp: datetime
    operation: str = Field(
        description="Lance operation: Overwrite, Append, Update, Delete, Merge, Rewrite, ..."
    )
    message: str | None = None
    tags: list[str] = Field(default_factory=list)
    num_rows: int


class DiffResult(_Strict):
    """What changed from version `a` to version `b` (ids of clips and videos)."""

    a: int
    b: int
    added_videos: list[str] = Field(default_factory=list)
    removed_videos: list[str] = Field(default_factory=list)
    added_clips: list[str] = Field(default_factory=list)
    removed_clips: list[str] = Field(default_factory=list)
    changed_clips: list[str] = Field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (
            self.added_videos
            or self.removed_videos
            or self.added_clips
            or self.removed_clips
            or self.changed_clips
        )


def clip_id(video_sha256: str, start: float, end: float) -> str:
    """Deterministic clip id: the same range of the same video is the same clip (re-adding is a no-op)."""
    key = f"{video_sha256}:{start:.3f}:{end:.3f}"
    return "c" + hashlib.sha256(key.encode()).hexdigest()[:15]


# Columns whose change makes a clip "changed" in a diff (annotation content, not bookkeeping).
ANNOTATION_COLUMNS = ("split", "label", "text", "spans", "qa", "status", "start_s", "end_s", "frames_shape")


class AddResult(BaseModel):
    model_config = ConfigDict(extra="forbid")

    video_sha256: str
    added_video: bool = Field(description="False when the file was already stored (same sha256).")
    clip_ids: list[str] = Field(description="Clips added by this call.")
    skipped_clips: list[str] = Field(default_factory=list, description="Clips that already existed.")
    version: int


class DeleteResult(BaseModel):
    model_config = ConfigDict(extra="forbid")

    video_sha256: str
    clips_deleted: int
    version: int
    purged: bool = False
    pinned_by_tags: list[str] = Field(
        default_factory=list,
        description="Tags whose (older) version still holds the video; purge keeps their files.",
    )
