"""Checkpoints through Ray Train: DeepSpeed state + loop state, and the full weights for export.

Layout of one Ray Train checkpoint folder (each worker writes its own files into a private temp
folder and reports it; Ray Train merges all workers' files into the same checkpoint folder):

    ds/                      DeepSpeed tag folder: model states (rank 0) + ZeRO shards (one per rank)
    loop_state.json          {"step": N, ...}: where the loop resumes (rank 0)
    hf/                      final checkpoint only: save_pretrained export (rank 0)

Why DeepSpeed's own format for resume: with ZeRO the optimizer state is sharded by rank, and only
DeepSpeed knows how to put each shard back; the Hugging Face export is the portable copy.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

TAG = "ds"
STATE_FILE = "loop_state.json"
EXPORT_DIR = "hf"


def save_checkpoint(engine: Any, directory: Path, state: dict[str, Any], rank: int) -> None:
    """Collective: every rank must call it (ZeRO shards are saved by their owners)."""
    engine.save_checkpoint(str(directory), tag=TAG)
    if rank == 0:
        (directory / STATE_FILE).write_text(json.dumps(state))


def load_checkpoint(engine: Any, directory: Path) -> dict[str, Any]:
    """Collective: restore module, optimizer and ZeRO shards; return the loop state saved with them."""
    load_path, _ = engine.load_checkpoint(str(directory), tag=TAG, load_module_strict=True)
    if load_path is None:
        raise RuntimeError(f"DeepSpeed found no checkpoint with tag {TAG!r} in {directory}")
    return json.loads((directory / STATE_FILE).read_text())


def full_state_dict(engine: Any) -> dict[str, torch.Tensor] | None:
    """Collective: the unsharded weights on rank 0 (None elsewhere), for the Hugging Face export.

    Under ZeRO-3 parameters are partitioned across ranks, so they are gathered first; under
    ZeRO-1/2 every rank already holds the full module.
    """
    import deepspeed

    module = engine.module
    if engine.zero_optimization_stage() == 3:
        with deepspeed.zero.GatheredParameters(list(module.parameters()), modifier_rank=None):
            sd = (
                {k: v.detach().clone().cpu() for k, v in module.state_dict().items()}
                if engine.global_rank == 0
                else None
            )
        return sd
    if engine.global_rank != 0:
        return None
    return {k: v.detach().clone().cpu() for k, v in module.state_dict().items()}
