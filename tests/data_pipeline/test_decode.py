"""VideoReader: every fixture container decodes, timestamps are true pts (VFR too), resize, memory."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from cluster.errors import InputError
from data_pipeline.decode import Backend, VideoReader, output_size
from data_pipeline.probe import probe
from tests.conftest import Media
from vidray import samples

FORMATS = ["scenes", "webm_vp9", "webm_vp8", "avi", "mov", "mkv_h265", "mp4_h265"]


def _path(media: Media, name: str) -> Path:
    return media.scenes.path if name == "scenes" else getattr(media, name)


@pytest.mark.parametrize("name", FORMATS)
def test_every_fixture_format_decodes_all_frames(media: Media, name: str) -> None:
    path = _path(media, name)
    meta = probe(path)
    with VideoReader(path) as r:
        assert r.backend == "torchcodec"
        assert (r.width, r.height) == (meta.width, meta.height)
        frames = [f for chunk in r.iter_frames(chunk=16) for f in chunk]
        assert len(frames) == meta.num_frames
        assert all(f.image.shape == (meta.height, meta.width, 3) and f.image.dtype == np.uint8 for f in frames)
        ts = [f.t for f in frames]
        assert ts == sorted(ts) and len(set(ts)) == len(ts)
        assert [f.index for f in frames] == list(range(len(frames)))
        assert abs(r.duration_s - meta.duration_s) < 0.05
        mid = r.frames_at([r.begin_s + r.duration_s / 2])[0]
        assert mid.t in ts and mid.index == ts.index(mid.t)
        # The frame returned for a time is the same pixels as the full decode gave for that pts.
        assert np.array_equal(mid.image, frames[ts.index(mid.t)].image)


@pytest.mark.parametrize("backend", ["torchcodec", "pyav"])
def test_vfr_timestamps_are_true_pts(media: Media, backend: Backend) -> None:
    with VideoReader(media.vfr, backend=backend) as r:
        ts = [f.t for chunk in r.iter_frames(chunk=7) for f in chunk]
        assert ts == pytest.approx(media.vfr_times, abs=1e-6)
        # Between two frames, the earlier one is on screen (10 fps part, then 30 fps part).
        got = r.frames_at([0.05, 0.95, 1.01, 1.5, 1.99])
        assert [f.t for f in got] == pytest.approx([0.0, 0.9, 1.0, 1.5, 1 + 29 / 30], abs=1e-6)
        assert [f.index for f in got] == [0, 9, 10, 25, 39]
        part = [f.t for chunk in r.iter_frames(start=0.95, end=1.1) for f in chunk]
        assert part == pytest.approx([1.0, 1 + 1 / 30, 1 + 2 / 30], abs=1e-6)


def test_pyav_fallback_matches_torchcodec(media: Media) -> None:
    times = [0.0, 1.3, 4.1, 7.77, 9.0]
    with VideoReader(media.scenes.path, max_side=160) as a, \
            VideoReader(media.scenes.path, max_side=160, backend="pyav") as b:
        assert (a.width, a.height) == (b.width, b.height)
        fa, fb = a.frames_at(times), b.frames_at(times)
        assert [f.t for f in fa] == pytest.approx([f.t for f in fb])
        for x, y in zip(fa, fb, strict=True):  # different scalers: close, not bit-exact
            assert np.abs(x.image.astype(int) - y.image.astype(int)).mean() < 6


def test_times_are_clamped_and_late_start_streams_work(tmp_path: Path) -> None:
    path = tmp_path / "offset.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25:duration=2",
                    "-c:v", "libx264", "-output_ts_offset", "1.5", str(path)], check=True)
    for backend in ("torchcodec", "pyav"):
        with VideoReader(path, backend=backend) as r:
            assert r.begin_s == pytest.approx(1.5)
            first, last = r.frames_at([0.0, 99.0])
            assert first.t == pytest.approx(1.5) and first.index == 0
            assert last.t == pytest.approx(1.5 + 49 / 25) and last.index == 49
            assert next(r.iter_frames())[0].t == pytest.approx(1.5)


def test_resize_honours_max_side_and_aspect(media: Media) -> None:
    for backend in ("torchcodec", "pyav"):
        with VideoReader(media.scenes.path, max_side=100, backend=backend) as r:
            img = r.frames_at([1.0])[0].image
            assert img.shape == (r.height, r.width, 3)
            assert max(r.width, r.height) <= 100 and r.width == 100
            assert abs(r.width / r.height - 320 / 240) < 2 / r.height  # within rounding to even sizes
    assert output_size(1080, 1920, 512) == (288, 512)  # portrait
    assert output_size(320, 240, 1000) == (320, 240)  # never enlarges


def test_keyframe_times_are_10x_faster_than_full_decode(tmp_path: Path) -> None:
    path = samples.make_video(tmp_path / "gop.mp4", duration=8, size=(480, 270), acodec=None,
                              extra=["-g", "50", "-preset", "ultrafast"])
    with VideoReader(path) as r:
        t0 = time.perf_counter()
        n = sum(len(c) for c in r.iter_frames())
        full = time.perf_counter() - t0
    best = float("inf")
    for _ in range(3):
        with VideoReader(path) as r:
            t0 = time.perf_counter()
            keys = r.keyframe_times()
            best = min(best, time.perf_counter() - t0)
    assert n == 200
    assert keys == pytest.approx([0, 2, 4, 6], abs=1e-6)
    assert full / best >= 10, f"keyframe scan {best * 1e3:.1f} ms vs full decode {full * 1e3:.1f} ms"


def _rss_mb() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * 4096 / 2**20


@pytest.mark.slow
def test_chunked_iteration_holds_bounded_memory(tmp_path: Path) -> None:
    # 750 frames of 640x360 RGB = 520 MB if held; one 16-frame chunk is 11 MB.
    path = samples.make_video(tmp_path / "long.mp4", duration=30, size=(640, 360), acodec=None,
                              extra=["-preset", "ultrafast"])
    with VideoReader(path) as r:
        before = _rss_mb()
        peak, n = before, 0
        for chunk in r.iter_frames(chunk=16):
            n += len(chunk)
            peak = max(peak, _rss_mb())
    assert n == 750
    assert peak - before < 150, f"RSS grew {peak - before:.0f} MB while iterating"


def test_bad_inputs_raise_input_error(tmp_path: Path, media: Media) -> None:
    with pytest.raises(InputError, match="does not exist"):
        VideoReader(tmp_path / "nope.mp4")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"this is not a video" * 100)
    with pytest.raises(InputError, match=r"junk\.mp4"):
        VideoReader(junk)
    with VideoReader(media.scenes.path) as r:
        with pytest.raises(InputError, match="chunk"):
            next(r.iter_frames(chunk=0))
        with pytest.raises(InputError, match="finite"):
            r.frames_at([float("nan")])
    with pytest.raises(InputError, match="max_side"):
        VideoReader(media.scenes.path, max_side=1)


@pytest.mark.parametrize("name", FORMATS)
def test_pyav_frames_at_agrees_with_torchcodec_on_every_format(media: Media, name: str) -> None:
    path = _path(media, name)
    with VideoReader(path) as a, VideoReader(path, backend="pyav") as b:
        times = [a.begin_s + a.duration_s * x for x in (0.0, 0.13, 0.5, 0.51, 0.9, 1.0)]
        fa, fb = a.frames_at(times), b.frames_at(times)  # sparse and dense requests mixed
        assert [f.t for f in fb] == pytest.approx([f.t for f in fa], abs=1e-6)
        assert [f.index for f in fb] == [f.index for f in fa]
        for x, y in zip(fa, fb, strict=True):  # PyAV skips non-reference frames on the way: no damage
            assert np.abs(x.image.astype(int) - y.image.astype(int)).mean() < 3
