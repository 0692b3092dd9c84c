"""Train a video model on Ray: Ray Data input -> Ray Train TorchTrainer -> DeepSpeed, one JSON line out.

Local run (starts a loopback-only Ray on this machine):

    python -m train.run --config train/configs/action_tiny_cpu.yaml

Cluster run (the same command, shipped to a running Ray cluster; use an s3:// storage_path there):

    ray job submit --working-dir . -- python -m train.run --config train/configs/action_gpu.yaml \\
        storage_path=s3://bucket/vidray-train

Tiny CPU run (seconds; any YAML key can be overridden with key=value):

    python -m train.run --config train/configs/action_tiny_cpu.yaml optim.max_steps=10 name=smoke

Resume: run the same command again - the same `name` + `storage_path` continue from the latest
checkpoint (Ray Train V2 semantics). The last stdout line is one JSON object:
`{"final_loss", "steps", "checkpoint", "export", "val_accuracy", "wall_s", ...}`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from cluster.errors import InputError, VidrayError
from train.config import TrainConfig, load_train_config


def _prepare_data(cfg: TrainConfig) -> list[str]:
    """Generate the synthetic dataset if asked and absent; return the class names.

    `data.dataset_uri` wins over `data.manifest` here exactly as in `train.data.build_datasets`:
    the class names must come from the source the clips come from, or the export's label order
    (Lance: sorted names; manifest: labels.json) is not the one the model learned. The Lance version
    is pinned on `cfg` (latest when unset), so the names and the clips come from one version.
    """
    from train.data import label_names

    if cfg.data.dataset_uri:  # versioned Lance dataset (data_pipeline.datasets)
        from data_pipeline.datasets.reader import label_names as lance_labels
        from data_pipeline.datasets.store import VideoDataset

        ds = VideoDataset.open(cfg.data.dataset_uri, version=cfg.data.dataset_version)
        cfg.data.dataset_version = ds.version
        return lance_labels(ds)
    if cfg.data.manifest is None:
        return []
    manifest = Path(cfg.data.manifest).expanduser()
    syn = cfg.data.synthetic
    if syn is not None and not manifest.exists():
        if manifest.name != "manifest.jsonl":
            raise InputError(
                "data.synthetic writes <dir>/manifest.jsonl; set data.manifest to a path ending in manifest.jsonl"
            )
        from train.synthetic import generate

        generate(
            manifest.parent,
            train_per_class=syn.train_per_class,
            val_per_class=syn.val_per_class,
            size=syn.size,
            frames=syn.frames,
            seed=syn.seed,
        )
    return label_names(manifest)


def run(cfg: TrainConfig) -> dict[str, Any]:
    """Fit one run (or resume it) and return the summary printed as the final JSON line."""
    import cluster.ray_runtime as ray_runtime  # before ray: loopback-only local Ray

    started = time.time()
    storage = (
        cfg.storage_path if "://" in cfg.storage_path else str(Path(cfg.storage_path).expanduser().resolve())
    )
    cfg = cfg.model_copy(update={"storage_path": storage})
    if cfg.data.manifest:
        cfg.data.manifest = str(Path(cfg.data.manifest).expanduser().resolve())
    labels = _prepare_data(cfg)
    ray_runtime.init_ray()

    import ray.train
    from ray.train.torch import TorchConfig, TorchTrainer

    from train.data import build_datasets
    from train.loop import train_loop_per_worker

    datasets = build_datasets(cfg.data)
    s = cfg.scaling
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={"cfg": cfg.model_dump(mode="json"), "labels": labels},
        scaling_config=ray.train.ScalingConfig(
            num_workers=s.num_workers,
            use_gpu=s.use_gpu,
            # Fractional on small CPU boxes, so Ray Data tasks still find a slot beside the workers.
            resources_per_worker={"CPU": s.cpus_per_worker},
        ),
        torch_config=TorchConfig(backend="nccl" if s.use_gpu else "gloo"),
        run_config=ray.train.RunConfig(
            name=cfg.name,
            storage_path=storage,
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=cfg.checkpoint.num_to_keep),
            failure_config=ray.train.FailureConfig(max_failures=cfg.fault.max_failures),
        ),
        datasets=datasets,
        # Deterministic mode: every worker sees the whole dataset and keeps its own rank partition
        # (train/data.py says why); streaming mode splits the training set across workers.
        dataset_config=ray.train.DataConfig(datasets_to_split=[] if cfg.data.deterministic else ["train"]),
    )
    result = trainer.fit()
    m = dict(result.metrics or {})
    ckpt = result.checkpoint.path if result.checkpoint is not None else None
    export = f"{ckpt}/hf" if ckpt and m.get("step") == cfg.optim.max_steps and cfg.checkpoint.export else None
    summary: dict[str, Any] = {
        "name": cfg.name,
        "recipe": cfg.recipe,
        "final_loss": m.get("loss"),
        "steps": m.get("step"),
        "checkpoint": ckpt,
        "export": export,
        "wall_s": round(time.time() - started, 1),
        "step_time_s": m.get("step_time_s"),
        "clips_per_s": m.get("clips_per_s"),
    }
    for key in ("val_accuracy", "val_loss"):
        if key in m:
            summary[key] = m[key]
    return summary


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m train.run", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--config", required=True, help="train YAML (see train/configs/)")
    p.add_argument(
        "overrides", nargs="*", metavar="KEY=VALUE", help="e.g. optim.max_steps=10 scaling.num_workers=1"
    )
    args = p.parse_args(argv)
    try:
        cfg = load_train_config(args.config, args.overrides)
        summary = run(cfg)
    except VidrayError as e:
        print(f"train: error: {e}", file=sys.stderr)
        return e.exit_code
    finally:
        from cluster.ray_runtime import shutdown_ray

        shutdown_ray()
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
