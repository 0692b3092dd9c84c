"""The action classifier as a Hugging Face model, so `save_pretrained`/`from_pretrained` just work.

Architecture: a frame encoder (EfficientNet-Lite0) turns each frame into a feature map, pooled to a
small grid (global pooling would erase *where* the object is, and "moves left" is only about
where); a 1D temporal convolution reads each frame's features together with its difference from
the previous frame; the mean over time feeds a linear classifier.

transformers loads the export after `import train.recipes.action_model` (which registers the
`vidray_action` model type with AutoConfig/AutoModel):

    AutoModel.from_pretrained(export_dir)
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from cluster.optional import require
from train.recipes._frame_encoders import build_frame_encoder

transformers = require("transformers", "train")


class ActionClassifierConfig(transformers.PretrainedConfig):  # type: ignore[name-defined]
    model_type = "vidray_action"

    def __init__(
        self,
        labels: list[str] | None = None,
        backbone: str = "efficientnet_lite0",
        proj_dim: int = 64,
        grid: int = 2,
        hidden: int = 128,
        dropout: float = 0.1,
        tunable_stages: int = 3,
        num_frames: int = 8,
        image_size: int = 64,
        **kwargs: Any,
    ):
        self.labels = list(labels or [])
        self.backbone = backbone
        self.proj_dim = proj_dim
        self.grid = grid
        self.hidden = hidden
        self.dropout = dropout
        self.tunable_stages = tunable_stages
        self.num_frames = num_frames
        self.image_size = image_size
        super().__init__(**kwargs)


class ActionClassifierModel(transformers.PreTrainedModel):  # type: ignore[name-defined]
    config_class = ActionClassifierConfig
    base_model_prefix = "action"
    main_input_name = "pixel_values"

    def __init__(self, config: ActionClassifierConfig):
        super().__init__(config)
        backbone: Any = build_frame_encoder(config.backbone, pretrained=False)
        self.backbone = backbone
        stages = backbone.stages()
        k = config.tunable_stages
        self._split = 0 if k < 0 else max(0, len(stages) - k)
        for stage in stages[: self._split]:  # never trained: keeps backward cheap on CPU
            stage.requires_grad_(False)
        c = backbone.out_channels
        self.proj = nn.Sequential(
            nn.Conv2d(c, config.proj_dim, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(config.grid)
        )
        d = config.proj_dim * config.grid * config.grid
        self.temporal = nn.Sequential(
            nn.Conv1d(2 * d, config.hidden, 3, padding=1),
            nn.GELU(),
            nn.Conv1d(config.hidden, config.hidden, 3, padding=1),
            nn.GELU(),
        )
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(config.hidden, max(1, len(config.labels)))
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        # Keep PyTorch's default init (the head is small; the backbone is loaded from ImageNet).
        return

    def forward(
        self,
        pixel_values: torch.Tensor,
        labels: torch.Tensor | None = None,
        backbone_grad: bool = True,
    ) -> dict[str, torch.Tensor]:
        """`pixel_values`: float [B, T, 3, H, W] in [0, 1], T >= 2. Returns logits (and loss with labels)."""
        b, t = pixel_values.shape[:2]
        # Batch norm statistics stay at their ImageNet values: clips per batch are few and alike.
        backbone: Any = self.backbone
        backbone.eval()
        stages = backbone.stages()
        x = backbone.normalize(pixel_values.flatten(0, 1))
        with torch.no_grad():
            for stage in stages[: self._split]:
                x = stage(x)
        with torch.set_grad_enabled(backbone_grad and torch.is_grad_enabled()):
            for stage in stages[self._split :]:
                x = stage(x)
        fmap = x
        feats = self.proj(fmap).flatten(1).view(b, t, -1)
        motion = torch.cat([feats[:, 1:], feats[:, 1:] - feats[:, :-1]], dim=-1)  # [B, T-1, 2d]
        h = self.temporal(motion.transpose(1, 2)).mean(dim=-1)
        logits = self.classifier(self.dropout(h))
        out = {"logits": logits}
        if labels is not None:
            out["loss"] = nn.functional.cross_entropy(logits, labels)
        return out


transformers.AutoConfig.register("vidray_action", ActionClassifierConfig, exist_ok=True)
transformers.AutoModel.register(ActionClassifierConfig, ActionClassifierModel, exist_ok=True)
