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
        decode_frames: int | None = None,
        decode_size: int | None = None,
        **kwargs: Any,
    ):
        """`num_frames`/`image_size`: the model input at the last training step (after the curriculum).

        `decode_frames`/`decode_size`: what the data stage decoded each clip to before that
        (data.num_frames, data.size). Inference repeats both stages (train/preprocess.py); None, in
        exports from before these fields existed, means the same as the model input.
        """
        self.labels = list(labels or [])
        self.backbone = backbone
        self.proj_dim = proj_dim
        self.grid = grid
        self.hidden = hidden
        self.dropout = dropout
        self.tunable_stages = tunable_stages
        self.num_frames = num_frames
        self.image_size = image_size
        self.decode_frames = decode_frames if decode_frames is not None else num_frames
        self.decode_size = decode_size if decode_size is not None else image_size
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
        # Consequence under transformers 5: `from_pretrained` leaves any tensor the checkpoint lacks
        # as uninitialised memory, so the model must hold no non-persistent buffers and loading must
        # refuse missing keys (train.inference.ActionClassifier.from_pretrained does).
        return

    def backbone_features(self, pixel_values: torch.Tensor, backbone_grad: bool = True) -> torch.Tensor:
        """float [B, T, 3, H, W] in [0, 1] -> feature maps [B * T, C, h, w] (frozen stages without grad)."""
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
        return x

    def head(self, fmap: torch.Tensor, batch: int, frames: int) -> torch.Tensor:
        """Feature maps [B * T, C, h, w] of `batch` clips of `frames` frames -> logits [B, num_labels]."""
        feats = self.proj(fmap).flatten(1).view(batch, frames, -1)
        motion = torch.cat([feats[:, 1:], feats[:, 1:] - feats[:, :-1]], dim=-1)  # [B, T-1, 2d]
        h = self.temporal(motion.transpose(1, 2)).mean(dim=-1)
        return self.classifier(self.dropout(h))

    def forward(
        self,
        pixel_values: torch.Tensor,
        labels: torch.Tensor | None = None,
        backbone_grad: bool = True,
    ) -> dict[str, torch.Tensor]:
        """`pixel_values`: float [B, T, 3, H, W] in [0, 1], T >= 2. Returns logits (and loss with labels).

        Build `pixel_values` with train.preprocess (training and inference share it).
        """
        b, t = pixel_values.shape[:2]
        logits = self.head(self.backbone_features(pixel_values, backbone_grad), b, t)
        out = {"logits": logits}
        if labels is not None:
            out["loss"] = nn.functional.cross_entropy(logits, labels)
        return out


transformers.AutoConfig.register("vidray_action", ActionClassifierConfig, exist_ok=True)
transformers.AutoModel.register(ActionClassifierConfig, ActionClassifierModel, exist_ok=True)
