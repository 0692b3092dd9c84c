"""Labelling by hand, auto-label drafts (analysis and scene fallback), accept and fix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cluster.errors import InputError, NotFoundError, UnavailableError
from data_pipeline.datasets import labels
from data_pipeline.datasets.autolabel import autolabel, draft_from_analysis
from data_pipeline.datasets.schema import ClipSpec, Span
from data_pipeline.datasets.store import VideoDataset

pytest.importorskip("lance")


def test_label_appends_spans_and_qa_and_validates(tmp_path: Path, dmedia) -> None:
    ds = VideoDataset.create(tmp_path / "ds")
    cid = ds.add_video(dmedia.a, clips=[ClipSpec(start=1, end=3)]).clip_ids[0]
    assert ds.clip(cid).status == "unlabeled"
    labels.label(ds, cid, label="bars", spans=[labels.parse_span("1.2:2:tone:beep")])
    labels.label(ds, cid, qa=[labels.parse_qa("What plays?=a 660 Hz tone")], split="val")
    c = ds.clip(cid)
    assert (c.label, c.split, c.status) == ("bars", "val", "accepted")
    assert [(s.start, s.end, s.label, s.text) for s in c.spans] == [(1.2, 2.0, "tone", "beep")]
    assert c.qa[0].answer == "a 660 Hz tone"
    with pytest.raises(InputError, match="outside clip"):
        labels.label(ds, cid, spans=[Span(start=0.0, end=0.5)])
    with pytest.raises(NotFoundError):
        labels.label(ds, "cnope", label="x")
    with pytest.raises(InputError):
        labels.parse_span("3")
    with pytest.raises(InputError):
        labels.parse_qa("no answer")


def _fake_analysis(path: Path) -> dict[str, Any]:
    assert path.is_file()
    return {
        "video": {},
        "transcript": [
            {"start": 0.0, "end": 1.5, "text": "hello there"},
            {"start": 2.5, "end": 3.5, "text": "bye"},
        ],
        "chapters": [{"start": 0.0, "end": 4.0, "title": "Test card", "summary": "Bars and a tone."}],
        "actions": [{"start": 0.5, "end": 1.8, "label": "waving", "score": 0.9}],
    }


def test_autolabel_from_analysis_then_accept_and_fix(tmp_path: Path, dmedia) -> None:
    ds = VideoDataset.create(tmp_path / "ds")
    r = ds.add_video(
        dmedia.a,
        clips=[ClipSpec(start=0, end=2), ClipSpec(start=2, end=4), ClipSpec(start=3, end=4, label="kept")],
    )
    before = ds.version
    rep = autolabel(ds, analyzer=_fake_analysis)
    assert sorted(rep.drafted) == sorted(r.clip_ids[:2]) and rep.method == {r.video_sha256: "analysis"}
    assert ds.version == before + 1  # one commit for all drafts
    first, second = ds.clip(r.clip_ids[0]), ds.clip(r.clip_ids[1])
    assert (first.status, first.label, first.text) == ("draft", "waving", "hello there")
    assert (second.label, second.text) == ("Test card", "bye")  # no action overlaps: the chapter names it
    assert ds.clip(r.clip_ids[2]).label == "kept"  # accepted labels are never touched
    assert {s.label for s in first.spans} == {"waving", "Test card"}

    labels.accept(ds, [first.id])
    labels.fix(ds, second.id, label="outro", spans=[Span(start=2.5, end=3.0, label="bye")])
    assert ds.clip(first.id).status == "accepted" and ds.clip(first.id).label == "waving"
    fixed = ds.clip(second.id)
    assert (fixed.status, fixed.label) == ("accepted", "outro") and [s.label for s in fixed.spans] == ["bye"]
    assert labels.drafts(ds) == []
    assert set(ds.diff(before).changed_clips) == set(r.clip_ids[:2])


def test_autolabel_falls_back_to_scenes_when_analysis_is_unavailable(tmp_path: Path, dmedia) -> None:
    def missing(_path: Path) -> dict[str, Any]:
        raise UnavailableError("analysis extra not installed")

    ds = VideoDataset.create(tmp_path / "ds")
    r = ds.add_video(dmedia.scenes.path)
    rep = autolabel(ds, analyzer=missing)
    assert rep.method == {r.video_sha256: "scenes"} and "not installed" in rep.notes[r.video_sha256]
    c = ds.clip(r.clip_ids[0])
    assert c.status == "draft" and c.label == "scenes"  # the file name: metadata has no title
    starts = [s.start for s in c.spans]
    assert len(c.spans) == len(dmedia.scenes.cuts) + 1
    for got, want in zip(starts[1:], dmedia.scenes.cuts, strict=True):
        assert got == pytest.approx(want, abs=0.05)


def test_draft_from_analysis_none_when_nothing_overlaps() -> None:
    from data_pipeline.datasets.schema import Clip

    clip = Clip(
        id="c", video_sha256="s", start_s=10, end_s=12, duration_s=2, split="train", status="unlabeled"
    )
    assert draft_from_analysis(clip, _fake_analysis(Path(__file__))) is None
