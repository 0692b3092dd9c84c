"""The training reader: correct frames (by colour), shapes, stored frames, audio, and Ray Data streaming."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from data_pipeline.datasets._clip_decode import AUDIO_RATE, decode_clip
from data_pipeline.datasets.reader import ClipDataset, read_clips, torch_collate
from data_pipeline.datasets.schema import QA, ClipSpec
from data_pipeline.datasets.store import VideoDataset

pytest.importorskip("lance")

RGB = {"red": (255, 0, 0), "green": (0, 128, 0), "blue": (0, 0, 255)}  # ffmpeg's named colours


def _colour(img: np.ndarray) -> str:
    mean = img.reshape(-1, 3).mean(axis=0)
    return min(RGB, key=lambda k: float(np.abs(mean - RGB[k]).sum()))


def test_decode_clip_samples_the_right_times(dmedia) -> None:
    frames = decode_clip(dmedia.rgb, 0.0, 3.0, num_frames=3, size=32)
    assert frames.shape == (3, 32, 32, 3) and frames.dtype == np.uint8
    assert [_colour(f) for f in frames] == ["red", "green", "blue"]
    assert {_colour(f) for f in decode_clip(dmedia.rgb, 1.0, 2.0, num_frames=4, size=16)} == {"green"}
    assert {_colour(f) for f in decode_clip(dmedia.rgb.read_bytes(), 2.05, 3.0, num_frames=2, size=16)} == {
        "blue"
    }


def test_clips_are_decoded_by_the_rule_training_and_inference_share(tmp_path: Path, dmedia) -> None:
    """Reader frames = `frames_to_clip` over every frame of [start, end): evenly spaced frame indices
    (first and last included), squashed to size x size (no crop) - what `train.inference` repeats on
    a caller's frames. The video is 320x240, so a crop would show."""
    import av

    from data_pipeline.datasets.clip_frames import frames_to_clip

    ds = VideoDataset.create(tmp_path / "ds")
    ds.add_video(dmedia.a, clips=[ClipSpec(start=1.0, end=2.5, label="tone")])
    item = ClipDataset(ds.uri, num_frames=5, size=32)[0]
    with av.open(str(dmedia.a)) as container:
        stream = container.streams.video[0]
        shown = [
            f.to_ndarray(format="rgb24")
            for f in container.decode(stream)
            if f.time is not None and 1.0 - 1e-6 <= f.time < 2.5 - 1e-6
        ]
    assert len(shown) > 5
    np.testing.assert_array_equal(item["frames"], frames_to_clip(shown, 5, 32))


@pytest.fixture
def rgb_dataset(tmp_path: Path, dmedia) -> VideoDataset:
    ds = VideoDataset.create(tmp_path / "ds")
    ds.add_video(
        dmedia.rgb,
        clips=[
            ClipSpec(start=0, end=1, label="red"),
            ClipSpec(start=1, end=2, label="green"),
            ClipSpec(
                start=2,
                end=3,
                label="blue",
                split="val",
                text="the blue second",
                qa=[QA(question="Which colour?", answer="blue")],
            ),
        ],
        frames=(2, 16),
    )
    ds.add_video(dmedia.a, clips=[ClipSpec(start=0, end=2, label="tone")])
    return ds


def test_clip_dataset_shapes_labels_and_audio(rgb_dataset: VideoDataset) -> None:
    train = ClipDataset(rgb_dataset.uri, num_frames=4, size=24, with_audio=True)
    assert len(train) == 3 and train.labels == ["blue", "green", "red", "tone"]
    for i in range(len(train)):
        item = train[i]
        assert item["frames"].shape == (4, 24, 24, 3) and item["frames"].dtype == np.uint8
        assert item["audio"].shape == (2 * AUDIO_RATE,) and item["audio"].dtype == np.float32
        assert train.labels[item["label"]] == item["label_name"]
        if item["label_name"] in RGB:
            assert {_colour(f) for f in item["frames"]} == {item["label_name"]}
        else:
            assert np.abs(item["audio"]).max() > 0.1  # the sine tone is there
    # A 2 s clip with audio_seconds=3: its own 2 s of tone, then zeros (not the audio after the clip).
    padded = ClipDataset(
        rgb_dataset.uri, num_frames=1, size=16, with_audio=True, audio_seconds=3.0, filter="label = 'tone'"
    )[0]["audio"]
    assert padded.shape == (3 * AUDIO_RATE,)
    assert np.abs(padded[:AUDIO_RATE]).max() > 0.1
    assert not padded[int(2.05 * AUDIO_RATE) :].any()
    val = ClipDataset(rgb_dataset.uri, split="val", num_frames=2, size=16)
    assert [val[0]["label_name"]] == ["blue"] and val[0]["caption"] == "the blue second"
    assert (val[0]["question"], val[0]["answer"]) == ("Which colour?", "blue")
    assert sorted(train[i]["idx"] for i in range(len(train))) == [0, 1, 2]


def test_stored_frames_are_used_when_the_request_matches(rgb_dataset: VideoDataset) -> None:
    ds = ClipDataset(rgb_dataset.uri, num_frames=2, size=16, filter="label = 'green'")
    stored = rgb_dataset.frames(ds.rows[0]["id"])
    assert stored is not None
    np.testing.assert_array_equal(ds[0]["frames"], stored)
    # the torch DataLoader baseline collates the items into tensors
    torch = pytest.importorskip("torch")
    batch = next(
        iter(torch.utils.data.DataLoader(ClipDataset(rgb_dataset.uri, num_frames=2, size=16), batch_size=3))
    )
    assert tuple(batch["frames"].shape) == (3, 2, 16, 16, 3) and batch["frames"].dtype == torch.uint8


@pytest.mark.integration
@pytest.mark.slow
def test_read_clips_streams_decoded_batches_through_ray_data(rgb_dataset: VideoDataset) -> None:
    from cluster.ray_runtime import LOOPBACK, ray, shutdown_ray

    # address="local": always a private loopback instance. A bare ray.init() joins any Ray that another
    # process on this machine started (it reads /tmp/ray/ray_current_cluster), which a test must not do.
    # Ray gives its raylet a fixed 30 s to register; on a machine at load ~80 that can pass, so start-up
    # (only start-up) is retried once.
    for attempt in (1, 2):
        try:
            ray.init(
                address="local",
                _node_ip_address=LOOPBACK,
                num_cpus=2,
                include_dashboard=False,
                log_to_driver=False,
                configure_logging=False,
            )
            break
        except Exception as e:
            ray.shutdown()  # also stops the processes a half-started node left behind
            if attempt == 2 or "timed out during startup" not in str(e):
                raise
    try:
        v = rgb_dataset.version
        tone = rgb_dataset.clips(label="tone")[0]
        rgb_dataset.add_clips(
            tone.video_sha256, [ClipSpec(start=2, end=4, label="later")]
        )  # newer than v: not read
        ds = read_clips(rgb_dataset.uri, v, "train", num_frames=4, size=32, with_audio=True, batch_size=2)
        seen: list[str] = []
        for batch in ds.iter_batches(batch_size=2, batch_format="numpy"):
            assert batch["frames"].shape[1:] == (4, 32, 32, 3) and batch["frames"].dtype == np.uint8
            assert batch["audio"].shape[1:] == (2 * AUDIO_RATE,)
            assert batch["label"].dtype == np.int64 and batch["idx"].dtype == np.int64
            for label, frames in zip(batch["label_name"], batch["frames"], strict=True):
                if label in RGB:
                    assert {_colour(f) for f in frames} == {label}
            seen += list(batch["label_name"])
        assert sorted(seen) == ["green", "red", "tone"]
        val = read_clips(rgb_dataset.uri, split="val", num_frames=2, size=16)
        torch_batch = next(iter(val.iter_torch_batches(batch_size=1, collate_fn=torch_collate())))
        assert tuple(torch_batch["frames"].shape) == (1, 2, 16, 16, 3) and torch_batch["label_name"] == [
            "blue"
        ]
    finally:
        shutdown_ray()
