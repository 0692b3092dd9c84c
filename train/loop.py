"""The per-worker training loop that Ray Train's TorchTrainer runs on every worker.

Start here: `train_loop_per_worker(config)` reads top to bottom -
  1. rebuild the TrainConfig and the recipe; build the model the same way on every rank
  2. wrap it in DeepSpeed (ZeRO stage, offload, bf16 from the pass-through `deepspeed:` dict)
  3. take this worker's data (train/data.py) and resume from `ray.train.get_checkpoint()` if any
  4. step: lr schedule -> recipe loss -> engine.backward/step -> metrics via ray.train.report
  5. every N steps: evaluation on the val split (all-reduced), checkpoint (all ranks), at the end the
     Hugging Face export inside the final checkpoint

Determinism, which the resume test relies on: the batch for step s is a function of s
(`WorkerClips.batch_at`), per-step randomness (dropout, masking) is seeded from s and the rank, and
the learning rate is a function of s. A run resumed at step k therefore computes exactly the losses
an uninterrupted run computes from k on.
"""

from __future__ import annotations

import copy
import json
import math
import os
import signal
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from train.config import TrainConfig


def deepspeed_config(cfg: TrainConfig, world: int) -> dict[str, Any]:
    """The pass-through DeepSpeed dict plus the keys derived from this config."""
    ds = copy.deepcopy(cfg.deepspeed)
    ds["train_micro_batch_size_per_gpu"] = cfg.data.batch_size
    ds.setdefault("gradient_accumulation_steps", 1)
    ds.setdefault("gradient_clipping", cfg.optim.grad_clip)
    ds.setdefault("steps_per_print", 10**9)  # metrics go through ray.train.report instead
    if "optimizer" not in ds:
        ds.setdefault("zero_allow_untested_optimizer", True)  # our torch AdamW is the client optimizer
    for key in ("bf16", "fp16"):
        section = ds.get(key)
        if isinstance(section, dict) and section.get("enabled") == "auto":
            ok = torch.cuda.is_available() and (key == "fp16" or torch.cuda.is_bf16_supported())
            section["enabled"] = bool(ok)
    return ds


def lr_at(cfg: TrainConfig, step: int) -> float:
    """Linear warmup, then cosine decay to lr * min_lr_ratio at max_steps."""
    o = cfg.optim
    if o.warmup_steps and step < o.warmup_steps:
        return o.lr * (step + 1) / o.warmup_steps
    span = max(1, o.max_steps - o.warmup_steps)
    progress = min(1.0, (step - o.warmup_steps) / span)
    return o.lr * (o.min_lr_ratio + (1 - o.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def _memory_mb() -> float:
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    import psutil

    return float(psutil.Process().memory_info().rss / 2**20)


def _all_reduce_sum(values: list[float]) -> list[float]:
    import torch.distributed as dist

    t = torch.tensor(values, dtype=torch.float64)
    if dist.is_available() and dist.is_initialized():
        if torch.cuda.is_available() and dist.get_backend() == "nccl":
            t = t.cuda()
        dist.all_reduce(t)
    return [float(x) for x in t.cpu()]


def _all_reduce_max(value: int) -> int:
    import torch.distributed as dist

    t = torch.tensor([value], dtype=torch.int64)
    if dist.is_available() and dist.is_initialized():
        if torch.cuda.is_available() and dist.get_backend() == "nccl":
            t = t.cuda()
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return int(t.item())


def _is_local(storage_path: str) -> bool:
    return "://" not in storage_path


def train_loop_per_worker(config: dict[str, Any]) -> None:
    import deepspeed
    import ray.train

    from train.checkpoint import EXPORT_DIR, full_state_dict, load_checkpoint, save_checkpoint
    from train.data import WorkerClips, iter_stream
    from train.recipes import get_recipe

    # 1. config, recipe, model (same seed -> same init on every rank)
    cfg = TrainConfig.model_validate(config["cfg"])
    labels: list[str] = list(config["labels"])
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    torch.set_num_threads(cfg.scaling.torch_threads)
    torch.manual_seed(cfg.seed)
    recipe = get_recipe(cfg, labels)
    model = recipe.build_model()

    # 2. DeepSpeed. Groups are kept in a fixed order so the lr schedule can address them by index.
    groups = [(name, ps) for name, ps in recipe.param_groups(model).items() if ps]
    param_groups = [
        {"params": ps, "lr": cfg.optim.lr, "weight_decay": cfg.optim.weight_decay} for _, ps in groups
    ]
    ds_config = deepspeed_config(cfg, world)
    if "optimizer" in ds_config:  # e.g. DeepSpeedCPUAdam, required by ZeRO-Offload
        engine, optimizer, _, _ = deepspeed.initialize(
            model=model, model_parameters=param_groups, config=ds_config
        )
    else:
        opt = torch.optim.AdamW(param_groups, lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay)
        engine, optimizer, _, _ = deepspeed.initialize(model=model, optimizer=opt, config=ds_config)

    # 3. data and resume
    train_shard = ray.train.get_dataset_shard("train")
    val = WorkerClips.from_shard(
        ray.train.get_dataset_shard("val"),
        rank=rank,
        world=world,
        batch_size=cfg.data.batch_size,
        seed=cfg.seed,
    )
    train = None
    if cfg.data.deterministic:
        train = WorkerClips.from_shard(
            train_shard, rank=rank, world=world, batch_size=cfg.data.batch_size, seed=cfg.seed
        )
        recipe.prepare(engine.module, train.batch_at(0))
    step = 0
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as d:
            step = int(load_checkpoint(engine, Path(d))["step"])
    elif not cfg.data.deterministic:
        recipe.prepare(engine.module, next(iter_stream(train_shard, cfg.data.batch_size, cfg.seed, 0)))
    metrics_log = cfg.run_dir / "metrics.jsonl" if rank == 0 and _is_local(cfg.storage_path) else None
    kill_marker = cfg.run_dir / ".kill_injected"
    stream = None
    epoch = 0

    def evaluate() -> dict[str, float]:
        engine.eval()
        sums: dict[str, float] = {}
        batches = list(val.iter_eval(cfg.eval.max_batches))
        # Every rank must run the same number of forwards (ZeRO-3 gathers weights collectively):
        # a rank with fewer batches repeats its first one and ignores the result.
        n = _all_reduce_max(len(batches))
        for i in range(n):
            result = recipe.evaluate(
                engine, batches[min(i, len(batches) - 1)] if batches else val.batch_at(0)
            )
            if i < len(batches):
                for k, v in result.items():
                    sums[k] = sums.get(k, 0.0) + v
        engine.train()
        keys = ["loss_sum", "count", "correct"]
        loss_sum, count, correct = _all_reduce_sum([sums.get(k, 0.0) for k in keys])
        out = {"val_loss": loss_sum / max(count, 1.0), "val_clips": count}
        if "correct" in sums:
            out["val_accuracy"] = correct / max(count, 1.0)
        return out

    # 4. steps
    engine.train()
    while step < cfg.optim.max_steps:
        for i, (name, _) in enumerate(groups):
            optimizer.param_groups[i]["lr"] = lr_at(cfg, step) * recipe.lr_scale(name, step)
        if train is not None:
            batch = train.batch_at(step)
        else:  # streaming: a new epoch when the shard runs dry
            if stream is None:
                stream = iter_stream(train_shard, cfg.data.batch_size, cfg.seed, epoch)
            try:
                batch = next(stream)
            except StopIteration:
                epoch += 1
                stream = iter_stream(train_shard, cfg.data.batch_size, cfg.seed, epoch)
                batch = next(stream)
        torch.manual_seed(cfg.seed * 1_000_003 + step * 1_009 + rank)  # dropout/masks: a function of step
        t0 = time.perf_counter()
        loss, parts = recipe.loss(engine, batch, step)
        engine.backward(loss)
        engine.step()
        step_time = time.perf_counter() - t0
        step += 1
        loss_sum, n_clips = _all_reduce_sum([float(loss.detach()), float(len(batch["idx"]))])
        metrics: dict[str, Any] = {
            "step": step,
            "loss": loss_sum / world,
            "lr": lr_at(cfg, step - 1),
            "step_time_s": step_time,
            "clips_per_s": n_clips / step_time,
            "memory_mb": _memory_mb(),
            "frames_per_clip": recipe.frames_at(step - 1),
            **parts,
        }
        # failure injection: die like an OOM-killed worker would, once per run
        if cfg.fault.kill_at_step == step and rank == cfg.fault.kill_rank and not kill_marker.exists():
            kill_marker.parent.mkdir(parents=True, exist_ok=True)
            kill_marker.write_text(str(step))
            os.kill(os.getpid(), signal.SIGKILL)
        final = step == cfg.optim.max_steps
        stopping = cfg.fault.stop_after_steps is not None and step >= cfg.fault.stop_after_steps
        if final or step % cfg.eval.every_n_steps == 0:
            metrics.update(evaluate())
        if metrics_log is not None:
            metrics_log.parent.mkdir(parents=True, exist_ok=True)
            with metrics_log.open("a") as f:
                f.write(json.dumps(metrics) + "\n")
        if final or stopping or step % cfg.checkpoint.every_n_steps == 0:
            with tempfile.TemporaryDirectory(prefix=f"vidray-ckpt-{rank}-") as tmp:
                save_checkpoint(engine, Path(tmp), {"step": step, "recipe": cfg.recipe}, rank)
                if final and cfg.checkpoint.export:
                    sd = full_state_dict(engine)
                    if sd is not None:
                        recipe.export(sd, Path(tmp) / EXPORT_DIR)
                ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(tmp))
        else:
            ray.train.report(metrics)
        if stopping:
            break
