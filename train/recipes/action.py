"""Recipe 1: action classification on clips - pretrained frame backbone + temporal head.

Progressive strategy: the backbone starts frozen (lr 0 and no backward through it, so early steps
are cheap and the random head cannot wreck the ImageNet features), then unfreezes at
`curriculum.unfreeze_at_step` with a smaller learning rate (`curriculum.backbone_lr_scale`). The
frames-per-clip and resolution curricula apply through `Recipe.video_tensor`.

Why freezing is "lr 0 + no_grad" rather than `requires_grad=False`: DeepSpeed's ZeRO optimizer
partitions exactly the parameters it is given at `initialize`; a parameter frozen then would never
be trainable later in the same run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from train.recipes.base import Recipe


class ActionRecipe(Recipe):
    def _hf_config(self) -> Any:
        from train.recipes.action_model import ActionClassifierConfig

        o = self.opts
        return ActionClassifierConfig(
            labels=self.labels,
            backbone=o.backbone,
            proj_dim=o.proj_dim,
            grid=o.grid,
            hidden=o.hidden,
            dropout=o.dropout,
            tunable_stages=o.tunable_stages,
            # The preprocessing of the last step (what evaluation used), for train.inference.
            num_frames=self.frames_at(self.cfg.optim.max_steps),
            image_size=self.size_at(self.cfg.optim.max_steps),
            decode_frames=self.cfg.data.num_frames,
            decode_size=self.cfg.data.size,
        )

    def build_model(self) -> torch.nn.Module:
        from train.recipes.action_model import ActionClassifierModel

        if len(self.labels) < 2:
            raise ValueError("the action recipe needs at least 2 labels (labels.json beside the manifest)")
        model: Any = ActionClassifierModel(self._hf_config())
        if self.opts.pretrained and self.opts.backbone == "efficientnet_lite0":
            model.backbone.load_imagenet()
        return model

    def param_groups(self, model: torch.nn.Module) -> dict[str, list[torch.nn.Parameter]]:
        trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        backbone = [p for n, p in trainable if n.startswith("backbone.")]
        head = [p for n, p in trainable if not n.startswith("backbone.")]
        return {"backbone": backbone, "head": head}

    def _forward(self, model: Any, batch: dict[str, np.ndarray], step: int) -> dict[str, torch.Tensor]:
        return model(
            pixel_values=self.video_tensor(batch, step),
            labels=torch.from_numpy(np.asarray(batch["label"], dtype=np.int64)),
            backbone_grad=self.backbone_trainable(step),
        )

    def loss(
        self, model: Any, batch: dict[str, np.ndarray], step: int
    ) -> tuple[torch.Tensor, dict[str, float]]:
        out = self._forward(model, batch, step)
        acc = (out["logits"].argmax(-1).numpy() == batch["label"]).mean()
        return out["loss"], {"cls_loss": float(out["loss"].detach()), "train_batch_accuracy": float(acc)}

    def evaluate(self, model: Any, batch: dict[str, np.ndarray]) -> dict[str, float]:
        with torch.no_grad():
            out = self._forward(model, batch, self.cfg.optim.max_steps)
        n = len(batch["label"])
        correct = float((out["logits"].argmax(-1).numpy() == batch["label"]).sum())
        return {"loss_sum": float(out["loss"]) * n, "count": float(n), "correct": correct}

    def export(self, state_dict: dict[str, torch.Tensor], out_dir: Path) -> None:
        from train.recipes.action_model import ActionClassifierModel

        model: Any = ActionClassifierModel(self._hf_config())
        model.load_state_dict(state_dict)
        model.save_pretrained(out_dir, safe_serialization=True)
