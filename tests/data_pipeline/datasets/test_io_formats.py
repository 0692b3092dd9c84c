"""Import/export round trips: JSONL (lossless), Kinetics CSV, LLaVA conversations."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from cluster.errors import InputError
from data_pipeline.datasets.io_formats import export, import_file, youtube_id
from data_pipeline.datasets.schema import QA, ClipSpec, Span
from data_pipeline.datasets.store import VideoDataset, VideoInput

pytest.importorskip("lance")


def _annotations(ds: VideoDataset) -> list[dict]:
    keep = ("video_sha256", "start_s", "end_s", "split", "label", "text", "spans", "qa", "status")
    return sorted(
        ({k: c.model_dump()[k] for k in keep} for c in ds.clips()),
        key=lambda d: (d["video_sha256"], d["start_s"]),
    )


@pytest.fixture
def source(tmp_path: Path, dmedia) -> VideoDataset:
    ds = VideoDataset.create(tmp_path / "src")
    ds.add_videos(
        [
            VideoInput(
                path=dmedia.a,
                source="https://www.youtube.com/watch?v=dQw4w9WgXcQ",
                clips=[
                    ClipSpec(
                        start=0,
                        end=1.5,
                        label="bars",
                        text="colour bars",
                        spans=[Span(start=0.2, end=1.0, label="tone")],
                        qa=[QA(question="What is shown?", answer="a test card")],
                    ),
                    ClipSpec(start=1.5, end=4, label="count", split="val", status="draft"),
                ],
            ),
            VideoInput(
                path=dmedia.b,
                clips=[
                    ClipSpec(
                        start=0,
                        end=3,
                        split="test",
                        qa=[
                            QA(question="How many bars?", answer="seven"),
                            QA(question="Colour of the first?", answer="grey"),
                        ],
                    )
                ],
            ),
        ]
    )
    return ds


def test_jsonl_round_trip_is_lossless(source: VideoDataset, tmp_path: Path) -> None:
    out = export(source, tmp_path / "exp" / "clips.jsonl", with_videos=True)
    assert out["records"] == 3 and out["videos"] == 2
    lines = [json.loads(x) for x in (tmp_path / "exp" / "clips.jsonl").read_text().splitlines()]
    assert all(line["video"].startswith("videos/") for line in lines)
    dst = VideoDataset.create(tmp_path / "dst")  # a fresh dataset: the videos come from the export folder
    rep = import_file(dst, tmp_path / "exp" / "clips.jsonl")
    assert (rep.clips_added, rep.videos_added, rep.missing) == (3, 2, [])
    assert _annotations(dst) == _annotations(source)
    assert import_file(dst, tmp_path / "exp" / "clips.jsonl").clips_skipped == 3  # idempotent


def test_kinetics_csv_round_trip(source: VideoDataset, tmp_path: Path) -> None:
    path = tmp_path / "k" / "kinetics.csv"
    export(source, path, with_videos=True)
    rows = list(csv.DictReader(path.open()))
    assert list(rows[0]) == ["label", "youtube_id", "time_start", "time_end", "split"]
    assert {r["youtube_id"] for r in rows if r["label"] == "bars"} == {"dQw4w9WgXcQ"}
    assert len(rows) == 2  # the unlabelled clip has no Kinetics row
    # Kinetics folders name files by YouTube id: rename the exported video accordingly.
    sha_a = source.clips(label="bars")[0].video_sha256
    exported = next((tmp_path / "k" / "videos").glob(f"{sha_a}.*"))
    exported.rename(exported.with_name("dQw4w9WgXcQ.mp4"))
    dst = VideoDataset.create(tmp_path / "dst")
    rep = import_file(dst, path, videos_dir=tmp_path / "k" / "videos")
    assert rep.clips_added == 2 and rep.missing == []
    got = sorted((c.label, c.start_s, c.end_s, c.split) for c in dst.clips())
    assert got == [("bars", 0.0, 1.5, "train"), ("count", 1.5, 4.0, "val")]


def test_llava_round_trip_keeps_conversations(source: VideoDataset, tmp_path: Path) -> None:
    path = tmp_path / "l" / "llava.json"
    export(source, path, with_videos=True)
    doc = json.loads(path.read_text())
    assert len(doc) == 2  # clips with QA pairs (or a caption)
    first = doc[0]["conversations"]
    assert (
        first[0]["from"] == "human"
        and first[0]["value"].startswith("<video>\n")
        and first[1]["from"] == "gpt"
    )
    dst = VideoDataset.create(tmp_path / "dst")
    import_file(dst, path)

    def qa(ds: VideoDataset) -> list[tuple]:
        return sorted((c.start_s, c.end_s, tuple((q.question, q.answer) for q in c.qa)) for c in ds.clips())

    assert qa(dst) == sorted(x for x in qa(source) if x[2])
    # Importing into the source dataset resolves videos by sha256 (no files needed).
    assert import_file(source, path).clips_skipped == 2


def test_import_reports_missing_videos(tmp_path: Path) -> None:
    p = tmp_path / "k.csv"
    p.write_text("label,youtube_id,time_start,time_end,split\nabseiling,AAAAAAAAAAA,0,10,train\n")
    ds = VideoDataset.create(tmp_path / "ds")
    assert import_file(ds, p).missing == ["AAAAAAAAAAA"]
    with pytest.raises(InputError, match="--videos-dir"):
        import_file(ds, p, skip_missing=False)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"start": 2, "end": 1}\n')
    with pytest.raises(InputError, match=r"bad\.jsonl:1"):
        import_file(ds, bad)


def test_youtube_id() -> None:
    assert youtube_id("https://youtu.be/dQw4w9WgXcQ?t=3") == "dQw4w9WgXcQ"
    assert youtube_id("/tmp/x.mp4") is None
