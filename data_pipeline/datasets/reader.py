"""Training input: stream decoded, sampled clips of one dataset version to training workers.

Start here: `read_clips(uri, version, split)` returns a `ray.data.Dataset` whose rows are one clip
each (the row contract `train/data.py` consumes):

    idx         int64                 (position of the clip id in the sorted ids of this selection:
                                       stable across runs, for deterministic per-rank partitions)
    frames      uint8  T×size×size×3  (clip_frames.decode_clip: T of the clip's frames at evenly
                                       spaced indices, squashed to size×size - the rule train and
                                       train.inference share, so a model sees the same pixels in both)
    audio       float32 S             (mono 16 kHz, zero-padded to `audio_seconds`; only with_audio=True)
    label       int64                 (index into `label_names(...)`, -1 when unlabelled)
    label_name, caption, question, answer (first QA pair, "" when none), clip_id, video_sha256,
    start_s, end_s

Pipeline (streaming, bounded memory — Ray Data back-pressures every stage on the object store):

    # Stage 1: read clip rows of the pinned version, no blobs (1:1)      ray.data.read_lance
    # Stage 2: decode + sample each clip on CPU actors (1:1, batched)    map_batches(_DecodeActor)

Decode runs in `_DecodeActor`s with a fractional CPU each, never in the training workers: on a
2-core machine whole-CPU actors leave nothing for the read tasks and the pipeline deadlocks. Each
actor keeps the last few videos' bytes (an LRU of `cache_videos`), so clips of one video cost one
blob read. A clip stored with pre-decoded frames of the requested shape is read, not decoded.

Consume it in Ray Train with `ray.train.get_dataset_shard("train").iter_torch_batches(...)`, or
locally with `ds.iter_torch_batches(batch_size=8, collate_fn=torch_collate())`. `ClipDataset` is
the same rows as a plain `torch.utils.data.Dataset` (the benchmark baseline, and for users without Ray).

Tiny CPU run:
    python -c "from data_pipeline.datasets.reader import read_clips; \
      print(next(read_clips('mydata', num_frames=4, size=64).iter_batches(batch_size=2))['frames'].shape)"
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from cluster.config import Settings
from cluster.errors import InputError
from cluster.optional import require
from data_pipeline.datasets._clip_decode import AUDIO_RATE, decode_audio
from data_pipeline.datasets._rows import lit
from data_pipeline.datasets.clip_frames import decode_clip
from data_pipeline.datasets.schema import KIND_CLIP, SPLITS
from data_pipeline.datasets.store import VideoDataset

ROW_COLUMNS = ["id", "video_sha256", "start_s", "end_s", "duration_s", "label", "text", "qa", "frames_shape"]
_DECODE_CPUS = 0.5  # per decode actor: fractional so read tasks and several decoders fit on 2 cores
_READ_CPUS = 0.25  # read_lance tasks only fetch small scalar columns
_MAX_AUDIO_S = 30.0


def clip_filter(split: str | None, extra: str | None = None) -> str:
    """The Lance filter selecting a split's clips (plus an optional user filter, e.g. "label = 'cat'")."""
    if split is not None and split not in SPLITS:
        raise InputError(f"split {split!r} is not one of {', '.join(SPLITS)}")
    parts = [f"kind = {lit(KIND_CLIP)}"]
    if split is not None:
        parts.append(f"split = {lit(split)}")
    if extra:
        parts.append(f"({extra})")
    return " AND ".join(parts)


def label_names(ds: VideoDataset) -> list[str]:
    """The sorted label vocabulary of a version (all splits, so ids agree between train and val)."""
    rows = ds.lance_dataset.to_table(columns=["label"], filter=clip_filter(None)).column("label").to_pylist()
    return sorted({r for r in rows if r})


class ClipLoader:
    """Turns clip rows into training tensors; shared by the Ray actors and `ClipDataset`.

    Opens its own Lance handle lazily, so it can be pickled to a Ray actor or a DataLoader worker.
    """

    def __init__(
        self,
        table_uri: str,
        version: int,
        storage_options: dict[str, str] | None,
        *,
        num_frames: int,
        size: int,
        with_audio: bool,
        audio_seconds: float,
        labels: list[str],
        clip_ids: list[str],
        cache_videos: int = 2,
    ) -> None:
        self.table_uri, self.version, self.storage_options = table_uri, version, storage_options
        self.num_frames, self.size, self.with_audio, self.audio_seconds = (
            num_frames,
            size,
            with_audio,
            audio_seconds,
        )
        self.label_index = {name: i for i, name in enumerate(labels)}
        self.idx = {cid: i for i, cid in enumerate(sorted(clip_ids))}
        self.cache_videos = cache_videos
        self._ds: Any = None
        self._videos: OrderedDict[str, bytes] = OrderedDict()

    def __getstate__(self) -> dict[str, Any]:
        # Never ship an open Lance handle (it owns a Tokio runtime) or cached bytes to another process.
        return {**self.__dict__, "_ds": None, "_videos": OrderedDict()}

    def _lance(self) -> Any:
        if self._ds is None:
            lance = require("lance", "train")
            self._ds = lance.dataset(
                self.table_uri, version=self.version, storage_options=self.storage_options
            )
        return self._ds

    def _blob(self, column: str, filter: str) -> bytes:
        ds = self._lance()
        ids = ds.to_table(columns=[], filter=filter, with_row_id=True)["_rowid"].to_pylist()
        if not ids:
            raise InputError(f"{column} blob not found for {filter} in version {self.version}")
        [(_, data)] = ds.read_blobs(column, ids=ids[:1])
        return bytes(data)

    def video_bytes(self, sha: str) -> bytes:
        if sha in self._videos:
            self._videos.move_to_end(sha)
            return self._videos[sha]
        data = self._blob("video", f"kind = 'video' AND id = {lit(sha)}")
        self._videos[sha] = data
        while len(self._videos) > self.cache_videos:  # bounds actor memory to a few encoded videos
            self._videos.popitem(last=False)
        return data

    def load(self, row: dict[str, Any]) -> dict[str, Any]:
        want = [self.num_frames, self.size, self.size, 3]
        shape = row.get("frames_shape")
        if shape is not None and list(shape) == want:
            raw = self._blob("frames", f"kind = 'clip' AND id = {lit(row['id'])}")
            frames = np.frombuffer(raw, dtype=np.uint8).reshape(want)
        else:
            frames = decode_clip(
                self.video_bytes(row["video_sha256"]),
                float(row["start_s"]),
                float(row["end_s"]),
                num_frames=self.num_frames,
                size=self.size,
            )
        name = row.get("label") or ""
        qa = list(row.get("qa") or [])
        out = {
            "idx": self.idx.get(row["id"], -1),
            "clip_id": row["id"],
            "video_sha256": row["video_sha256"],
            "start_s": float(row["start_s"]),
            "end_s": float(row["end_s"]),
            "frames": frames,
            "label": self.label_index.get(name, -1),
            "label_name": name,
            "caption": row.get("text") or "",
            "question": qa[0]["question"] if qa else "",
            "answer": qa[0]["answer"] if qa else "",
        }
        if self.with_audio:
            # The clip's own audio (never the next clip's), zero-padded or cut to one fixed length.
            start = float(row["start_s"])
            end = min(float(row["end_s"]), start + self.audio_seconds)
            clip_audio = decode_audio(self.video_bytes(row["video_sha256"]), start, end)
            audio = np.zeros(round(self.audio_seconds * AUDIO_RATE), dtype=np.float32)
            n = min(len(audio), len(clip_audio))
            audio[:n] = clip_audio[:n]
            out["audio"] = audio
        return out


class _DecodeActor:
    """Ray Data callable class: a batch of clip rows in, a batch of decoded clips out."""

    def __init__(self, **loader_kwargs: Any) -> None:
        self.loader = ClipLoader(**loader_kwargs)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        n = len(batch["id"])
        rows = [
            {k: (v[i].tolist() if isinstance(v[i], np.ndarray) else v[i]) for k, v in batch.items()}
            for i in range(n)
        ]
        # Clips of one video together: one blob read per video even when the LRU is small.
        order = sorted(range(n), key=lambda i: rows[i]["video_sha256"])
        by_index = {i: self.loader.load(rows[i]) for i in order}
        loaded = [by_index[i] for i in range(n)]
        return {k: np.stack([d[k] for d in loaded]) for k in loaded[0]}


def _loader_kwargs(
    ds: VideoDataset,
    where: str,
    num_frames: int,
    size: int,
    with_audio: bool,
    audio_seconds: float | None,
) -> dict[str, Any]:
    if num_frames < 1 or size < 8:
        raise InputError(f"num_frames must be >= 1 and size >= 8 (got {num_frames}, {size})")
    if audio_seconds is None:
        durations = (
            ds.lance_dataset.to_table(columns=["duration_s"], filter=where).column("duration_s").to_pylist()
        )
        audio_seconds = min(_MAX_AUDIO_S, max([d or 0.0 for d in durations], default=1.0))
    ids = ds.lance_dataset.to_table(columns=["id"], filter=where).column("id").to_pylist()
    return {
        "table_uri": ds.location.table_uri,
        "version": ds.version,
        "storage_options": ds.location.storage_options or None,
        "num_frames": num_frames,
        "size": size,
        "with_audio": with_audio,
        "audio_seconds": float(audio_seconds),
        "labels": label_names(ds),
        "clip_ids": ids,  # a few MB per million clips, shipped once per decode actor
    }


def read_clips(
    uri: str | Path,
    version: int | str | None = None,
    split: str | None = "train",
    *,
    num_frames: int = 8,
    size: int = 112,
    with_audio: bool = False,
    audio_seconds: float | None = None,
    filter: str | None = None,
    batch_size: int = 4,
    concurrency: int | tuple[int, int] | None = None,
    decode_cpus: float = _DECODE_CPUS,
    settings: Settings | None = None,
    storage_options: dict[str, str] | None = None,
) -> Any:
    """A `ray.data.Dataset` of decoded clips of one dataset version (see the module doc).

    Args:
        version: a version number or tag; None pins the latest version *now*, so a dataset that
            changes while training runs does not change under the trainer.
        filter: an extra Lance SQL filter on clip columns, e.g. "label = 'cat' AND duration_s > 2".
        batch_size: clips per decode call (small: each clip is T×size×size×3 bytes).
        concurrency: decode actors, a number (a fixed pool) or (min, max) for an autoscaling pool;
            default max(2, CPUs - 1).
        audio_seconds: audio length per clip (zero-padded); default the longest selected clip, ≤ 30 s.
    """
    # cluster.ray_runtime makes Ray loopback-only before it imports ray; take `ray` from it.
    from cluster.ray_runtime import init_ray, ray

    ds = VideoDataset.open(uri, version=version, settings=settings, storage_options=storage_options)
    where = clip_filter(split, filter)
    kwargs = _loader_kwargs(ds, where, num_frames, size, with_audio, audio_seconds)
    init_ray(settings.ray_address if settings else None)
    if concurrency is None:
        cpus = int(ray.cluster_resources().get("CPU", 1))
        # A fixed pool starts every decoder up front; an autoscaling pool adds actors one at a time
        # and their start-up (seconds each, more on a busy machine) then eats short epochs. One
        # single-threaded decoder per core except one (driver/trainer, read tasks); at least two.
        concurrency = max(2, cpus - 1)
    rows = ray.data.read_lance(
        ds.location.table_uri,
        version=ds.version,
        columns=ROW_COLUMNS,
        filter=where,
        storage_options=ds.location.storage_options or None,
        num_cpus=_READ_CPUS,
    )
    return rows.map_batches(
        _DecodeActor,
        fn_constructor_kwargs=kwargs,
        batch_size=batch_size,
        batch_format="numpy",
        num_cpus=decode_cpus,
        concurrency=concurrency,
    )


def collate_clips(batch: dict[str, np.ndarray]) -> dict[str, Any]:
    """`iter_torch_batches(collate_fn=collate_clips)`: numeric columns to tensors, strings stay lists.

    Why: Ray's default torch conversion refuses string columns (label, text, ids), which a trainer
    still wants for logging and text targets.
    """
    import torch

    return {k: (v.tolist() if v.dtype.kind in "OUS" else torch.as_tensor(v)) for k, v in batch.items()}


def torch_collate() -> Any:
    """The collate object for `ds.iter_torch_batches(collate_fn=torch_collate())` (see `collate_clips`)."""
    from data_pipeline.datasets._ray_collate import ClipCollate

    return ClipCollate()


class ClipDataset:
    """The same clips as `read_clips`, as a map-style `torch.utils.data.Dataset` (no Ray).

    Rows are listed once at construction; each worker process opens its own Lance handle on first
    `__getitem__`. Items are dicts of numpy arrays/str; the default collate turns them into tensors.
    Use `DataLoader(..., multiprocessing_context="spawn")` (or "forkserver") with workers: Lance
    runs a multi-threaded Tokio runtime, and a forked child of a process that used it can crash.
    """

    def __init__(
        self,
        uri: str | Path,
        *,
        version: int | str | None = None,
        split: str | None = "train",
        num_frames: int = 8,
        size: int = 112,
        with_audio: bool = False,
        audio_seconds: float | None = None,
        filter: str | None = None,
        settings: Settings | None = None,
        storage_options: dict[str, str] | None = None,
    ) -> None:
        ds = VideoDataset.open(uri, version=version, settings=settings, storage_options=storage_options)
        where = clip_filter(split, filter)
        self.rows = ds.lance_dataset.to_table(columns=ROW_COLUMNS, filter=where).to_pylist()
        kwargs = _loader_kwargs(ds, where, num_frames, size, with_audio, audio_seconds)
        self.labels: list[str] = kwargs["labels"]
        self.version = ds.version
        self.loader = ClipLoader(**kwargs)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.loader.load(self.rows[i])


__all__ = [
    "AUDIO_RATE",
    "ClipDataset",
    "ClipLoader",
    "clip_filter",
    "collate_clips",
    "label_names",
    "read_clips",
]
