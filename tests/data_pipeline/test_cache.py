"""The content-addressed cache: videos stored once, the source index, artifacts computed once."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cluster import metrics
from cluster.errors import InputError
from data_pipeline.cache import Cache, canonical_key

REPO = Path(__file__).resolve().parents[2]


def _stage_file(cache: Cache, data: bytes) -> tuple[Path, str]:
    p = cache.tmp_dir / f"in-{time.monotonic_ns()}.bin"
    p.write_bytes(data)
    return p, hashlib.sha256(data).hexdigest()


def test_layout_and_video_roundtrip(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "c")
    for d in ("videos", "index", "artifacts", "tmp", "locks"):
        assert (tmp_path / "c" / d).is_dir()
    src, sha = _stage_file(cache, b"video bytes")
    assert cache.get_video(sha) is None
    stored = cache.put_video(src, sha, {"sha256": sha, "title": "t"}, ext=".MP4")
    assert stored.path == tmp_path / "c" / "videos" / sha[:2] / sha / "video.mp4"
    assert stored.path.read_bytes() == b"video bytes" and stored.path.stat().st_mode & 0o222 == 0
    assert stored.metadata == {"sha256": sha, "title": "t"}  # bookkeeping keys are hidden
    assert not src.exists()
    again, _ = _stage_file(cache, b"video bytes")
    assert cache.put_video(again, sha, {"sha256": sha, "title": "other"}).metadata["title"] == "t"
    assert not again.exists()  # the duplicate was dropped, the first copy kept
    assert list(cache.tmp_dir.iterdir()) == []


def test_bad_keys_are_refused(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    with pytest.raises(InputError, match="sha256"):
        cache.video_dir("../../etc")
    with pytest.raises(InputError, match="kind"):
        cache.artifact_dir("a" * 64, "../x", {})


def test_index_points_at_stored_videos_only(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    key = canonical_key({"url": "http://x/v.mp4", "format": "b"})
    assert key == canonical_key({"format": "b", "url": "http://x/v.mp4"})  # order does not matter
    missing = "b" * 64
    cache.remember(key, missing, source="http://x/v.mp4")
    assert cache.lookup(key) is None  # the video it names is not stored
    src, sha = _stage_file(cache, b"abc")
    cache.put_video(src, sha, {"sha256": sha})
    cache.remember(key, sha, source="http://x/v.mp4", title="T")
    entry = cache.lookup(key)
    assert entry is not None and entry["sha256"] == sha and entry["title"] == "T"
    cache._index_path(key).write_text("{not json")
    assert cache.lookup(key) is None


def test_get_or_compute_computes_once_and_counts(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cache = Cache(tmp_path)
    sha = "c" * 64
    calls: list[Path] = []

    def compute(out: Path) -> dict:
        calls.append(out)
        (out / "scenes.json").write_text("[1.5, 3.0]")
        return {"cuts": [1.5, 3.0]}

    hits0 = metrics.value("vidray_cache_hits_total", {"kind": "scenes"})
    miss0 = metrics.value("vidray_cache_misses_total", {"kind": "scenes"})
    caplog.set_level("INFO", logger="data_pipeline.cache")
    a = cache.get_or_compute(sha, "scenes", {"threshold": 0.3, "min_s": 1}, compute)
    b = cache.get_or_compute(sha, "scenes", {"min_s": 1, "threshold": 0.3}, compute)
    assert len(calls) == 1 and not a.cached and b.cached
    assert a.path == b.path and a.value == b.value == {"cuts": [1.5, 3.0]}
    assert json.loads((b.path / "scenes.json").read_text()) == [1.5, 3.0]
    assert metrics.value("vidray_cache_hits_total", {"kind": "scenes"}) == hits0 + 1
    assert metrics.value("vidray_cache_misses_total", {"kind": "scenes"}) == miss0 + 1
    assert [getattr(r, "cache_hit", None) for r in caplog.records if r.getMessage().startswith("cache")] == [
        False,
        True,
    ]
    c = cache.get_or_compute(sha, "scenes", {"threshold": 0.5, "min_s": 1}, compute)
    assert not c.cached and c.path != a.path and len(calls) == 2  # other params, other artifact


def test_failed_compute_leaves_nothing(tmp_path: Path) -> None:
    cache = Cache(tmp_path)

    def boom(out: Path) -> None:
        (out / "half.bin").write_bytes(b"x" * 100)
        raise RuntimeError("decoder exploded")

    with pytest.raises(RuntimeError, match="decoder exploded"):
        cache.get_or_compute("d" * 64, "frames", {"fps": 1}, boom)
    assert not cache.artifact_dir("d" * 64, "frames", {"fps": 1}).exists()
    assert list(cache.tmp_dir.iterdir()) == []
    with pytest.raises(TypeError, match="non-JSON"):
        cache.get_or_compute("d" * 64, "frames", {"fps": 1}, lambda out: object())
    none = cache.get_or_compute("d" * 64, "frames", {"fps": 2}, lambda out: None)
    assert none.value is None and cache.get_or_compute("d" * 64, "frames", {"fps": 2}, lambda out: 1).cached


def test_cleanup_stale(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    old = cache.tmp_dir / "download-1-dead"
    old.mkdir()
    (old / "partial.mp4").write_bytes(b"x")
    os.utime(old, (time.time() - 3 * 86400,) * 2)
    fresh = cache.tmp_dir / "download-2-live"
    fresh.mkdir()
    assert cache.cleanup_stale() == 1
    assert not old.exists() and fresh.exists()


_CHILD = """
import sys, time
from pathlib import Path
from data_pipeline.cache import Cache
root, log = Path(sys.argv[1]), Path(sys.argv[2])
def compute(out):
    with open(log, "a") as f:
        f.write("computed\\n")
    time.sleep(1.0)  # long enough that the other process arrives while this one computes
    (out / "data.txt").write_text("ok")
    return 42
a = Cache(root).get_or_compute("e" * 64, "thing", {"p": 1}, compute)
print(a.value, a.cached)
"""


@pytest.mark.slow
def test_two_processes_compute_an_artifact_once(tmp_path: Path) -> None:
    log = tmp_path / "log.txt"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(tmp_path / "c"), str(log)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        outs.append(out.split())
    assert log.read_text() == "computed\n"
    assert sorted(outs) == [["42", "False"], ["42", "True"]]
    assert list((tmp_path / "c" / "tmp").iterdir()) == []


def test_remove_video_and_usage(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    src, sha = _stage_file(cache, b"v" * 1000)
    cache.put_video(src, sha, {"sha256": sha})
    cache.get_or_compute(sha, "frames", {}, lambda out: (out / "f.bin").write_bytes(b"f" * 200) and None)
    key = canonical_key({"url": "u"})
    cache.remember(key, sha)
    use = cache.usage()
    assert use["videos"] >= 1000 and use["artifacts"] >= 200 and use["index"] > 0 and use["tmp"] == 0
    assert cache.remove_video(sha)
    assert cache.get_video(sha) is None and cache.lookup(key) is None
    assert not cache.artifact_dir(sha, "frames", {}).exists()
    assert not cache.remove_video(sha)
    assert cache.usage()["videos"] == 0 and list(cache.tmp_dir.iterdir()) == []
