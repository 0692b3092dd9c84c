"""Synthetic clips, manifest reading, decoding and the deterministic per-worker batching (no Ray)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cluster.errors import InputError, NotFoundError
from train.data import WorkerClips, decode_clip, label_names, make_decode_fn, read_manifest
from train.synthetic import CLASSES, render_clip


def _centroid_x(frame: np.ndarray, rgb: list[int]) -> float:
    near = np.abs(frame.astype(int) - np.asarray(rgb)).sum(-1) < 30  # pixels of the shape's colour
    _ys, xs = np.nonzero(near)
    return float(xs.mean())


def test_motion_is_what_the_label_says() -> None:
    rng = np.random.default_rng(1)
    for _ in range(5):
        left, meta = render_clip("move_left", rng, size=64, frames=8)
        assert _centroid_x(left[-1], meta["rgb"]) < _centroid_x(left[0], meta["rgb"]) - 5
        right, meta = render_clip("move_right", rng, size=64, frames=8)
        assert _centroid_x(right[-1], meta["rgb"]) > _centroid_x(right[0], meta["rgb"]) + 5


def test_manifest_and_decode(tiny_actions: Path) -> None:
    rows = read_manifest(tiny_actions, "train")
    assert len(rows) == 8 * len(CLASSES) and [r["idx"] for r in rows] == list(range(len(rows)))
    assert len(read_manifest(tiny_actions, "val")) == 2 * len(CLASSES)
    assert label_names(tiny_actions) == list(CLASSES)
    clip = decode_clip(rows[0]["video"], 0.0, rows[0]["end"], 4, 24)
    assert clip.shape == (4, 24, 24, 3) and clip.dtype == np.uint8
    batch = {k: np.array([r[k] for r in rows[:3]]) for k in rows[0]}
    out = make_decode_fn(5, 32)(batch)
    assert out["frames"].shape == (3, 5, 32, 32, 3) and "video" not in out


def test_manifest_errors(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match=r"train\.synthetic"):
        read_manifest(tmp_path / "nope.jsonl", "train")
    bad = tmp_path / "m.jsonl"
    bad.write_text(json.dumps({"video": "x.mp4"}) + "\n")
    with pytest.raises(InputError, match="label"):
        read_manifest(bad, "train")


def test_worker_clips_partition_and_determinism() -> None:
    n = 50
    rows = {"idx": np.arange(n), "label": np.arange(n) % 5}
    parts = []
    for rank in range(2):
        keep = rows["idx"] % 2 == rank
        parts.append(
            WorkerClips(
                {k: v[keep] for k, v in rows.items()}, rank=rank, world=2, total=n, batch_size=4, seed=3
            )
        )
    assert parts[0].steps_per_epoch == parts[1].steps_per_epoch == 6
    assert set(parts[0].rows["idx"]).isdisjoint(parts[1].rows["idx"])
    a = [parts[0].batch_at(s)["idx"].tolist() for s in range(13)]
    b = [parts[0].batch_at(s)["idx"].tolist() for s in range(13)]
    assert a == b  # a resumed run asks for the same steps and gets the same batches
    assert a[0] != a[6]  # a new epoch, a new order
    assert sum(len(x["idx"]) for x in parts[0].iter_eval()) == 25
