"""Import and export of clip annotations: JSONL with time spans, Kinetics-style CSV, LLaVA JSON.

Formats (one record per clip):

* ``jsonl`` — vidray's lossless form: `{"id", "video", "video_sha256", "source", "start", "end",
  "split", "label", "text", "spans": [{start, end, label, text}], "qa": [{question, answer}], "status"}`.
* ``kinetics`` (CSV) — `label,youtube_id,time_start,time_end,split` as in Kinetics-400/600/700.
  `youtube_id` is the YouTube id when the source is a YouTube URL, else the video's sha256.
* ``llava`` (JSON list) — `{"id", "video", "start", "end", "conversations": [{"from": "human",
  "value": "<video>\\nQ"}, {"from": "gpt", "value": "A"}, ...]}`, the LLaVA-Video / LLaVA-OneVision
  instruction format, built from the clip's QA pairs (or a "Describe" turn from its caption).

Export can also write each video once as `videos/<sha256><ext>` beside the annotations, and the
`video` field then points there (a relative path), so an exported folder is self-contained.

Import resolves each record's video in order: a video already in the dataset with that sha256
(or with `youtube_id` == sha256), then a file under `videos_dir` named by `video`, by
`<youtube_id>.<ext>` or by the Kinetics downloader's `<youtube_id>_<start:06d>_<end:06d>.<ext>`.
Records whose video is nowhere are reported (or, with `skip_missing=False`, fail the import).
All rows of one import are one commit.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from cluster.errors import InputError
from data_pipeline.datasets.schema import QA, Clip, ClipSpec, Span
from data_pipeline.datasets.store import VideoDataset, VideoInput

Format = Literal["jsonl", "kinetics", "llava"]
FORMATS: tuple[str, ...] = ("jsonl", "kinetics", "llava")
KINETICS_COLUMNS = ("label", "youtube_id", "time_start", "time_end", "split")
VIDEO_TOKEN = "<video>"  # LLaVA's placeholder for the visual input in the first human turn
DESCRIBE = "Describe what happens in this video."
_VIDEO_EXTS = (".mp4", ".webm", ".mkv", ".mov", ".avi")
_YOUTUBE_ID = re.compile(r"(?:v=|youtu\.be/|/shorts/|/embed/)([A-Za-z0-9_-]{11})")


class ImportReport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    records: int
    clips_added: int
    clips_skipped: int = Field(description="Records whose clip already existed (same video and range).")
    videos_added: int
    missing: list[str] = Field(default_factory=list, description="Records whose video was not found.")
    version: int


def guess_format(path: str | Path) -> Format:
    suffix = Path(path).suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    if suffix == ".csv":
        return "kinetics"
    if suffix == ".json":
        return "llava"
    raise InputError(f"cannot tell the format of {path} from its suffix; pass --format {'|'.join(FORMATS)}")


def youtube_id(source: str | None) -> str | None:
    m = _YOUTUBE_ID.search(source or "")
    return m.group(1) if m else None


def _ext(source: str | None) -> str:
    suffix = Path((source or "").split("?")[0]).suffix.lower()
    return suffix if suffix in _VIDEO_EXTS else ".mp4"


# --------------------------------------------------------------------- export
def _video_ref(clip: Clip, video_files: dict[str, str]) -> str:
    return video_files.get(clip.video_sha256) or clip.source or clip.video_sha256


def _jsonl_record(c: Clip, video_files: dict[str, str]) -> dict[str, Any]:
    return {
        "id": c.id,
        "video": _video_ref(c, video_files),
        "video_sha256": c.video_sha256,
        "source": c.source,
        "start": c.start_s,
        "end": c.end_s,
        "split": c.split,
        "label": c.label,
        "text": c.text,
        "spans": [s.model_dump() for s in c.spans],
        "qa": [q.model_dump() for q in c.qa],
        "status": c.status,
    }


def _llava_record(c: Clip, video_files: dict[str, str]) -> dict[str, Any] | None:
    pairs = [(q.question, q.answer) for q in c.qa] or ([(DESCRIBE, c.text)] if c.text else [])
    if not pairs:
        return None
    conv: list[dict[str, str]] = []
    for i, (q, a) in enumerate(pairs):
        conv.append({"from": "human", "value": f"{VIDEO_TOKEN}\n{q}" if i == 0 else q})
        conv.append({"from": "gpt", "value": a})
    return {
        "id": c.id,
        "video": _video_ref(c, video_files),
        "start": c.start_s,
        "end": c.end_s,
        "conversations": conv,
    }


def export(
    ds: VideoDataset,
    out: str | Path,
    *,
    format: Format | None = None,
    split: str | None = None,
    status: str | None = None,
    with_videos: bool = False,
) -> dict[str, Any]:
    """Write the clips of `ds` (this handle's version) to `out`; returns counts and paths.

    Args:
        with_videos: also write each referenced video once under `<out dir>/videos/`.
    """
    out = Path(out)
    fmt = format or guess_format(out)
    clips = ds.clips(split=split, status=status)
    out.parent.mkdir(parents=True, exist_ok=True)
    video_files: dict[str, str] = {}
    if with_videos:
        vdir = out.parent / "videos"
        vdir.mkdir(exist_ok=True)
        for sha in sorted({c.video_sha256 for c in clips}):
            name = f"{sha}{_ext(ds.video(sha).source)}"
            target = vdir / name
            if not target.exists():
                target.write_bytes(ds.video_bytes(sha))
            video_files[sha] = f"videos/{name}"
    written = 0
    if fmt == "jsonl":
        with out.open("w", encoding="utf-8") as f:
            for c in clips:
                f.write(json.dumps(_jsonl_record(c, video_files), ensure_ascii=False) + "\n")
                written += 1
    elif fmt == "kinetics":
        with out.open("w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(KINETICS_COLUMNS)
            for c in clips:
                if c.label is None:
                    continue  # Kinetics rows are class labels; unlabelled clips have none
                yid = youtube_id(c.source) or c.video_sha256
                w.writerow([c.label, yid, f"{c.start_s:g}", f"{c.end_s:g}", c.split])
                written += 1
    elif fmt == "llava":
        records = [r for c in clips if (r := _llava_record(c, video_files)) is not None]
        out.write_text(json.dumps(records, indent=1, ensure_ascii=False), encoding="utf-8")
        written = len(records)
    else:
        raise InputError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")
    return {
        "path": str(out),
        "format": fmt,
        "records": written,
        "videos": len(video_files),
        "version": ds.version,
    }


# --------------------------------------------------------------------- import
class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")

    video: str | None = None
    video_sha256: str | None = None
    youtube_id: str | None = None
    source: str | None = None
    clip: ClipSpec


def _read_jsonl(path: Path, default_split: str) -> list[_Record]:
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
            spec = ClipSpec(
                start=float(d.get("start") or 0.0),
                end=d.get("end"),
                split=d.get("split") or default_split,
                label=d.get("label"),
                text=d.get("text"),
                spans=[Span(**s) for s in d.get("spans") or []],
                qa=[QA(**q) for q in d.get("qa") or []],
                status=d.get("status"),
            )
        except (ValueError, TypeError) as e:
            raise InputError(f"{path}:{n}: not a vidray JSONL clip record: {e}") from e
        out.append(
            _Record(
                video=d.get("video"), video_sha256=d.get("video_sha256"), source=d.get("source"), clip=spec
            )
        )
    return out


def _read_kinetics(path: Path, default_split: str) -> list[_Record]:
    out = []
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [
            c for c in ("label", "youtube_id", "time_start", "time_end") if c not in (reader.fieldnames or [])
        ]
        if missing:
            raise InputError(
                f"{path}: Kinetics CSV needs columns {', '.join(KINETICS_COLUMNS)}; missing {missing}"
            )
        for n, row in enumerate(reader, 2):
            try:
                split = (row.get("split") or default_split).strip()
                split = {"validate": "val", "validation": "val"}.get(split, split)
                spec = ClipSpec(
                    start=float(row["time_start"]),
                    end=float(row["time_end"]),
                    split=split,
                    label=row["label"],
                )
            except (ValueError, TypeError) as e:
                raise InputError(f"{path}:{n}: bad Kinetics row {row}: {e}") from e
            out.append(_Record(youtube_id=row["youtube_id"].strip(), clip=spec))
    return out


def _read_llava(path: Path, default_split: str) -> list[_Record]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise InputError(f"{path}: not JSON: {e}") from e
    if not isinstance(doc, list):
        raise InputError(f"{path}: a LLaVA file is a JSON list of {{id, video, conversations}} records")
    out = []
    for i, d in enumerate(doc):
        conv = d.get("conversations") or []
        qa: list[QA] = []
        text: str | None = None
        for h, g in zip(conv[0::2], conv[1::2], strict=False):
            if h.get("from") != "human" or g.get("from") != "gpt":
                raise InputError(f"{path}: record {i}: conversations must alternate human/gpt turns")
            q = h["value"].replace(VIDEO_TOKEN, "").strip()
            if q == DESCRIBE and not qa:
                text = g["value"]
            else:
                qa.append(QA(question=q, answer=g["value"]))
        if not d.get("video"):
            raise InputError(f"{path}: record {i} has no 'video'")
        spec = ClipSpec(
            start=float(d.get("start") or 0.0), end=d.get("end"), split=default_split, text=text, qa=qa
        )
        out.append(_Record(video=d["video"], clip=spec))
    return out


_READERS = {"jsonl": _read_jsonl, "kinetics": _read_kinetics, "llava": _read_llava}


def _find_file(rec: _Record, base: Path, videos_dir: Path | None) -> Path | None:
    dirs = [d for d in (videos_dir, base) if d is not None]
    names: list[str] = []
    if rec.video and "://" not in rec.video:
        names.append(rec.video)
    if rec.youtube_id:
        yid, s, e = rec.youtube_id, int(rec.clip.start), int(rec.clip.end or 0)
        names += [f"{yid}{x}" for x in _VIDEO_EXTS] + [f"{yid}_{s:06d}_{e:06d}{x}" for x in _VIDEO_EXTS]
    for d in dirs:
        for name in names:
            p = Path(name) if Path(name).is_absolute() else d / name
            if p.is_file():
                return p
    return None


def import_file(
    ds: VideoDataset,
    path: str | Path,
    *,
    format: Format | None = None,
    videos_dir: str | Path | None = None,
    split: str = "train",
    skip_missing: bool = True,
) -> ImportReport:
    """Add the clips described in `path` to `ds` in one commit (see the module doc for resolution)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"annotation file {path} does not exist")
    fmt = format or guess_format(path)
    if fmt not in _READERS:
        raise InputError(f"unknown import format {fmt!r}; use one of {', '.join(FORMATS)}")
    records = _READERS[fmt](path, split)
    vdir = Path(videos_dir) if videos_dir else None
    stored = {v.sha256 for v in ds.videos()}
    by_key: dict[str, VideoInput] = {}
    missing: list[str] = []
    for rec in records:
        sha = rec.video_sha256 or (rec.youtube_id if rec.youtube_id in stored else None)
        if sha is None and rec.video:
            m = re.search(r"[0-9a-f]{64}", Path(rec.video).name)  # an exported videos/<sha>.mp4 name
            sha = m.group(0) if m and m.group(0) in stored else None
        if sha in stored:
            item = by_key.setdefault(sha, VideoInput(sha256=sha, clips=[]))
        elif (file := _find_file(rec, path.parent, vdir)) is not None:
            item = by_key.setdefault(str(file.resolve()), VideoInput(path=file, clips=[], source=rec.source))
        else:
            missing.append(rec.video or rec.youtube_id or rec.video_sha256 or "?")
            continue
        assert item.clips is not None
        item.clips.append(rec.clip)
    if missing and not skip_missing:
        raise InputError(
            f"{len(missing)} record(s) of {path} name videos that are not in the dataset nor under "
            f"{vdir or path.parent}: {missing[:3]}; pass --videos-dir"
        )
    results = ds.add_videos(list(by_key.values()), message=f"import {path.name} ({fmt})") if by_key else []
    return ImportReport(
        records=len(records),
        clips_added=sum(len(r.clip_ids) for r in results),
        clips_skipped=sum(len(r.skipped_clips) for r in results),
        videos_added=sum(r.added_video for r in results),
        missing=missing,
        version=ds.version,
    )
