"""Training input: clips decoded by Ray Data, handed to Ray Train workers.

Start here: `build_datasets(cfg)` is the ONE seam between storage and training. It returns a Ray
Dataset per split whose rows are decoded clips:

    {"idx": int, "clip_id": str, "frames": uint8 [T, H, W, 3], "label": int, + text columns}

Today it reads a JSONL clip manifest (train/synthetic.py writes one) or, when `data.dataset_uri` is
set, the versioned Lance dataset (`data_pipeline.datasets.read_clips`). Both decode a clip with the
same function (`data_pipeline.datasets.clip_frames.decode_clip`), the one inference repeats, so the
export means the same thing whichever source trained it. Swapping in a new reader means editing
only `build_datasets` - and keeping that decode.

Stages:
  # Stage 1: list clips (driver, 1:1 rows from the manifest)
  # Stage 2: decode + resize + uniform frame sampling (Ray Data map_batches, 1:1, fractional CPUs)
  # Stage 3: per worker, `WorkerClips` (deterministic) or `iter_stream` (streaming split)

Why two worker-side modes: Ray Data's `streaming_split` hands blocks to whichever worker asks first,
so which clips a worker sees differs between runs. Exact resume (same losses after a restart) needs
a fixed assignment, so the deterministic mode gives every worker the whole (small, materialized)
dataset and keeps the rows with `idx % world_size == rank`, in a seeded order per epoch.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from cluster.errors import InputError, NotFoundError
from train.config import DataSettings

TEXT_COLUMNS = ("caption", "question", "answer", "label_name")


def read_manifest(path: str | Path, split: str, max_clips: int | None = None) -> list[dict[str, Any]]:
    """Rows of one split from a JSONL manifest, numbered by `idx` in file order."""
    p = Path(path)
    if not p.is_file():
        raise NotFoundError(
            f"clip manifest {p} does not exist; generate one with `python -m train.synthetic DIR`"
        )
    rows: list[dict[str, Any]] = []
    for n, line in enumerate(p.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise InputError(f"{p}:{n} is not JSON: {e}") from e
        missing = {"video", "label", "split"} - set(row)
        if missing:
            raise InputError(
                f"{p}:{n} lacks {sorted(missing)}; each row needs video, label, split (start/end optional)"
            )
        if row["split"] != split:
            continue
        video = Path(row["video"])
        if not video.is_absolute():
            video = p.parent / video  # relative paths are relative to the manifest
        rows.append(
            {
                "idx": len(rows),
                "clip_id": str(row.get("clip_id", f"{split}-{len(rows)}")),
                "video": str(video),
                "start": float(row.get("start", 0.0)),
                "end": float(row["end"]) if row.get("end") is not None else -1.0,
                "label": int(row["label"]),
                **{c: str(row.get(c, "")) for c in TEXT_COLUMNS},
            }
        )
        if max_clips and len(rows) >= max_clips:
            break
    return rows


def label_names(manifest: str | Path) -> list[str]:
    """Class names by label index: labels.json beside the manifest, else the rows' label_name."""
    p = Path(manifest)
    labels_file = p.parent / "labels.json"
    if labels_file.is_file():
        return list(json.loads(labels_file.read_text()))
    names: dict[int, str] = {}
    for line in p.read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            names[int(row["label"])] = str(row.get("label_name", row["label"]))
    return [names.get(i, str(i)) for i in range(max(names) + 1)] if names else []


def decode_clip(video: str, start: float, end: float, num_frames: int, size: int) -> np.ndarray:
    """Decode [start, end) of `video` (end <= 0: to the end) to uint8 [num_frames, size, size, 3].

    `data_pipeline.datasets.clip_frames.decode_clip`: the Lance reader runs the very same function
    (frame pick and resize are `train.preprocess.frames_to_clip`), so both data sources feed training
    the pixels inference (`train.inference.ActionClassifier`) rebuilds.
    """
    from data_pipeline.datasets.clip_frames import decode_clip as shared_decode

    return shared_decode(video, start, end, num_frames=num_frames, size=size)


def make_decode_fn(num_frames: int, size: int) -> Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]:
    """Factory for the Stage 2 batch function (plain numpy in/out, testable without Ray)."""

    def decode_batch(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        frames = [
            decode_clip(str(v), float(s), float(e), num_frames, size)
            for v, s, e in zip(batch["video"], batch["start"], batch["end"], strict=True)
        ]
        out = {k: v for k, v in batch.items() if k not in ("video", "start", "end")}
        out["frames"] = np.stack(frames)
        return out

    return decode_batch


def build_datasets(cfg: DataSettings, splits: tuple[str, ...] = ("train", "val")) -> dict[str, Any]:
    """THE seam: one Ray Dataset of decoded clips per split (see the module docstring for the row format)."""
    import ray.data

    import cluster.ray_runtime  # noqa: F401  (sets loopback env before ray)

    if cfg.dataset_uri:
        try:
            from data_pipeline.datasets import read_clips
        except ImportError as e:
            raise InputError(
                "data.dataset_uri needs data_pipeline.datasets.read_clips, which is not available here; "
                "use data.manifest (JSONL) instead"
            ) from e
        out_lance: dict[str, Any] = {}
        for split in splits:
            lance_ds = read_clips(
                cfg.dataset_uri,
                cfg.dataset_version,
                split,
                num_frames=cfg.num_frames,
                size=cfg.size,
                decode_cpus=cfg.decode_num_cpus,
            )
            out_lance[split] = lance_ds.materialize() if cfg.deterministic else lance_ds
        return out_lance
    assert cfg.manifest is not None
    out: dict[str, Any] = {}
    for split in splits:
        # Stage 1: list clips (1:1)
        rows = read_manifest(cfg.manifest, split, cfg.max_clips)
        if not rows:
            raise InputError(f"manifest {cfg.manifest} has no clips in split {split!r}")
        ds: Any = ray.data.from_items(rows, override_num_blocks=max(1, min(len(rows) // 16, 64)))
        # Stage 2: decode + sample + resize (1:1). num_cpus is fractional so decode tasks fit beside
        # trainer workers that hold whole CPUs on a 2-core machine.
        ds = ds.map_batches(
            make_decode_fn(cfg.num_frames, cfg.size), batch_size=16, num_cpus=cfg.decode_num_cpus
        )
        out[split] = ds.materialize() if cfg.deterministic else ds
    return out


class WorkerClips:
    """This worker's fixed partition of a split, in memory, with a seeded order per epoch.

    Every worker gets the same number of steps per epoch (the smallest partition decides), because
    DeepSpeed's collectives hang if one worker runs a step the others do not.
    """

    def __init__(
        self, rows: dict[str, np.ndarray], *, rank: int, world: int, total: int, batch_size: int, seed: int
    ):
        self.rows = rows
        self.rank, self.world = rank, world
        self.batch_size = batch_size
        self.seed = seed
        per_worker = total // world
        self.steps_per_epoch = max(1, per_worker // batch_size)
        self.n = len(rows["idx"])

    @classmethod
    def from_shard(cls, shard: Any, *, rank: int, world: int, batch_size: int, seed: int) -> WorkerClips:
        """Pull the whole (unsplit) dataset through `shard` and keep this rank's rows, sorted by idx."""
        parts: dict[str, list[np.ndarray]] = {}
        total = 0
        for batch in shard.iter_batches(batch_size=256, batch_format="numpy"):
            total += len(batch["idx"])
            keep = batch["idx"] % world == rank
            for k, v in batch.items():
                parts.setdefault(k, []).append(np.asarray(v)[keep])
        rows = {k: np.concatenate(v) for k, v in parts.items()}
        order = np.argsort(rows["idx"], kind="stable")
        rows = {k: v[order] for k, v in rows.items()}
        return cls(rows, rank=rank, world=world, total=total, batch_size=batch_size, seed=seed)

    def batch_at(self, step: int) -> dict[str, np.ndarray]:
        """The batch for global step `step`: same answer in an uninterrupted and a resumed run."""
        epoch, within = divmod(step, self.steps_per_epoch)
        perm = np.random.default_rng([self.seed, epoch, self.rank]).permutation(self.n)
        take = perm[within * self.batch_size : (within + 1) * self.batch_size]
        return {k: v[take] for k, v in self.rows.items()}

    def iter_eval(self, max_batches: int | None = None) -> Iterator[dict[str, np.ndarray]]:
        """In-order batches over this worker's partition (all rows, the last batch may be short)."""
        for i, start in enumerate(range(0, self.n, self.batch_size)):
            if max_batches is not None and i >= max_batches:
                return
            yield {k: v[start : start + self.batch_size] for k, v in self.rows.items()}


def iter_stream(shard: Any, batch_size: int, seed: int, epoch: int) -> Iterator[dict[str, np.ndarray]]:
    """Streaming mode: one pass over this worker's `streaming_split` shard with a local shuffle."""
    yield from shard.iter_batches(
        batch_size=batch_size,
        batch_format="numpy",
        drop_last=True,
        local_shuffle_buffer_size=4 * batch_size,
        local_shuffle_seed=seed + epoch,
    )
