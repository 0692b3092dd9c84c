"""The Ray Data pipeline end to end on a local loopback Ray, and its stages without Ray."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from cluster.config import load_settings
from data_pipeline.pipeline import PipelineConfig, read_sources, run_pipeline
from data_pipeline.stages import make_ingest_fn, make_probe_fn, make_sample_fn


@pytest.fixture(scope="module")
def ray_local():
    from cluster.ray_runtime import init_ray, shutdown_ray

    init_ray(num_cpus=2, object_store_memory=300 * 1024**2)
    yield
    shutdown_ray()


def test_stages_without_ray(media, data_dir, tmp_path) -> None:
    from data_pipeline.sampling import SamplingSpec

    settings = load_settings(env={"VIDRAY_DATA_DIR": str(data_dir)})
    row = make_probe_fn(settings)(make_ingest_fn(settings)({"source": str(media.webm_vp9)}))
    assert row["error"] is None and row["video_codec"] == "vp9" and row["audio_codec"] == "opus"
    frames = list(make_sample_fn(SamplingSpec(strategy="uniform", num=3), tmp_path / "err")(row))
    assert [f["image"].shape[2] for f in frames] == [3, 3, 3]
    bad = make_probe_fn(settings)(make_ingest_fn(settings)({"source": str(tmp_path / "nope.mp4")}))
    assert bad["stage"] == "ingest" and "nope.mp4" in bad["error"]


@pytest.mark.integration
def test_pipeline_writes_tables_and_reports_bad_sources(media, media_server, data_dir, tmp_path, monkeypatch,
                                                         ray_local) -> None:
    monkeypatch.setenv("VIDRAY_ALLOW_HOSTS", "127.0.0.1")
    settings = load_settings()
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 1000)
    sources = [f"{media_server}/scenes.mp4", str(media.webm_vp8), str(media.silent), str(bad),
               "ftp://example.com/x.mp4"]
    out = tmp_path / "out"
    summary = run_pipeline(sources, PipelineConfig(out=out, strategy="fps", fps=1, max_side=96), settings)
    assert summary["sources"] == 5 and summary["succeeded"] == 3 and summary["failed"] == 2
    frames = pq.read_table(out / "frames").to_pylist()
    by_video: dict[str, list[float]] = {}
    for f in frames:
        by_video.setdefault(f["source"], []).append(f["t"])
        assert f["strategy"] == "fps" and f["image"][:2] == b"\xff\xd8"  # JPEG bytes
        assert max(f["width"], f["height"]) == 96
    assert len(by_video[f"{media_server}/scenes.mp4"]) == pytest.approx(media.scenes.duration, abs=1)
    assert set(by_video) == {sources[0], sources[1], sources[2]}
    audio = pq.read_table(out / "audio").to_pylist()
    assert {a["source"] for a in audio} == {sources[0], sources[1]}  # the silent video has no audio rows
    assert all(a["audio"][:4] == b"RIFF" and a["sample_rate"] == 16000 for a in audio)
    errors = pq.read_table(out / "errors.parquet").to_pylist()
    assert {e["source"] for e in errors} == {str(bad), "ftp://example.com/x.mp4"}
    assert all(e["error"] for e in errors)
    videos = pq.read_table(out / "videos.parquet").to_pylist()
    assert [v["status"] for v in videos].count("ok") == 3
    assert json.loads((out / "summary.json").read_text())["frames"] == len(frames)


@pytest.mark.integration
@pytest.mark.slow
def test_pipeline_streams_many_videos(data_dir, tmp_path, ray_local) -> None:
    """50+ distinct videos through a 300 MB object store: every source accounted for."""
    from vidray import samples

    src_dir = tmp_path / "many"
    src_dir.mkdir()
    paths = []
    for i in range(52):
        p = samples.make_video(src_dir / f"v{i:02d}.mp4", duration=1.0, size=(128, 96), fps=10, acodec=None,
                               source="testsrc2", extra=["-metadata", f"title=clip{i}"])
        paths.append(str(p))
    listing = tmp_path / "sources.txt"
    listing.write_text("# many\n" + "\n".join(paths) + "\n\n")
    sources = read_sources(listing)
    assert len(sources) == 52
    summary = run_pipeline(sources, PipelineConfig(out=tmp_path / "o", num=4, max_side=64, audio_segment_s=None),
                           load_settings())
    assert summary["succeeded"] == 52 and summary["frames"] == 52 * 4


def test_existing_output_needs_overwrite(tmp_path) -> None:
    from cluster.errors import InputError

    (tmp_path / "o").mkdir()
    with pytest.raises(InputError, match="--overwrite"):
        run_pipeline(["x"], PipelineConfig(out=tmp_path / "o"), load_settings(env={}))


def test_run_entry_point_errors(tmp_path: Path) -> None:
    from data_pipeline.run import main

    empty = tmp_path / "s.txt"
    empty.write_text("# nothing\n")
    assert main(["--sources", str(empty), "--out", str(tmp_path / "o")]) == 2
    assert main(["--sources", str(tmp_path / "missing.txt"), "--out", str(tmp_path / "o")]) == 2
