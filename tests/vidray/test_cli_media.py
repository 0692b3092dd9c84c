"""The media commands as a user runs them: real files, a loopback HTTP server, the cache."""

from __future__ import annotations

import json
import subprocess
import sys
import wave
from pathlib import Path

import pytest

from cluster import metrics
from vidray.cli import main

PROBE_KEYS = {"duration_s", "width", "height", "fps", "is_vfr", "video_codec", "audio", "container",
              "size_bytes", "sha256", "rotation", "id"}


def run_cli(*args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    rc = main(list(args))
    out, err = capsys.readouterr()
    return rc, out, err


def test_probe_url_json(media, media_server, data_dir, monkeypatch, capsys) -> None:
    monkeypatch.setenv("VIDRAY_ALLOW_HOSTS", "127.0.0.1")
    rc, out, _ = run_cli("probe", f"{media_server}/scenes.mp4", "--json", capsys=capsys)
    assert rc == 0
    doc = json.loads(out)
    assert PROBE_KEYS <= doc.keys()
    assert doc["width"] == 320 and doc["height"] == 240
    assert doc["duration_s"] == pytest.approx(media.scenes.duration, abs=0.05)
    assert doc["audio"]["sample_rate"] == 44100 and doc["audio"]["channels"] == 1
    assert doc["is_vfr"] is False


def test_probe_vfr_and_no_audio(media, data_dir, capsys) -> None:
    rc, out, _ = run_cli("probe", str(media.vfr), "--json", capsys=capsys)
    assert rc == 0 and json.loads(out)["is_vfr"] is True
    rc, out, _ = run_cli("probe", str(media.silent), "--json", capsys=capsys)
    assert json.loads(out)["audio"] is None


@pytest.mark.parametrize(
    ("strategy", "extra", "expected"),
    [("uniform", ["--num", "5"], 5), ("fps", ["--fps", "2"], None), ("keyframes", [], None), ("scenes", [], 4)],
)
def test_frames_strategies(media, data_dir, tmp_path, capsys, strategy, extra, expected) -> None:
    out_dir = tmp_path / f"frames-{strategy}"
    rc, _, err = run_cli("frames", str(media.scenes.path), "--strategy", strategy, *extra, "--max-side", "160",
                         "--out", str(out_dir), capsys=capsys)
    assert rc == 0, err
    index = json.loads((out_dir / "index.json").read_text())
    frames = index["frames"]
    if expected is not None:
        assert len(frames) == expected
    if strategy == "fps":
        assert len(frames) == pytest.approx(media.scenes.duration * 2, abs=1)
    times = [f["t"] for f in frames]
    assert times == sorted(times) and all(0 <= t <= media.scenes.duration for t in times)
    for f in frames:
        assert (out_dir / f["file"]).stat().st_size > 0
    from PIL import Image

    assert max(Image.open(out_dir / frames[0]["file"]).size) == 160
    if strategy == "scenes":  # one frame inside each true scene
        bounds = [0.0, *media.scenes.cuts, media.scenes.duration]
        for (lo, hi), t in zip(zip(bounds, bounds[1:], strict=False), times, strict=True):
            assert lo <= t < hi


def test_frames_vfr_timestamps_are_true_pts(media, data_dir, tmp_path, capsys) -> None:
    out_dir = tmp_path / "vfr"
    rc, _, err = run_cli("frames", str(media.vfr), "--strategy", "fps", "--fps", "10", "--out", str(out_dir),
                         capsys=capsys)
    assert rc == 0, err
    times = [f["t"] for f in json.loads((out_dir / "index.json").read_text())["frames"]]
    for t in times:  # every reported time is a real frame time of the VFR stream
        assert min(abs(t - true) for true in media.vfr_times) < 1e-3


def test_scenes_json(media, data_dir, capsys) -> None:
    rc, out, _ = run_cli("scenes", str(media.scenes.path), "--json", capsys=capsys)
    assert rc == 0
    doc = json.loads(out)
    assert len(doc["cuts"]) == len(media.scenes.cuts)
    for found, true in zip(doc["cuts"], media.scenes.cuts, strict=True):
        assert abs(found - true) <= 1 / media.scenes.fps + 1e-6
    assert doc["scenes"][0]["start"] == pytest.approx(0, abs=0.05)
    assert doc["scenes"][-1]["end"] == pytest.approx(media.scenes.duration, abs=0.05)


def test_second_request_is_served_from_cache(media, data_dir, tmp_path, capsys) -> None:
    before = metrics.value("vidray_cache_hits_total", {"kind": "scenes"})
    run_cli("scenes", str(media.scenes.path), "--json", capsys=capsys)
    run_cli("scenes", str(media.scenes.path), "--json", capsys=capsys)
    assert metrics.value("vidray_cache_hits_total", {"kind": "scenes"}) >= before + 1


def test_audio_wav(media, data_dir, tmp_path, capsys) -> None:
    wav = tmp_path / "a.wav"
    rc, _, err = run_cli("audio", str(media.speech), "--out", str(wav), capsys=capsys)
    assert rc == 0, err
    with wave.open(str(wav)) as w:
        assert w.getframerate() == 16000 and w.getnchannels() == 1 and w.getsampwidth() == 2
        assert w.getnframes() > 16000


@pytest.mark.parametrize("kind", ["empty", "text", "truncated", "missing"])
def test_bad_input_one_line_error_nothing_written(media, data_dir, tmp_path, capsys, kind) -> None:
    bad = tmp_path / f"bad-{kind}.mp4"
    if kind == "empty":
        bad.write_bytes(b"")
    elif kind == "text":
        bad.write_text("hello, I am not a video\n" * 100)
    elif kind == "truncated":
        bad.write_bytes(media.scenes.path.read_bytes()[:4000])
    out_dir = tmp_path / "out"
    for cmd in (["probe", str(bad), "--json"], ["frames", str(bad), "--out", str(out_dir)],
                ["scenes", str(bad), "--json"], ["audio", str(bad), "--out", str(tmp_path / "x.wav")]):
        rc, out, err = run_cli(*cmd, capsys=capsys)
        assert rc != 0, cmd
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1 and "error" in lines[0], err
        assert out == ""
    assert not out_dir.exists() and not (tmp_path / "x.wav").exists()


def test_audio_of_silent_video_is_a_clear_error(media, data_dir, tmp_path, capsys) -> None:
    rc, _, err = run_cli("audio", str(media.silent), "--out", str(tmp_path / "x.wav"), capsys=capsys)
    assert rc == 2 and "no audio" in err
    assert not (tmp_path / "x.wav").exists()


def test_ssrf_refused_by_default(data_dir, monkeypatch, capsys) -> None:
    monkeypatch.delenv("VIDRAY_ALLOW_HOSTS", raising=False)
    rc, _, err = run_cli("probe", "http://127.0.0.1:9/x.mp4", capsys=capsys)
    assert rc != 0 and "VIDRAY_ALLOW_HOSTS" in err


def test_console_script_entry_point(media, data_dir) -> None:
    proc = subprocess.run([sys.executable, "-m", "vidray", "probe", str(media.mov), "--json"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["container"].startswith("mov")
    proc = subprocess.run([sys.executable, "-m", "vidray", "frames", "x.mp4", "--strategy", "bogus", "--out", "o"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "invalid choice" in proc.stderr
    assert not Path("o").exists()
