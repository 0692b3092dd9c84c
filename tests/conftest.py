"""Shared fixtures: generated media with known ground truth, and a loopback HTTP server for it.

Media are generated once per test session (a few seconds with ffmpeg) into a temporary folder.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

# Tests never touch a real network; model hubs are offline.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

from vidray import samples  # noqa: E402


@dataclass
class Media:
    dir: Path
    scenes: samples.SceneVideo  # H.264 MP4 with known cuts and a sine audio track
    vfr: Path
    vfr_times: list[float]
    speech: Path
    speech_text: str
    webm_vp9: Path
    webm_vp8: Path
    avi: Path
    mov: Path
    mkv_h265: Path
    mp4_h265: Path
    silent: Path  # no audio stream


SPEECH_TEXT = "The quick brown fox jumps over the lazy dog. Vidray turns videos into answers."


@pytest.fixture(scope="session")
def media(tmp_path_factory: pytest.TempPathFactory) -> Media:
    d = tmp_path_factory.mktemp("media")
    x265 = ["-x265-params", "log-level=error"]
    vfr, vfr_times = samples.make_vfr_video(d / "vfr.mp4")
    return Media(
        dir=d,
        scenes=samples.make_scene_video(d / "scenes.mp4"),
        vfr=vfr,
        vfr_times=vfr_times,
        speech=samples.make_speech_video(d / "speech.mp4", SPEECH_TEXT),
        speech_text=SPEECH_TEXT,
        webm_vp9=samples.make_video(d / "clip_vp9.webm", vcodec="libvpx-vp9", acodec="libopus", duration=2),
        webm_vp8=samples.make_video(d / "clip_vp8.webm", vcodec="libvpx", acodec="libvorbis", duration=2),
        avi=samples.make_video(d / "clip.avi", vcodec="mpeg4", acodec="mp3", duration=2),
        mov=samples.make_video(d / "clip.mov", acodec="aac", duration=2),
        mkv_h265=samples.make_video(d / "clip.mkv", vcodec="libx265", acodec="aac", duration=2, extra=x265),
        mp4_h265=samples.make_video(d / "clip_h265.mp4", vcodec="libx265", acodec=None, duration=2,
                                    extra=[*x265, "-tag:v", "hvc1"]),
        silent=samples.make_video(d / "silent.mp4", acodec=None, duration=3),
    )


@pytest.fixture(scope="session")
def media_server(media: Media) -> Iterator[str]:
    """Base URL of a loopback HTTP server over the media folder."""
    with samples.serve_directory(media.dir) as url:
        yield url


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh vidray data dir (cache, state) for one test."""
    d = tmp_path / "vidray-data"
    monkeypatch.setenv("VIDRAY_DATA_DIR", str(d))
    return d
