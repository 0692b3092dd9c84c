"""`VideoDataset`: a versioned video dataset on one Lance table (local directory or S3).

Start here: `VideoDataset.create(uri)` / `VideoDataset.open(uri)` resolve a name, path or s3:// URL
(`location.py`) and open `<root>/items.lance`. Every mutation is one Lance commit, so every change
makes a new dataset version; nothing is rewritten in place:

* `add_video` / `add_videos` — append the video row (once per sha256; re-adding the same file only adds clips)
  and its clip rows in one commit.
* `update_clips` (used by `labels.py`) — a merge-insert on `id` with only the changed columns.
* `delete_video` — deletes the video row and every clip that references it in one commit, then
  compacts so the *new* version's files hold none of its bytes or frames; `purge` also removes
  old versions (Lance cleanup), after which no file under the root holds them.
* `versions`, `tag`, `checkout`, `restore` — Lance's own versions, tags and time travel.
* `diff(a, b)` — compares the clip/video rows of any two versions (`history.py` says why not
  Lance's `delta()`).
Row layout: `schema.py`; row building: `_rows.py`.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np

from cluster.config import Settings
from cluster.errors import InputError, NotFoundError
from cluster.optional import require
from data_pipeline.datasets._rows import (
    clip_row,
    lit,
    now,
    rows_to_table,
    video_from_row,
    video_row,
)
from data_pipeline.datasets.history import diff_rows, list_versions
from data_pipeline.datasets.location import Location, resolve
from data_pipeline.datasets.schema import (
    ANNOTATION_COLUMNS,
    KIND_CLIP,
    KIND_VIDEO,
    AddResult,
    Clip,
    ClipSpec,
    DeleteResult,
    DiffResult,
    VersionInfo,
    Video,
    arrow_schema,
    clip_id,
    scalar_columns,
)

# Scalar indices built at creation. Filters on these columns (and FTS on `text`) use the index;
# fragments appended later are scanned until `optimize()` folds them in, so results are always complete.
_INDICES: tuple[tuple[str, str], ...] = (
    ("id", "BTREE"),  # merge-insert joins and lookups by clip id
    ("kind", "BITMAP"),  # two values: video / clip
    ("video_sha256", "BTREE"),
    ("label", "BTREE"),
    ("duration_s", "BTREE"),
    ("text", "INVERTED"),  # full-text search over captions
)
_END_TOLERANCE_S = 0.5  # a clip may end this much past the probed duration (container rounding)


@dataclass
class VideoInput:
    """One video to add: a local file, or the sha256 of a video already stored (to add clips only)."""

    path: Path | None = None
    sha256: str | None = None
    clips: list[ClipSpec] | None = None
    source: str | None = None
    title: str | None = None
    metadata: Any = None  # a probed VideoMetadata, to skip probing again


class VideoDataset:
    """A handle on one dataset, at its latest version or checked out at an old one (read-only)."""

    def __init__(self, location: Location, ds: Any, *, pinned: bool = False) -> None:
        self.location = location
        self._ds = ds
        self._pinned = pinned

    # ----------------------------------------------------------------- open / create
    @classmethod
    def create(
        cls,
        uri: str | Path,
        *,
        settings: Settings | None = None,
        storage_options: dict[str, str] | None = None,
        exist_ok: bool = False,
    ) -> VideoDataset:
        """Create an empty dataset (version 1) with its indices; `exist_ok` opens an existing one."""
        lance = require("lance", "train")
        loc = resolve(uri, settings, storage_options)
        if _exists(loc):
            if exist_ok:
                return cls.open(uri, settings=settings, storage_options=storage_options)
            raise InputError(f"dataset {loc.root} already exists; open it, or pick another name")
        if not loc.is_remote:
            Path(loc.root).mkdir(parents=True, exist_ok=True)
        ds = lance.write_dataset(
            arrow_schema().empty_table(),
            loc.table_uri,
            mode="create",
            enable_stable_row_ids=True,  # row ids survive compaction
            commit_message="create dataset",
            storage_options=loc.storage_options or None,
        )
        for column, kind in _INDICES:
            ds.create_scalar_index(column, kind)
        return cls(loc, lance.dataset(loc.table_uri, storage_options=loc.storage_options or None))

    @classmethod
    def open(
        cls,
        uri: str | Path,
        *,
        version: int | str | None = None,
        settings: Settings | None = None,
        storage_options: dict[str, str] | None = None,
    ) -> VideoDataset:
        """Open the latest version, or check out `version` (a number or a tag) read-only."""
        lance = require("lance", "train")
        loc = resolve(uri, settings, storage_options)
        if not _exists(loc):
            raise NotFoundError(f"no dataset at {loc.root}; create it with: vidray dataset create {uri}")
        ds = lance.dataset(loc.table_uri, storage_options=loc.storage_options or None)
        view = cls(loc, ds)
        return view.checkout(version) if version is not None else view

    @property
    def uri(self) -> str:
        return self.location.root

    @property
    def version(self) -> int:
        return int(self._ds.version)

    @property
    def latest_version(self) -> int:
        return int(self._ds.latest_version)

    @property
    def lance_dataset(self) -> Any:
        """The underlying `lance.LanceDataset` at this handle's version (for readers and tools)."""
        return self._ds

    def _refresh(self) -> None:
        lance = require("lance", "train")
        self._ds = lance.dataset(
            self.location.table_uri, storage_options=self.location.storage_options or None
        )

    def _writable(self) -> None:
        if self._pinned:
            raise InputError(
                f"version {self.version} of {self.uri} is a read-only checkout; "
                f"restore it first (vidray dataset checkout {self.uri} {self.version} --restore)"
            )

    # ----------------------------------------------------------------- adding
    def add_video(
        self,
        path: str | Path,
        *,
        clips: list[ClipSpec] | None = None,
        source: str | None = None,
        title: str | None = None,
        metadata: Any = None,
        frames: tuple[int, int] | None = None,
        message: str | None = None,
    ) -> AddResult:
        """Store `path` once (by sha256) and add its clips in one commit.

        Args:
            path: a local video file (ingest URLs first with `data_pipeline.ingest`).
            clips: time ranges and their annotations; None adds one clip spanning the whole video.
            source: where the video came from (URL or path), kept for filtering and export.
            title: a human title (defaults to the probed title).
            metadata: a `VideoMetadata` already probed (skips a second probe).
            frames: `(num_frames, size)` to also store pre-decoded uint8 frames per clip, which the
                reader uses instead of decoding when its request matches (decoded by
                `clip_frames.decode_clip`, the rule training and inference share).
            message: the commit message shown by `versions()`.
        """
        item = VideoInput(path=Path(path), clips=clips, source=source, title=title, metadata=metadata)
        return self.add_videos([item], frames=frames, message=message)[0]

    def add_clips(self, video_sha256: str, clips: list[ClipSpec], *, message: str | None = None) -> AddResult:
        """Add clips of a video already in the dataset (no file needed)."""
        return self.add_videos([VideoInput(sha256=video_sha256, clips=clips)], message=message)[0]

    def add_videos(
        self, items: list[VideoInput], *, frames: tuple[int, int] | None = None, message: str | None = None
    ) -> list[AddResult]:
        """Add many videos and/or clips in one commit (imports use this: one import, one version)."""
        self._writable()
        rows: list[dict[str, Any]] = []
        planned: list[tuple[str, bool, list[str], list[str]]] = []
        seen_videos: set[str] = set()
        taken: set[str] = set()
        for item in items:
            sha, added, new_ids, skipped = self._plan(item, rows, seen_videos, taken, frames)
            planned.append((sha, added, new_ids, skipped))
        n_clips = sum(len(p[2]) for p in planned)
        if rows:
            self._append(rows, message or f"add {len(seen_videos)} video(s), {n_clips} clip(s)")
        return [
            AddResult(
                video_sha256=sha, added_video=added, clip_ids=ids, skipped_clips=sk, version=self.version
            )
            for sha, added, ids, sk in planned
        ]

    def _plan(
        self,
        item: VideoInput,
        rows: list[dict[str, Any]],
        seen_videos: set[str],
        taken: set[str],
        frames: tuple[int, int] | None,
    ) -> tuple[str, bool, list[str], list[str]]:
        from data_pipeline.datasets.clip_frames import decode_clip

        if item.path is not None:
            from data_pipeline.probe import probe

            if not item.path.is_file():
                raise InputError(
                    f"video {item.path} does not exist; pass a local file (or ingest the URL first)"
                )
            meta = item.metadata or probe(item.path)
            sha, name = meta.sha256, item.path.name
            source = item.source or meta.source or str(item.path)
            t0, t1 = float(meta.start_s), float(meta.start_s + meta.duration_s)
            added = sha not in seen_videos and not self._has_video(sha)
            if added:
                rows.append(video_row(item.path.read_bytes(), meta, source, item.title))
        elif item.sha256:
            sha, name, added = item.sha256, item.sha256[:12], False
            if sha not in seen_videos:
                video = self.video(sha)
                source, t0, t1 = item.source or video.source, video.start_s, video.start_s + video.duration_s
            else:  # added earlier in this same batch
                prior = next(r for r in rows if r["id"] == sha)
                source, t0, t1 = prior["source"], prior["start_s"], prior["end_s"]
        else:
            raise InputError("a video to add needs a path or the sha256 of a stored video")
        seen_videos.add(sha)
        if sha not in taken:
            taken.update(self._ids(f"kind = {lit(KIND_CLIP)} AND video_sha256 = {lit(sha)}"))
            taken.add(sha)
        new_ids, skipped = [], []
        for spec in item.clips or [ClipSpec(start=t0)]:
            end = t1 if spec.end is None else float(spec.end)
            if end > t1 + _END_TOLERANCE_S or spec.start >= t1:
                raise InputError(f"clip {spec.start}-{end}s is outside {name} ({t0:.2f}-{t1:.2f}s)")
            end = min(end, t1)
            cid = clip_id(sha, spec.start, end)
            if cid in taken:
                skipped.append(cid)
                continue
            fr = None
            if frames and item.path is not None:
                fr = decode_clip(item.path, spec.start, end, num_frames=frames[0], size=frames[1])
            rows.append(clip_row(cid, sha, spec, end, source, fr))
            taken.add(cid)
            new_ids.append(cid)
        return sha, added, new_ids, skipped

    def _append(self, rows: list[dict[str, Any]], message: str) -> None:
        lance = require("lance", "train")
        lance.write_dataset(
            rows_to_table(rows),
            self._ds,
            mode="append",
            commit_message=message,
            storage_options=self.location.storage_options or None,
        )
        self._refresh()

    # ----------------------------------------------------------------- updating
    def update_clips(self, updates: list[dict[str, Any]]) -> int:
        """Set columns of existing clips: each dict holds `id` and the columns to change. One commit.

        Why merge-insert with only the changed columns: Lance rewrites just those columns of the
        matched rows, never the blobs, and the whole batch is one version.
        """
        self._writable()
        if not updates:
            return self.version
        import pyarrow as pa

        ids = [u["id"] for u in updates]
        found = set(self._ids(f"kind = {lit(KIND_CLIP)} AND id IN ({', '.join(lit(i) for i in ids)})"))
        missing = [i for i in ids if i not in found]
        if missing:
            raise NotFoundError(
                f"no clip {missing[0]} in {self.uri} (version {self.version}); list clips with "
                f"`vidray dataset ls {self.uri}`"
            )
        schema = arrow_schema()
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for u in updates:
            row = {**u, "updated_at": now()}
            groups.setdefault(tuple(sorted(row)), []).append(row)
        for cols, rows in groups.items():
            fields = [schema.field(c) for c in cols]
            table = pa.Table.from_pylist(rows, schema=pa.schema(fields))
            self._ds.merge_insert("id").when_matched_update_all().execute(table)
            self._refresh()
        return self.version

    # ----------------------------------------------------------------- reading
    def _scan(self, filter: str | None, columns: list[str] | None = None, **kw: Any) -> list[dict[str, Any]]:
        return self._ds.to_table(columns=columns or scalar_columns(), filter=filter, **kw).to_pylist()

    def _ids(self, filter: str) -> list[str]:
        return [r["id"] for r in self._ds.to_table(columns=["id"], filter=filter).to_pylist()]

    def _has_video(self, sha: str) -> bool:
        return self._ds.count_rows(filter=f"kind = {lit(KIND_VIDEO)} AND id = {lit(sha)}") > 0

    def clips(
        self,
        *,
        split: str | None = None,
        label: str | None = None,
        status: str | None = None,
        video: str | None = None,
        source: str | None = None,
        min_duration: float | None = None,
        max_duration: float | None = None,
        text: str | None = None,
        limit: int | None = None,
    ) -> list[Clip]:
        """Find clips by split, label, review status, video, source substring, duration or caption text."""
        where = [f"kind = {lit(KIND_CLIP)}"]
        for col, val in (("split", split), ("label", label), ("status", status), ("video_sha256", video)):
            if val is not None:
                where.append(f"{col} = {lit(val)}")
        if source:
            where.append(f"source LIKE {lit('%' + source + '%')}")
        if min_duration is not None:
            where.append(f"duration_s >= {float(min_duration)}")
        if max_duration is not None:
            where.append(f"duration_s <= {float(max_duration)}")
        kw: dict[str, Any] = {}
        if text:
            kw = {"full_text_query": text, "prefilter": True, "disable_scoring_autoprojection": True}
        rows = self._scan(" AND ".join(where), limit=limit, **kw)
        return [Clip.from_row(r) for r in rows]

    def clip(self, clip_id: str) -> Clip:
        rows = self._scan(f"kind = {lit(KIND_CLIP)} AND id = {lit(clip_id)}")
        if not rows:
            raise NotFoundError(f"no clip {clip_id} in {self.uri} (version {self.version})")
        return Clip.from_row(rows[0])

    def videos(self) -> list[Video]:
        rows = self._scan(f"kind = {lit(KIND_VIDEO)}")
        return [video_from_row(r) for r in rows]

    def video(self, sha256: str) -> Video:
        rows = self._scan(f"kind = {lit(KIND_VIDEO)} AND id = {lit(sha256)}")
        if not rows:
            raise NotFoundError(f"no video {sha256} in {self.uri} (version {self.version})")
        return video_from_row(rows[0])

    def video_metadata(self, sha256: str) -> dict[str, Any]:
        rows = self._scan(f"kind = {lit(KIND_VIDEO)} AND id = {lit(sha256)}", columns=["metadata_json"])
        if not rows:
            raise NotFoundError(f"no video {sha256} in {self.uri} (version {self.version})")
        return dict(json.loads(rows[0]["metadata_json"] or "{}"))

    def _blob(self, column: str, filter: str) -> bytes | None:
        ids = self._ds.to_table(columns=[], filter=filter, with_row_id=True)["_rowid"].to_pylist()
        if not ids:
            return None
        [(_, data)] = self._ds.read_blobs(column, ids=ids[:1])
        return data

    def video_bytes(self, sha256: str) -> bytes:
        """The stored file's bytes (the blob is read only here, never by scans)."""
        data = self._blob("video", f"kind = {lit(KIND_VIDEO)} AND id = {lit(sha256)}")
        if data is None:
            raise NotFoundError(f"no video {sha256} in {self.uri} (version {self.version})")
        return data

    def frames(self, clip_id: str) -> np.ndarray | None:
        """Pre-decoded frames of a clip (uint8 T×H×W×3), or None when none were stored."""
        clip = self.clip(clip_id)
        if not clip.frames_shape:
            return None
        data = self._blob("frames", f"kind = {lit(KIND_CLIP)} AND id = {lit(clip_id)}")
        return None if data is None else np.frombuffer(data, dtype=np.uint8).reshape(clip.frames_shape)

    def stats(self) -> dict[str, Any]:
        rows = self._scan(None, columns=["kind", "split", "status", "label", "size_bytes", "duration_s"])
        clips = [r for r in rows if r["kind"] == KIND_CLIP]
        videos = [r for r in rows if r["kind"] == KIND_VIDEO]
        return {
            "uri": self.uri,
            "version": self.version,
            "latest_version": self.latest_version,
            "videos": len(videos),
            "clips": len(clips),
            "video_bytes": sum(r["size_bytes"] or 0 for r in videos),
            "clip_seconds": round(sum(r["duration_s"] or 0.0 for r in clips), 3),
            "splits": dict(Counter(r["split"] for r in clips)),
            "status": dict(Counter(r["status"] for r in clips)),
            "labels": dict(Counter(r["label"] for r in clips if r["label"])),
            "tags": self.tags(),
        }

    # ----------------------------------------------------------------- versions
    def versions(self) -> list[VersionInfo]:
        """Every version with its operation, commit message, tags and live row count."""
        return list_versions(self._ds, self.tags())

    def tags(self) -> dict[str, int]:
        return {name: int(t["version"]) for name, t in self._ds.tags.list().items()}

    def tag(self, name: str, version: int | None = None, *, force: bool = False) -> int:
        """Name a version (default: this handle's). `force` moves an existing tag."""
        version = self.version if version is None else int(version)
        if name in self.tags():
            if not force:
                raise InputError(
                    f"tag {name!r} already points at version {self.tags()[name]}; pass --force to move it"
                )
            self._ds.tags.update(name, version)
        else:
            try:
                self._ds.tags.create(name, version)
            except (OSError, ValueError) as e:
                raise NotFoundError(f"cannot tag version {version} of {self.uri}: {e}") from e
        return version

    def untag(self, name: str) -> None:
        if name not in self.tags():
            raise NotFoundError(f"no tag {name!r} in {self.uri}; tags: {sorted(self.tags()) or 'none'}")
        self._ds.tags.delete(name)

    def _resolve_ref(self, ref: int | str) -> int | str:
        if isinstance(ref, str) and ref.isdigit():
            return int(ref)
        if isinstance(ref, str) and ref not in self.tags():
            raise NotFoundError(
                f"no version or tag {ref!r} in {self.uri}; tags: {sorted(self.tags()) or 'none'}"
            )
        return ref

    def checkout(self, ref: int | str) -> VideoDataset:
        """A read-only handle on version `ref` (number or tag)."""
        lance = require("lance", "train")
        resolved = self._resolve_ref(ref)
        try:
            ds = lance.dataset(
                self.location.table_uri,
                version=resolved,
                storage_options=self.location.storage_options or None,
            )
        except (OSError, ValueError) as e:
            raise NotFoundError(
                f"version {ref!r} of {self.uri} does not exist (or was cleaned up): {e}"
            ) from e
        return VideoDataset(self.location, ds, pinned=int(ds.version) != int(ds.latest_version))

    def restore(self, ref: int | str) -> int:
        """Make version `ref`'s contents the newest version (a new commit; history is kept)."""
        view = self.checkout(ref)
        view._ds.restore()
        self._refresh()
        return self.version

    def diff(self, a: int | str, b: int | str | None = None) -> DiffResult:
        """Clips and videos added, removed or re-annotated from version `a` to `b` (default: this one)."""
        va = self.checkout(a)
        vb = self if b is None else self.checkout(b)
        cols = ["id", "kind", *ANNOTATION_COLUMNS]
        return diff_rows(va.version, va._scan(None, columns=cols), vb.version, vb._scan(None, columns=cols))

    # ----------------------------------------------------------------- deleting
    def delete_clips(self, ids: list[str]) -> int:
        """Delete clips (not their video). One commit."""
        self._writable()
        if ids:
            self._ds.delete(f"kind = {lit(KIND_CLIP)} AND id IN ({', '.join(lit(i) for i in ids)})")
            self._refresh()
        return self.version

    def delete_video(self, sha256: str, *, purge: bool = False, untag: bool = False) -> DeleteResult:
        """Delete a video and all its clips (and their frames) from the next version.

        The delete is one commit; a compaction follows so the newest version's data files hold none
        of the video's bytes or frames (Lance otherwise only marks rows deleted). Older versions still
        reference their files until `purge=True` runs Lance cleanup of all old versions; tags pinning
        a version that holds the video keep those files unless `untag=True` drops those tags first.
        """
        self._writable()
        if not self._has_video(sha256):
            raise NotFoundError(
                f"no video {sha256} in {self.uri}; list videos with `vidray dataset ls {self.uri} --videos`"
            )
        n_clips = self._ds.count_rows(filter=f"kind = {lit(KIND_CLIP)} AND video_sha256 = {lit(sha256)}")
        self._ds.delete(f"video_sha256 = {lit(sha256)}")
        self._refresh()
        self.compact()
        pinned = self._tags_holding(sha256)
        if untag:
            for name in pinned:
                self._ds.tags.delete(name)
            pinned = []
        if purge:
            self.purge()
        return DeleteResult(
            video_sha256=sha256,
            clips_deleted=n_clips,
            version=self.version,
            purged=purge,
            pinned_by_tags=pinned,
        )

    def _tags_holding(self, sha256: str) -> list[str]:
        held = []
        for name, v in self.tags().items():
            view = self.checkout(v)
            if view._ds.count_rows(filter=f"video_sha256 = {lit(sha256)}") > 0:
                held.append(name)
        return sorted(held)

    def compact(self) -> int:
        """Rewrite fragments that hold deleted rows and fold new rows into the indices."""
        self._writable()
        self._ds.optimize.compact_files(materialize_deletions_threshold=0.0)
        self._refresh()
        self._ds.optimize.optimize_indices()
        self._refresh()
        return self.version

    def purge(self) -> dict[str, int]:
        """Remove every version but the newest (and tagged ones) and the files only they reference."""
        self._writable()
        stats = self._ds.cleanup_old_versions(
            older_than=timedelta(0), delete_unverified=True, error_if_tagged_old_versions=False
        )
        self._refresh()
        return {"old_versions": int(stats.old_versions), "bytes_removed": int(stats.bytes_removed)}


# --------------------------------------------------------------------- rows
def _exists(loc: Location) -> bool:
    if not loc.is_remote:
        return (Path(loc.table_uri) / "_versions").is_dir()
    lance = require("lance", "train")
    try:
        lance.dataset(loc.table_uri, storage_options=loc.storage_options or None)
    except (OSError, ValueError):
        return False
    return True
