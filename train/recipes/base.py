"""The contract between the training loop and a recipe.

Why this split: the loop owns everything distributed (DeepSpeed engine, Ray Train reports,
checkpoints, resume, evaluation all-reduce, failure injection); a recipe owns only the model, how a
batch of decoded clips becomes model inputs, the loss terms and the Hugging Face export. A recipe
can therefore be unit-tested on one process without Ray.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel

from train.config import TrainConfig


class Recipe(ABC):
    """One training recipe. `model` arguments are the DeepSpeed engine (callable like the module)."""

    def __init__(self, cfg: TrainConfig, labels: list[str]):
        from train.recipes import options_for

        self.cfg = cfg
        self.labels = labels
        self.opts: Any = options_for(cfg.recipe, cfg.model)

    # -- model ------------------------------------------------------------------------------
    @abstractmethod
    def build_model(self) -> torch.nn.Module:
        """A fresh model (pretrained parts loaded); identical on every rank for the same seed."""

    def param_groups(self, model: torch.nn.Module) -> dict[str, list[torch.nn.Parameter]]:
        """Named parameter groups; `lr_scale` gives each a multiplier per step. Default: one group."""
        return {"main": [p for p in model.parameters() if p.requires_grad]}

    def lr_scale(self, group: str, step: int) -> float:
        """Learning-rate multiplier of `group` at `step` (layer unfreezing lives here)."""
        if group == "backbone":
            at = self.cfg.curriculum.unfreeze_at_step
            return self.cfg.curriculum.backbone_lr_scale if at is None or step >= at else 0.0
        return 1.0

    def backbone_trainable(self, step: int) -> bool:
        at = self.cfg.curriculum.unfreeze_at_step
        return at is None or step >= at

    def prepare(self, model: torch.nn.Module, sample: dict[str, np.ndarray]) -> None:  # noqa: B027
        """Hook run once before training with this worker's first batch (e.g. fit a codebook)."""

    # -- steps ------------------------------------------------------------------------------
    @abstractmethod
    def loss(
        self, model: Any, batch: dict[str, np.ndarray], step: int
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Total weighted loss for one batch and its named parts (floats, for metrics)."""

    def evaluate(self, model: Any, batch: dict[str, np.ndarray]) -> dict[str, float]:
        """Sums over one validation batch: at least `loss_sum` and `count`; `correct` for accuracy."""
        with torch.no_grad():
            loss, _ = self.loss(model, batch, step=self.cfg.optim.max_steps)
        n = float(len(batch["idx"]))
        return {"loss_sum": float(loss) * n, "count": n}

    # -- export -----------------------------------------------------------------------------
    @abstractmethod
    def export(self, state_dict: dict[str, torch.Tensor], out_dir: Path) -> None:
        """Write `save_pretrained` files that transformers can load (rank 0 only, full weights)."""

    # -- shared input handling --------------------------------------------------------------
    def frames_at(self, step: int) -> int:
        n = self.cfg.data.num_frames
        for at, frames in sorted(self.cfg.curriculum.frames):
            if step >= at:
                n = frames
        return n

    def size_at(self, step: int) -> int:
        s = self.cfg.data.size
        for at, size in sorted(self.cfg.curriculum.resolution):
            if step >= at:
                s = size
        return s

    def video_tensor(self, batch: dict[str, np.ndarray], step: int) -> torch.Tensor:
        """uint8 [B, T, H, W, 3] -> float [B, T', 3, S, S] in [0, 1], following the frames/resolution curriculum.

        `train.preprocess.clips_to_pixel_values` is the one implementation, shared with inference.
        """
        from train.preprocess import clips_to_pixel_values

        return clips_to_pixel_values(batch["frames"], self.frames_at(step), self.size_at(step))


def save_json(obj: Any, path: Path) -> None:
    import json

    path.write_text(json.dumps(obj, indent=2))


def model_dump(opts: BaseModel) -> dict[str, Any]:
    return opts.model_dump()
