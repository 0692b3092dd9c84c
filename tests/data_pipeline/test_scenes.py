"""Scene detection: precision/recall over many generated cuts, no false cuts on continuous shots.

Shots come from ffmpeg lavfi sources (test patterns, moving noise, gradients, scrolling text, fractal
zoom, cellular automata) and, where Debian's opencv-doc is installed, real footage (a street camera,
a tree in wind, an animated film clip). Videos vary in size, frame rate and codec.
"""

from __future__ import annotations

import random
import subprocess
from pathlib import Path

import pytest

from cluster.errors import InputError
from data_pipeline.scenes import detect_scenes, pick_cuts
from tests.conftest import Media
from vidray import samples

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf"
REAL = [Path("/usr/share/doc/opencv-doc/examples/data") / n for n in ("vtest.avi", "tree.avi", "Megamind.avi")]


def _lavfi_shots(w: int, h: int, fps: int) -> list[str]:
    own = [
        f"color=c=gray:size={w}x{h}:rate={fps},noise=alls=80:allf=t+u",
        f"gradients=size={w}x{h}:rate={fps}:speed=0.02",
        f"gradients=size={w}x{h}:rate={fps}:speed=0.05:c0=blue:c1=yellow:n=3:seed=7",
        f"color=c=navy:size={w}x{h}:rate={fps},noise=alls=30:allf=t",
        f"smptehdbars=size={w}x{h}:rate={fps}",
        f"cellauto=size={w}x{h}:rate={fps}:rule=30",
    ]
    if Path(FONT).exists():
        own += [
            f"color=c=white:size={w}x{h}:rate={fps},drawtext=fontfile={FONT}:text='def foo(x)\\: return x+1'"
            f":x=10+20*t:y=h/3:fontsize={max(8, h // 10)}:fontcolor=black",
            f"color=c=0x202020:size={w}x{h}:rate={fps},drawtext=fontfile={FONT}:text='Hello vidray %{{n}}'"
            f":x=w/4:y=h/2-10*t:fontsize={max(8, h // 8)}:fontcolor=white",
        ]
    return own + [s.format(w=w, h=h, fps=fps) for s in samples.SCENE_SOURCES]


def make_cut_video(path: Path, rng: random.Random, *, size: tuple[int, int], fps: int, vcodec: str,
                   shots: int, extra: tuple[str, ...] = ()) -> list[float]:
    """Concatenate `shots` random distinct shots; returns the true cut times."""
    w, h = size
    pool: list[tuple[str, str]] = [("lavfi", s) for s in _lavfi_shots(w, h, fps)]
    pool += [("file", str(p)) for p in REAL if p.exists()]
    rng.shuffle(pool)
    inputs: list[str] = []
    parts: list[str] = []
    lengths: list[int] = []
    for i, (kind, src) in enumerate(pool[:shots]):
        frames = round(rng.uniform(0.6, 1.6) * fps)
        lengths.append(frames)
        if kind == "lavfi":
            inputs += ["-f", "lavfi", "-i", src]
        else:
            inputs += ["-ss", f"{rng.uniform(0, 3):.1f}", "-i", src]
        parts.append(f"[{i}:v]scale={w}:{h},fps={fps},format=yuv420p,trim=end_frame={frames},"
                     f"setpts=PTS-STARTPTS,setsar=1[v{i}]")
    n = len(lengths)
    graph = ";".join(parts) + ";" + "".join(f"[v{i}]" for i in range(n)) + f"concat=n={n}:v=1:a=0[v]"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-nostdin", *inputs, "-filter_complex", graph, "-map", "[v]",
                    "-c:v", vcodec, "-pix_fmt", "yuv420p", *extra, str(path)], check=True)
    cuts, t = [], 0
    for frames in lengths[:-1]:
        t += frames
        cuts.append(t / fps)
    return cuts


def _match(truth: list[float], found: list[float], tol: float) -> tuple[int, int, int]:
    """(true positives, false positives, false negatives) with one-to-one matching within `tol`."""
    free = list(found)
    tp = 0
    for c in truth:
        near = [d for d in free if abs(d - c) <= tol]
        if near:
            free.remove(min(near, key=lambda d: abs(d - c)))
            tp += 1
    return tp, len(free), len(truth) - tp


def test_fixture_cuts_are_exact(media: Media) -> None:
    result = detect_scenes(media.scenes.path)
    assert result.cuts == pytest.approx(media.scenes.cuts, abs=1e-6)
    assert [s.start for s in result.scenes] == pytest.approx([0.0, *media.scenes.cuts])
    assert result.scenes[-1].end == pytest.approx(media.scenes.duration, abs=0.05)


CONFIGS = [  # size, fps, codec, container, extra args
    ((320, 240), 25, "libx264", ".mp4", ("-preset", "ultrafast")),
    ((256, 144), 30, "libx264", ".mp4", ("-preset", "veryfast", "-crf", "30")),
    ((176, 144), 24, "libvpx-vp9", ".webm", ("-b:v", "200k", "-deadline", "realtime", "-cpu-used", "8")),
    ((240, 160), 30, "mpeg4", ".avi", ("-q:v", "6")),
    ((144, 256), 25, "libx265", ".mkv", ("-preset", "ultrafast", "-x265-params", "log-level=error")),
    ((200, 150), 15, "libx264", ".mov", ()),
]


@pytest.mark.slow
def test_precision_and_recall_over_many_generated_cuts(tmp_path: Path) -> None:
    rng = random.Random(2026)
    tp = fp = fn = 0
    report = []
    for k, (size, fps, vcodec, ext, extra) in enumerate(CONFIGS):
        path = tmp_path / f"cuts{k}{ext}"
        truth = make_cut_video(path, rng, size=size, fps=fps, vcodec=vcodec, shots=9, extra=extra)
        found = detect_scenes(path, min_scene_s=0.3).cuts
        a, b, c = _match(truth, found, 1.01 / fps)  # within +-1 frame
        tp, fp, fn = tp + a, fp + b, fn + c
        report.append(f"{path.name}: {a} hit, {b} false, {c} missed")
    precision, recall = tp / max(1, tp + fp), tp / max(1, tp + fn)
    assert tp + fn >= 45
    assert precision >= 0.95 and recall >= 0.95, "\n".join(report)


@pytest.mark.parametrize("source", [
    "testsrc2=size=320x240:rate=25",  # moving pattern and counter
    "mandelbrot=size=320x240:rate=25",  # continuous zoom
    "color=c=gray:size=320x240:rate=25,noise=alls=80:allf=t+u",  # every pixel changes every frame
    "gradients=size=320x240:rate=25:speed=0.05",
])
def test_no_false_cuts_on_one_continuous_shot(tmp_path: Path, source: str) -> None:
    path = tmp_path / "one_shot.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-nostdin", "-f", "lavfi", "-i", source, "-t", "8",
                    "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(path)], check=True)
    result = detect_scenes(path)
    assert result.cuts == []
    assert len(result.scenes) == 1


@pytest.mark.skipif(not REAL[0].exists(), reason="Debian opencv-doc is not installed")
def test_no_false_cuts_on_real_continuous_footage(tmp_path: Path) -> None:
    clip = tmp_path / "street.mp4"  # a fixed street camera with pedestrians: one shot
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-nostdin", "-i", str(REAL[0]), "-t", "15",
                    "-c:v", "libx264", "-preset", "ultrafast", str(clip)], check=True)
    assert detect_scenes(clip).cuts == []


def test_min_scene_merges_close_cuts_keeping_the_stronger() -> None:
    import numpy as np

    times = np.arange(100) / 25
    scores = np.full(100, 0.01)
    scores[[30, 38, 70]] = [0.3, 0.6, 0.5]  # 38 - 30 frames = 0.32 s apart
    assert pick_cuts(scores, times, min_scene_s=0.5) == pytest.approx([38 / 25, 70 / 25])
    assert pick_cuts(scores, times, min_scene_s=0.2) == pytest.approx([30 / 25, 38 / 25, 70 / 25])
    scores[50] = 0.05  # under min_score: not a cut however quiet the neighbours
    assert pick_cuts(scores, times) == pytest.approx([38 / 25, 70 / 25])


def test_bad_arguments(media: Media) -> None:
    with pytest.raises(InputError, match="threshold"):
        detect_scenes(media.scenes.path, threshold=0.5)
    with pytest.raises(InputError, match="does not exist"):
        detect_scenes(media.dir / "missing.mp4")


@pytest.mark.skipif(not REAL[2].exists(), reason="Debian opencv-doc is not installed")
def test_real_cuts_in_an_animated_film_clip() -> None:
    # Shot/reverse-shot dialogue in one dim, warm-lit room: similar palettes on both sides of each
    # cut. The three cuts were checked by eye (frames before/after each one differ in framing).
    fps = 24000 / 1001
    result = detect_scenes(REAL[2])
    assert result.cuts == pytest.approx([99 / fps, 155 / fps, 201 / fps], abs=1.01 / fps)
