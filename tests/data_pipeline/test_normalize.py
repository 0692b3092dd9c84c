"""normalize: re-encode to H.264/AAC MP4 at a bounded height; skip files that already conform."""

from __future__ import annotations

from pathlib import Path

import pytest

from cluster.config import NormalizeSettings
from cluster.errors import InputError
from data_pipeline.normalize import needs_normalize, normalize_video, parse_bitrate
from data_pipeline.probe import probe
from vidray import samples


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("norm")
    return {
        "webm": samples.make_video(d / "a.webm", duration=1, size=(320, 240), fps=10, vcodec="libvpx-vp9",
                                   acodec="libopus"),
        "silent_mp4": samples.make_video(d / "b.mp4", duration=1, size=(160, 120), fps=10, acodec=None),
        "big_mp4": samples.make_video(d / "c.mp4", duration=1, size=(320, 240), fps=10),
    }  # fmt: skip


def test_reencodes_to_h264_aac_mp4_at_max_height(clips: dict[str, Path], tmp_path: Path) -> None:
    s = NormalizeSettings(enabled=True, max_height=120, video_bitrate="300k")
    meta = probe(clips["webm"])
    assert needs_normalize(meta, s)
    out = normalize_video(clips["webm"], tmp_path / "n.mp4", s, duration_s=meta.duration_s)
    m = probe(out)
    assert (m.video_codec, m.width, m.height) == ("h264", 160, 120)
    assert m.audio is not None and m.audio.codec == "aac"
    assert m.container.startswith("mov,mp4")
    assert m.duration_s == pytest.approx(meta.duration_s, abs=0.15)
    assert [p.name for p in tmp_path.iterdir()] == ["n.mp4"]


def test_never_upscales_and_keeps_silent_videos_silent(clips: dict[str, Path], tmp_path: Path) -> None:
    s = NormalizeSettings(enabled=True, max_height=720, crf=30)
    m = probe(normalize_video(clips["silent_mp4"], tmp_path / "s.mp4", s))
    assert (m.width, m.height, m.audio) == (160, 120, None)


def test_needs_normalize_skips_conforming_files(clips: dict[str, Path]) -> None:
    small = probe(clips["silent_mp4"])
    assert not needs_normalize(small, NormalizeSettings(enabled=False, max_height=64))
    assert not needs_normalize(small, NormalizeSettings(enabled=True, max_height=240))
    assert needs_normalize(small, NormalizeSettings(enabled=True, max_height=64))
    assert needs_normalize(probe(clips["webm"]), NormalizeSettings(enabled=True))


def test_corrupt_input_fails_cleanly(tmp_path: Path) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\0" * 5000)
    with pytest.raises(InputError, match=r"bad\.mp4: re-encoding to H\.264/AAC failed"):
        normalize_video(bad, tmp_path / "out.mp4", NormalizeSettings(enabled=True))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.mp4"]


def test_parse_bitrate() -> None:
    assert (
        parse_bitrate("2M") == 2_000_000 and parse_bitrate("128k") == 128_000 and parse_bitrate("500") == 500
    )
    assert parse_bitrate("1.5M") == 1_500_000
    with pytest.raises(InputError, match=r"ingest\.normalize"):
        parse_bitrate("fast")
