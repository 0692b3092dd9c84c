"""A model trained from a Lance dataset sees at inference exactly the pixels it was trained on.

Why this exists: the manifest source and inference shared one preprocessing function, but the Lance
source (`data.dataset_uri`) decoded with data_pipeline's own rule - frames at segment-centre times,
shorter side scaled then centre-cropped. For a 16-frame clip decoded to 6 frames that is 3 of 6
frames different (indices 1, 4, 14 instead of 0, 3, 15), and on a non-square video every frame
differs (crop vs squash): measured mean |diff| 0.012-0.033 on [0, 1] pixels, max up to 0.85. Now
both sources and inference go through `data_pipeline.datasets.clip_frames.decode_clip`.

Here the Lance training path itself (`train.data.build_datasets` -> `read_clips` on Ray Data actors)
builds the input tensors; an action model fitted on them is exported as the recipe does, reloaded
with `ActionClassifier`, and fed the same clips from the video files: inputs must be identical and
logits equal up to kernel rounding. The videos are not square (64 x 80), so a crop would show.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from tests.train.test_export_roundtrip import ATOL, RTOL, _export, _fit_head, _trained_like
from train.config import TrainConfig, load_train_config
from train.synthetic import CLASSES, render_clip, write_mp4

pytest.importorskip("lance")

ACTION_YAML = Path(__file__).parents[2] / "train" / "configs" / "action_tiny_cpu.yaml"
_FRAMES = 16  # per video, at train.synthetic.FPS (8): 2 s
# (start, end) of the clips of each video, in seconds; None: to the video's end. The second range
# starts off a keyframe and ends between frames, so seeking and the end rule are exercised too.
_RANGES: tuple[tuple[float, float | None], ...] = ((0.0, None), (0.3, 1.55))


@pytest.fixture(autouse=True)
def _one_thread() -> Any:
    """One intra-op thread: small ops on a loaded 2-core box (see test_export_roundtrip)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def lance_actions(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, Path]]:
    """A Lance dataset of one 64x80 synthetic video per class, two train clips each, one val clip.

    Returns the dataset uri and {video sha256: file}.
    """
    from data_pipeline.datasets.schema import ClipSpec
    from data_pipeline.datasets.store import VideoDataset

    tmp = tmp_path_factory.mktemp("lance-actions")
    rng = np.random.default_rng(11)
    ds = VideoDataset.create(tmp / "ds")
    files: dict[str, Path] = {}
    for label in CLASSES:
        square, _ = render_clip(label, rng, size=80, frames=_FRAMES)
        path = tmp / f"{label}.mp4"
        write_mp4(np.ascontiguousarray(square[:, 8:72]), path)  # H 64, W 80: not square
        files[hashlib.sha256(path.read_bytes()).hexdigest()] = path
        clips = [ClipSpec(start=s, end=e, label=label) for s, e in _RANGES]
        ds.add_video(path, clips=[*clips, ClipSpec(start=1.0, label=label, split="val")])
    return ds.uri, files


def _cfg(uri: str, *extra: str) -> TrainConfig:
    return load_train_config(
        ACTION_YAML,
        [
            "data.synthetic=null",
            f"data.dataset_uri={uri}",
            "model.backbone=tiny_cnn",
            "model.pretrained=false",
            # the model input ends away from the decoded clip (6 frames at 64 px): inference must
            # repeat both stages after the Lance decode
            "curriculum.frames=[[0,4]]",
            "curriculum.resolution=[[0,48]]",
            *extra,
        ],
    )


def _frames_in(path: Path, start: float, end: float) -> np.ndarray:
    """What a caller with its own decoder hands `predict`: every RGB frame shown in [start, end)."""
    import av

    out = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for frame in container.decode(stream):
            if frame.time is not None and start - 1e-6 <= frame.time < end - 1e-6:
                out.append(frame.to_ndarray(format="rgb24"))
    return np.stack(out)


def test_class_names_come_from_the_lance_dataset_even_with_a_manifest_set(
    lance_actions: tuple[str, dict[str, Path]], tmp_path: Path
) -> None:
    """The shipped YAML sets data.manifest; adding data.dataset_uri must take names and clips from
    Lance (sorted names), or the export's label order is not the one the model learned."""
    from data_pipeline.datasets.store import VideoDataset
    from train.run import _prepare_data

    uri, _ = lance_actions
    manifest = tmp_path / "manifest.jsonl"  # another label order, which must not be used
    manifest.write_text('{"video": "x.mp4", "label": 0, "split": "train", "label_name": "zzz"}\n')
    cfg = _cfg(uri, f"data.manifest={manifest}")
    assert _prepare_data(cfg) == sorted(CLASSES)
    assert cfg.data.dataset_version == VideoDataset.open(uri).version  # pinned for the whole run


@pytest.mark.integration  # starts a local Ray (about 10 s of the ~30 s)
def test_lance_trained_export_sees_training_pixels_at_inference(
    ray_local: None, lance_actions: tuple[str, dict[str, Path]], tmp_path: Path
) -> None:
    from train.data import build_datasets
    from train.inference import ActionClassifier
    from train.recipes import get_recipe
    from train.run import _prepare_data

    uri, files = lance_actions
    cfg = _cfg(uri, "data.manifest=null")
    labels = _prepare_data(cfg)
    recipe = get_recipe(cfg, labels)
    step = cfg.optim.max_steps
    # training side: the Lance source of THE seam, through Ray Data's decode actors
    ds = build_datasets(cfg.data, splits=("train",))["train"]
    parts = list(ds.iter_batches(batch_size=64, batch_format="numpy"))
    rows = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    order = np.argsort(rows["idx"])
    rows = {k: v[order] for k, v in rows.items()}
    assert len(rows["idx"]) == len(CLASSES) * len(_RANGES)
    assert rows["frames"].shape[1:] == (cfg.data.num_frames, cfg.data.size, cfg.data.size, 3)
    assert [labels[i] for i in rows["label"]] == list(rows["label_name"])

    model = _trained_like(recipe)
    _fit_head(recipe, model, rows)
    x_train = recipe.video_tensor(rows, step)
    with torch.no_grad():
        ref = model(pixel_values=x_train)["logits"]
    # the model tells the clips apart, so "the reload predicts the same" means something
    assert ref.argmax(-1).tolist() == rows["label"].tolist(), ref

    clf = ActionClassifier.from_pretrained(_export(recipe, model, tmp_path / "hf"))
    assert clf.labels == labels
    assert (clf.num_frames, clf.image_size) == (cfg.data.num_frames, cfg.data.size)
    for i in range(len(rows["idx"])):
        path = files[str(rows["video_sha256"][i])]
        start, end = float(rows["start_s"][i]), float(rows["end_s"][i])
        # a caller's own decode of the clip's frames: inference builds the very training tensor
        frames = _frames_in(path, start, end)
        assert len(frames) > cfg.data.num_frames  # a pick is made, so the frame-selection rule matters
        torch.testing.assert_close(clf.preprocess(frames), x_train[i : i + 1], atol=0, rtol=0)
        torch.testing.assert_close(clf.logits(frames), ref[i], atol=ATOL, rtol=RTOL)
        # the file path: predict_video decodes the clip as the Lance reader did
        by_file = dict(clf.predict_video(path, start, end))
        probs = ref[i].softmax(-1)
        assert [by_file[c] for c in labels] == pytest.approx(probs.tolist(), abs=ATOL)


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.timeout(600)
def test_train_run_on_a_lance_dataset_exports_a_model_inference_feeds_alike(
    ray_local: None, lance_actions: tuple[str, dict[str, Path]], tmp_path: Path
) -> None:
    """`train.run` end to end with only data.dataset_uri added to the shipped YAML (its manifest
    stays set): Ray Train + DeepSpeed for 3 steps, then the export classifies a clip from its file
    exactly as it classifies the frames the Lance reader hands training."""
    from data_pipeline.datasets.reader import ClipDataset
    from train.inference import ActionClassifier
    from train.run import run

    uri, files = lance_actions
    cfg = _cfg(
        uri,
        "name=lance",
        f"storage_path={tmp_path}",
        f"data.manifest={tmp_path / 'absent' / 'manifest.jsonl'}",  # must not be read
        "data.batch_size=4",
        "scaling.num_workers=1",
        "scaling.cpus_per_worker=1",
        "curriculum.unfreeze_at_step=2",
        "optim.max_steps=3",
        "optim.warmup_steps=1",
        "checkpoint.every_n_steps=3",
        "eval.every_n_steps=3",
    )
    summary = run(cfg)
    assert summary["steps"] == 3 and summary["export"], summary
    assert 0.0 <= summary["val_accuracy"] <= 1.0

    clf = ActionClassifier.from_pretrained(summary["export"])
    assert clf.labels == sorted(CLASSES)  # the Lance dataset's label order, not the manifest's
    assert (clf.num_frames, clf.image_size, clf.input_frames, clf.input_size) == (6, 64, 4, 48)
    val = ClipDataset(uri, version=cfg.data.dataset_version, split="val", num_frames=6, size=64)
    for i in range(len(val)):
        item = val[i]
        path = files[item["video_sha256"]]
        from_file = clf.logits(_frames_in(path, item["start_s"], item["end_s"]))
        torch.testing.assert_close(from_file, clf.logits(item["frames"]), atol=0, rtol=0)
        by_file = dict(clf.predict_video(path, item["start_s"], item["end_s"]))
        assert [by_file[c] for c in clf.labels] == pytest.approx(from_file.softmax(-1).tolist(), abs=1e-6)
