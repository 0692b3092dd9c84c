"""Does the Ray Data clip reader keep a trainer fed, and how does it compare with a plain DataLoader?

Questions answered (one run, one dataset version, the same clips and decode code on both sides):
1. Input throughput (clips/s, decoded 8×112×112×3 uint8 + labels) of `read_clips` (Ray Data, decode
   on fractional-CPU actors, streamed with `iter_torch_batches`) vs `torch.utils.data.DataLoader`
   over `ClipDataset` with the same number of worker processes. First epoch (includes worker/actor
   start) and steady state (after the first batch) are reported separately.
2. Training step time with and without the input pipeline: a simulated accelerator step
   (`--step-ms` of sleep per batch: the trainer's device is busy, the CPU is free for decoding, as on
   a GPU node) fed by synthetic in-memory batches (no input) and by each pipeline. "wait" is the
   time a step spent waiting for its batch. `--real-step` replaces the sleep with a tiny 3D-conv
   forward/backward on the CPU (then decode and training share the same 2 cores).
3. With `--stored-frames`: the same through Ray Data from a dataset whose clips were added with
   pre-decoded frames (`vidray dataset add --frames 8x112`), so the reader reads instead of decoding.

Target: input clips/s >= 1.5x the trainer's consumption (batch_size / step time), so the trainer
never starves (wait ≈ 0).

Run (videos are generated once into .cache/bench/train_input/: testsrc2 640x360 30 fps, 2 s GOP):
    .venv/bin/python benchmarks/train_input.py                        # 8 videos x 10 s, 40 clips, ~3 min
    .venv/bin/python benchmarks/train_input.py --videos 2 --epochs 1  # quick look
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CACHE = ROOT / ".cache" / "bench" / "train_input"


def make_videos(n: int, seconds: int) -> list[Path]:
    CACHE.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        p = CACHE / f"v{i}_{seconds}s.mp4"
        if not p.exists():
            subprocess.run(
                [
                    "ffmpeg",
                    "-v",
                    "error",
                    "-y",
                    "-nostdin",
                    "-f",
                    "lavfi",
                    "-i",
                    f"testsrc2=size=640x360:rate=30:duration={seconds},hue=h={i * 40}",
                    "-f",
                    "lavfi",
                    "-i",
                    f"sine=frequency={300 + 50 * i}:sample_rate=44100:duration={seconds}",
                    "-c:v",
                    "libx264",
                    "-preset",
                    "veryfast",
                    "-g",
                    "60",
                    "-pix_fmt",
                    "yuv420p",
                    "-c:a",
                    "aac",
                    str(p),
                ],
                check=True,
            )
        out.append(p)
    return out


def build_dataset(
    videos: list[Path], clip_s: float, frames: tuple[int, int] | None = None
) -> tuple[str, int, float]:
    """A fresh dataset of `clip_s` clips; with `frames`, each clip also stores pre-decoded frames."""
    from data_pipeline.datasets.schema import ClipSpec
    from data_pipeline.datasets.store import VideoDataset, VideoInput
    from data_pipeline.probe import probe

    root = CACHE / ("dataset_frames" if frames else "dataset")
    shutil.rmtree(root, ignore_errors=True)
    t = time.perf_counter()
    ds = VideoDataset.create(root)
    items = []
    for i, v in enumerate(videos):
        meta = probe(v)
        n = int(meta.duration_s // clip_s)
        clips = [ClipSpec(start=k * clip_s, end=(k + 1) * clip_s, label=f"class{i % 4}") for k in range(n)]
        items.append(VideoInput(path=v, clips=clips, metadata=meta))
    ds.add_videos(items, frames=frames)
    return str(root), len(ds.clips()), time.perf_counter() - t


def timed_epoch(batches: Iterable[dict[str, Any]]) -> dict[str, float]:
    """One pass; steady state counts clips after the first batch over the time after it."""
    t0 = time.perf_counter()
    first_t, first_n, clips = None, 0, 0
    for b in batches:
        clips += len(b["frames"])
        if first_t is None:
            first_t, first_n = time.perf_counter(), clips
    end = time.perf_counter()
    first_t = first_t or end
    return {
        "clips": clips,
        "seconds": round(end - t0, 2),
        "first_batch_s": round(first_t - t0, 2),
        "clips_per_s": round(clips / (end - t0), 2),
        "steady_clips_per_s": round((clips - first_n) / max(end - first_t, 1e-9), 2),
    }


def ray_batches(uri: str, args: argparse.Namespace) -> Iterator[dict[str, Any]]:
    from data_pipeline.datasets.reader import read_clips, torch_collate

    ds = read_clips(
        uri, num_frames=args.num_frames, size=args.size, batch_size=args.decode_batch, with_audio=args.audio
    )
    yield from ds.iter_torch_batches(
        batch_size=args.batch_size, collate_fn=torch_collate(), prefetch_batches=args.prefetch
    )


def _collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack a batch of clip rows (module level: spawned DataLoader workers unpickle it by name)."""
    import numpy as np

    from data_pipeline.datasets.reader import collate_clips

    return collate_clips({k: np.stack([it[k] for it in items]) for k in items[0]})


def torch_batches(uri: str, args: argparse.Namespace) -> Iterator[dict[str, Any]]:
    import torch

    from data_pipeline.datasets.reader import ClipDataset

    # ClipDataset is duck-typed (importing torch in the reader would slow every CLI call).
    ds: Any = ClipDataset(uri, num_frames=args.num_frames, size=args.size, with_audio=args.audio)

    yield from torch.utils.data.DataLoader(
        ds,
        batch_size=args.batch_size,
        num_workers=args.workers,
        collate_fn=_collate,
        prefetch_factor=args.prefetch,
        shuffle=False,
        # Spawned, not forked: this process already runs Ray (gRPC threads), and a forked worker
        # inherits their locks mid-flight; forked workers here died with SIGSEGV now and then.
        multiprocessing_context="spawn" if args.workers > 0 else None,
        persistent_workers=False,
    )


def make_step(args: argparse.Namespace) -> Any:
    if not args.real_step:
        return lambda batch: time.sleep(args.step_ms / 1000)
    import torch

    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv3d(3, 8, 3, stride=2),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool3d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(8, 4),
    )
    opt = torch.optim.SGD(model.parameters(), lr=0.01)

    def step(batch: dict[str, Any]) -> None:
        x = batch["frames"].permute(0, 4, 1, 2, 3).float() / 255.0  # B,C,T,H,W
        loss = torch.nn.functional.cross_entropy(model(x), batch["label"].clamp(min=0))
        opt.zero_grad()
        loss.backward()
        opt.step()

    return step


def train(batches: Iterable[dict[str, Any]], step: Any, max_steps: int) -> dict[str, float]:
    waits, steps = [], []
    it = iter(batches)
    t_prev = time.perf_counter()
    for _ in range(max_steps):
        try:
            batch = next(it)
        except StopIteration:
            break
        t_got = time.perf_counter()
        step(batch)
        t_done = time.perf_counter()
        waits.append(t_got - t_prev)
        steps.append(t_done - t_prev)
        t_prev = t_done
    # The first step includes pipeline start-up; report it apart from the steady state.
    steady_w, steady_s = waits[1:] or waits, steps[1:] or steps
    return {
        "steps": len(steps),
        "first_step_s": round(steps[0], 3) if steps else 0.0,
        "step_ms": round(1000 * statistics.mean(steady_s), 1) if steady_s else 0.0,
        "wait_ms": round(1000 * statistics.mean(steady_w), 1) if steady_w else 0.0,
        "wait_fraction": round(sum(steady_w) / max(sum(steady_s), 1e-9), 3),
    }


def synthetic(args: argparse.Namespace, n: int) -> Iterator[dict[str, Any]]:
    import torch

    b = {
        "frames": torch.zeros((args.batch_size, args.num_frames, args.size, args.size, 3), dtype=torch.uint8),
        "label": torch.zeros(args.batch_size, dtype=torch.int64),
    }
    for _ in range(n):
        yield b


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=int, default=8)
    ap.add_argument("--seconds", type=int, default=10, help="length of each generated video")
    ap.add_argument("--clip-seconds", type=float, default=2.0)
    ap.add_argument("--num-frames", type=int, default=8)
    ap.add_argument("--size", type=int, default=112)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--decode-batch", type=int, default=2, help="clips per Ray decode call")
    ap.add_argument("--workers", type=int, default=2, help="DataLoader worker processes")
    ap.add_argument("--prefetch", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--step-ms", type=float, default=1000.0, help="simulated accelerator step per batch")
    ap.add_argument("--real-step", action="store_true", help="tiny 3D-conv step on the CPU instead of sleep")
    ap.add_argument("--audio", action="store_true", help="also decode 16 kHz audio per clip")
    ap.add_argument(
        "--stored-frames",
        action="store_true",
        help="also measure a dataset whose clips store pre-decoded frames (`add --frames`)",
    )
    ap.add_argument("--json", help="write the results here too")
    args = ap.parse_args()

    from cluster.ray_runtime import LOOPBACK, ray

    uri, n_clips, build_s = build_dataset(make_videos(args.videos, args.seconds), args.clip_seconds)
    res: dict[str, Any] = {
        "machine": f"{platform.node()} {os.cpu_count()} CPUs, load avg {os.getloadavg()[0]:.1f}",
        "config": vars(args),
        "clips": n_clips,
        "dataset_build_s": round(build_s, 2),
    }
    print(f"dataset: {n_clips} clips, built in {build_s:.1f}s", flush=True)
    uri_frames = ""
    if args.stored_frames:
        uri_frames, _, res["dataset_with_frames_build_s"] = build_dataset(
            make_videos(args.videos, args.seconds), args.clip_seconds, (args.num_frames, args.size)
        )
        print(f"dataset with stored frames built in {res['dataset_with_frames_build_s']:.1f}s", flush=True)
    # address="local": a private loopback Ray even if another process on the machine runs one.
    ray.init(
        address="local",
        _node_ip_address=LOOPBACK,
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
    )
    try:
        runs = [("torch_dataloader", torch_batches, uri), ("ray_data", ray_batches, uri)]
        if args.stored_frames:
            runs.append(("ray_data_stored_frames", ray_batches, uri_frames))
        for name, fn, where in runs:
            for epoch in range(args.epochs):
                r = timed_epoch(fn(where, args))
                res[f"{name}_epoch{epoch + 1}"] = r
                print(name, epoch + 1, r, flush=True)
        step = make_step(args)
        max_steps = n_clips // args.batch_size
        res["train_no_input"] = train(synthetic(args, max_steps), step, max_steps)
        print("train_no_input", res["train_no_input"], flush=True)
        for name, fn, where in runs:
            res[f"train_{name}"] = train(fn(where, args), step, max_steps)
            print(f"train_{name}", res[f"train_{name}"], flush=True)
        consume = args.batch_size / (res["train_no_input"]["step_ms"] / 1000)
        last = args.epochs
        for name, _, _ in runs:
            res[f"{name}_input_over_consumption"] = round(
                res[f"{name}_epoch{last}"]["steady_clips_per_s"] / consume, 2
            )
        res["consumption_clips_per_s"] = round(consume, 2)
    finally:
        ray.shutdown()
    print(json.dumps(res, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
