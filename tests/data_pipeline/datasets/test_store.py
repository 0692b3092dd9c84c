"""Versions, dedupe, find, diff, tags, checkout/restore on a real local Lance dataset."""

from __future__ import annotations

from pathlib import Path

import pytest

from cluster.errors import InputError, NotFoundError
from data_pipeline.datasets.schema import QA, ClipSpec, Span
from data_pipeline.datasets.store import VideoDataset, VideoInput

pytest.importorskip("lance")


def test_add_dedupes_videos_by_content_and_versions_every_change(tmp_path: Path, dmedia) -> None:
    ds = VideoDataset.create(tmp_path / "ds")
    v0 = ds.version
    r1 = ds.add_video(
        dmedia.a, clips=[ClipSpec(start=0, end=2, label="bars"), ClipSpec(start=2, end=4, split="val")]
    )
    assert r1.added_video and len(r1.clip_ids) == 2 and ds.version == v0 + 1
    # Same bytes under another name: stored once, only the new clip is added; a repeated range is skipped.
    copy = tmp_path / "copy.mp4"
    copy.write_bytes(dmedia.a.read_bytes())
    r2 = ds.add_video(copy, clips=[ClipSpec(start=0, end=2), ClipSpec(start=1, end=3)])
    assert not r2.added_video and r2.skipped_clips == [r1.clip_ids[0]] and len(r2.clip_ids) == 1
    assert len(ds.videos()) == 1 and len(ds.clips()) == 3
    assert ds.video_bytes(r1.video_sha256) == dmedia.a.read_bytes()
    with pytest.raises(InputError, match="outside"):
        ds.add_video(dmedia.a, clips=[ClipSpec(start=3, end=9)])
    assert [v.operation for v in ds.versions()][-2:] == ["Append", "Append"]
    assert ds.versions()[-1].num_rows == 4  # 1 video + 3 clips


def test_find_by_label_split_source_duration_and_text(tmp_path: Path, dmedia) -> None:
    ds = VideoDataset.create(tmp_path / "ds")
    ds.add_videos(
        [
            VideoInput(
                path=dmedia.a,
                clips=[
                    ClipSpec(start=0, end=1, label="cat", text="a cat jumps on the sofa"),
                    ClipSpec(start=1, end=4, label="dog", text="the dog barks"),
                ],
            ),
            VideoInput(
                path=dmedia.b,
                source="https://example.org/bars.mp4",
                clips=[ClipSpec(start=0, end=3, label="cat", split="val")],
            ),
        ]
    )
    assert len(ds.clips(label="cat")) == 2
    assert [c.label for c in ds.clips(split="val")] == ["cat"]
    assert [c.split for c in ds.clips(source="example.org")] == ["val"]
    assert {c.label for c in ds.clips(min_duration=2.5)} == {"dog", "cat"}
    assert [c.label for c in ds.clips(max_duration=1.5)] == ["cat"]
    assert [c.label for c in ds.clips(text="barks")] == ["dog"]
    assert len(ds.lance_dataset.describe_indices()) >= 5  # scalar + FTS indices exist


def test_diff_tags_checkout_and_restore(tmp_path: Path, dmedia) -> None:
    ds = VideoDataset.create(tmp_path / "ds")
    r = ds.add_video(
        dmedia.a, clips=[ClipSpec(start=0, end=2, label="a"), ClipSpec(start=2, end=4, label="b")]
    )
    ds.tag("v1")
    v1 = ds.version
    ds.update_clips([{"id": r.clip_ids[0], "label": "a2"}])
    rb = ds.add_video(dmedia.b)
    ds.delete_clips([r.clip_ids[1]])

    d = ds.diff("v1")
    assert d.added_videos == [rb.video_sha256] and d.removed_videos == []
    assert d.added_clips == rb.clip_ids and d.removed_clips == [r.clip_ids[1]]
    assert d.changed_clips == [r.clip_ids[0]]
    back = ds.diff(ds.version, "v1")  # either direction
    assert back.removed_clips == rb.clip_ids and back.added_clips == [r.clip_ids[1]]
    assert ds.diff(v1, v1).empty

    old = ds.checkout("v1")
    assert old.version == v1 and {c.label for c in old.clips()} == {"a", "b"}
    with pytest.raises(InputError, match="read-only"):
        old.add_video(dmedia.b)
    with pytest.raises(NotFoundError):
        ds.checkout("no-such-tag")
    with pytest.raises(InputError, match="already points"):
        ds.tag("v1")
    assert VideoDataset.open(tmp_path / "ds", version="v1").version == v1

    new = ds.restore("v1")
    assert new > v1 and {c.label for c in ds.clips()} == {"a", "b"} and len(ds.videos()) == 1
    assert ds.diff("v1").empty
    assert "v1" in next(v for v in ds.versions() if v.version == v1).tags
    ds.untag("v1")
    assert ds.tags() == {}


def test_labels_and_spans_round_trip_through_lance(tmp_path: Path, dmedia) -> None:
    ds = VideoDataset.create(tmp_path / "ds")
    r = ds.add_video(
        dmedia.a,
        clips=[
            ClipSpec(
                start=1,
                end=3,
                spans=[Span(start=1.5, end=2, label="x")],
                qa=[QA(question="what?", answer="bars")],
            )
        ],
    )
    c = ds.clip(r.clip_ids[0])
    assert c.status == "accepted" and c.spans[0].label == "x" and c.qa[0].answer == "bars"
    assert c.duration_s == pytest.approx(2.0)


def test_missing_dataset_and_bad_names(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="vidray dataset create"):
        VideoDataset.open(tmp_path / "nothing")
    with pytest.raises(InputError):
        VideoDataset.open("bad name!")
    VideoDataset.create(tmp_path / "x")
    with pytest.raises(InputError, match="already exists"):
        VideoDataset.create(tmp_path / "x")
    assert VideoDataset.create(tmp_path / "x", exist_ok=True).version >= 1


def test_named_dataset_lives_under_data_dir(data_dir: Path) -> None:
    ds = VideoDataset.create("named")
    assert Path(ds.uri) == data_dir / "datasets" / "named"
