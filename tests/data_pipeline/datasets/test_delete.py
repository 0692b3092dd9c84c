"""Deleting a video leaves no rows, blobs or frames in the new version, and no files after purge."""

from __future__ import annotations

from pathlib import Path

import pytest

from cluster.errors import NotFoundError
from data_pipeline.datasets.schema import ClipSpec
from data_pipeline.datasets.store import VideoDataset

pytest.importorskip("lance")


def _files_holding(root: Path, needle: bytes) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


def _version_files(ds: VideoDataset) -> list[Path]:
    """Data/blob/deletion files referenced by the dataset's newest version only."""
    table = Path(ds.location.table_uri)
    rows = ds.lance_dataset.tracked_files(min_version=ds.version).read_all().to_pylist()
    return [table / r["path"] for r in rows if (table / r["path"]).is_file()]


def _probe_chunks(data: bytes) -> list[bytes]:
    # Distinctive slices from the middle of the file (headers are shared between encodes).
    n = len(data)
    return [data[n // 3 : n // 3 + 64], data[2 * n // 3 : 2 * n // 3 + 64]]


def test_delete_video_removes_rows_blobs_and_frames(tmp_path: Path, dmedia) -> None:
    root = tmp_path / "ds"
    ds = VideoDataset.create(root)
    gone = ds.add_video(dmedia.a, clips=[ClipSpec(start=0, end=2), ClipSpec(start=2, end=4)], frames=(4, 32))
    kept = ds.add_video(dmedia.b, frames=(4, 32))
    frames_gone = ds.frames(gone.clip_ids[0])
    assert frames_gone is not None and frames_gone.shape == (4, 32, 32, 3)
    before = ds.version
    video_bytes = dmedia.a.read_bytes()
    needles = [*_probe_chunks(video_bytes), frames_gone.tobytes()[:4096]]
    assert all(_files_holding(root, n) for n in needles[:2])

    res = ds.delete_video(gone.video_sha256)
    assert res.clips_deleted == 2 and not res.purged and res.pinned_by_tags == []
    # New version: no rows of the video, and none of its bytes/frames in the files it references.
    assert ds.clips(video=gone.video_sha256) == [] and [v.sha256 for v in ds.videos()] == [kept.video_sha256]
    with pytest.raises(NotFoundError):
        ds.video_bytes(gone.video_sha256)
    files = _version_files(ds)
    assert files, "the new version references some files"
    for needle in needles:
        assert not [f for f in files if needle in f.read_bytes()]
    kept_chunk = _probe_chunks(dmedia.b.read_bytes())[0]
    assert [f for f in files if kept_chunk in f.read_bytes()], "the scan finds what the version does hold"
    # The kept video is intact in the new version.
    assert ds.video_bytes(kept.video_sha256) == dmedia.b.read_bytes()
    assert ds.frames(kept.clip_ids[0]) is not None
    # History still holds it until purge (time travel works) ...
    assert ds.checkout(before).video_bytes(gone.video_sha256) == video_bytes
    # ... and purge removes every file that held it.
    ds.purge()
    for needle in needles:
        assert _files_holding(root, needle) == []
    with pytest.raises(NotFoundError):
        ds.checkout(before)
    assert ds.video_bytes(kept.video_sha256) == dmedia.b.read_bytes()


def test_tag_pins_deleted_video_until_untagged(tmp_path: Path, dmedia) -> None:
    root = tmp_path / "ds"
    ds = VideoDataset.create(root)
    r = ds.add_video(dmedia.a)
    ds.tag("release")
    chunks = _probe_chunks(dmedia.a.read_bytes())
    res = ds.delete_video(r.video_sha256, purge=True)
    assert res.pinned_by_tags == ["release"]
    assert all(_files_holding(root, c) for c in chunks)  # the tagged version keeps its files
    assert ds.checkout("release").video_bytes(r.video_sha256) == dmedia.a.read_bytes()

    ds.add_video(dmedia.a)  # re-added (new rows), then removed again with the pinning tag dropped
    res = ds.delete_video(r.video_sha256, purge=True, untag=True)
    assert res.pinned_by_tags == [] and ds.tags() == {}
    assert all(_files_holding(root, c) == [] for c in chunks)
