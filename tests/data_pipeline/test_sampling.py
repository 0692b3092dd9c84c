"""Sampling strategies: the right frames at true timestamps, validation, the frame cap, streaming."""

from __future__ import annotations

import types

import pytest
from pydantic import ValidationError

from cluster.errors import InputError
from data_pipeline.decode import VideoReader
from data_pipeline.sampling import SamplingSpec, sample_frames, uniform_times
from tests.conftest import Media


def test_uniform_takes_slice_centres(media: Media) -> None:
    frames = list(sample_frames(media.scenes.path, SamplingSpec(num=8)))
    dur = media.scenes.duration
    assert len(frames) == 8
    for f, want in zip(frames, uniform_times(0.0, dur, 8), strict=True):
        assert want - 1 / 25 < f.t <= want + 1e-6  # the frame on screen at the centre
        assert f.t * 25 == pytest.approx(round(f.t * 25))  # a real frame pts
        assert f.index == round(f.t * 25)
    assert [f.t for f in frames] == sorted(f.t for f in frames)


def test_uniform_default_is_16_and_more_than_frames_gives_every_frame(media: Media) -> None:
    assert len(list(sample_frames(media.webm_vp8, SamplingSpec()))) == 16
    every = list(sample_frames(media.webm_vp8, SamplingSpec(num=500)))
    assert len(every) == 50 and len({f.t for f in every}) == 50


def test_fps_strategy_on_constant_and_variable_rate(media: Media) -> None:
    frames = list(sample_frames(media.scenes.path, SamplingSpec(strategy="fps", fps=2)))
    # 25 fps: the frame on screen at k/2 s is frame floor(12.5 k) (0.5 s falls between 0.48 and 0.52).
    assert [f.t for f in frames] == pytest.approx([(25 * k // 2) / 25 for k in range(19)], abs=1e-6)
    assert len(list(sample_frames(media.scenes.path, SamplingSpec(strategy="fps")))) == 10  # default 1 fps
    vfr = list(sample_frames(media.vfr, SamplingSpec(strategy="fps", fps=4)))
    # 0, .25, ... 1.75: below 1 s frames are every 0.1 s, above every 1/30 s; the frame on screen wins.
    want = [0.0, 0.2, 0.5, 0.7, 1.0, 1 + 7 / 30, 1 + 15 / 30, 1 + 22 / 30]
    assert [f.t for f in vfr] == pytest.approx(want, abs=1e-6)
    dense = list(sample_frames(media.vfr, SamplingSpec(strategy="fps", fps=60)))
    assert [f.t for f in dense] == pytest.approx(media.vfr_times, abs=1e-6)


def test_keyframes_strategy_matches_the_packet_index(media: Media) -> None:
    with VideoReader(media.scenes.path) as r:
        keys = r.keyframe_times()
    frames = list(sample_frames(media.scenes.path, SamplingSpec(strategy="keyframes", max_side=64)))
    assert [f.t for f in frames] == pytest.approx(keys)
    assert all(max(f.image.shape[:2]) <= 64 for f in frames)


def test_scenes_strategy_gives_one_frame_inside_each_scene(media: Media) -> None:
    frames = list(sample_frames(media.scenes.path, SamplingSpec(strategy="scenes")))
    bounds = [0.0, *media.scenes.cuts, media.scenes.duration]
    assert len(frames) == len(bounds) - 1
    for f, a, b in zip(frames, bounds, bounds[1:], strict=False):
        assert a < f.t < b


def test_sample_frames_streams() -> None:
    assert isinstance(sample_frames("whatever.mp4", SamplingSpec()), types.GeneratorType)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"strategy": "fps", "num": 4}, "--num applies only to --strategy uniform"),
    ({"strategy": "uniform", "fps": 2.0}, "--fps applies only to --strategy fps"),
    ({"strategy": "fps", "fps": 0}, "--fps must be > 0"),
    ({"num": 0}, "--num must be >= 1"),
    ({"max_side": 4}, "--max-side must be >= 16"),
    ({"num": 20, "max_frames": 10}, "over max_frames"),
    ({"strategy": "everything"}, "strategy"),
    ({"nmu": 3}, "nmu"),
])
def test_spec_validation_names_the_flag(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        SamplingSpec(**kwargs)


def test_max_frames_is_a_hard_cap(media: Media) -> None:
    with pytest.raises(InputError, match="over max_frames=20"):
        list(sample_frames(media.scenes.path, SamplingSpec(strategy="fps", fps=25, max_frames=20)))
    with pytest.raises(InputError, match="does not exist"):
        list(sample_frames(media.dir / "missing.mp4", SamplingSpec()))
