"""Classify clips with an exported action model: the hand-off from training to analysis.

    from train.inference import ActionClassifier
    clf = ActionClassifier.from_pretrained("<checkpoint>/hf")
    clf.predict(frames)            # frames: uint8 [T, H, W, 3] (RGB) -> [("move_left", 0.97), ...]
    clf.predict_video("clip.mp4")  # decodes and samples frames the way training did

Why a wrapper over `AutoModel.from_pretrained`: callers should not need to know the frame count,
resolution and label order the model was trained with; they are in the exported config.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from cluster.errors import InputError, NotFoundError


class ActionClassifier:
    """An exported action classifier (train/recipes/action_model.py) ready for inference on CPU or GPU."""

    def __init__(self, model: Any, device: str = "cpu"):
        self.model = model.to(device).eval()
        self.device = device
        self.labels: list[str] = list(model.config.labels)
        self.num_frames: int = int(model.config.num_frames)
        self.image_size: int = int(model.config.image_size)

    @classmethod
    def from_pretrained(cls, directory: str | Path, device: str = "cpu") -> ActionClassifier:
        from train.recipes.action_model import ActionClassifierModel

        d = Path(directory)
        if not (d / "config.json").is_file():
            raise NotFoundError(
                f"{d} has no config.json; pass the hf/ folder of a finished action training run"
            )
        return cls(ActionClassifierModel.from_pretrained(str(d)), device)

    def _tensor(self, frames: np.ndarray) -> torch.Tensor:
        arr = np.asarray(frames)
        if arr.ndim != 4 or arr.shape[-1] != 3 or arr.shape[0] < 2:
            raise InputError(f"frames must be uint8 [T>=2, H, W, 3] RGB, got shape {arr.shape}")
        idx = np.linspace(0, arr.shape[0] - 1, self.num_frames).round().astype(int)
        x = torch.from_numpy(np.ascontiguousarray(arr[idx])).permute(0, 3, 1, 2).float()
        if x.max() > 1.0:
            x = x / 255.0
        if x.shape[-1] != self.image_size or x.shape[-2] != self.image_size:
            x = torch.nn.functional.interpolate(
                x, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False
            )
        return x.unsqueeze(0)

    @torch.no_grad()
    def predict(self, frames: np.ndarray, top_k: int | None = None) -> list[tuple[str, float]]:
        """Labels with probabilities, best first, for one clip of RGB frames."""
        logits = self.model(pixel_values=self._tensor(frames).to(self.device))["logits"][0]
        probs = logits.float().softmax(-1).cpu().numpy()
        order = np.argsort(-probs)[: top_k or len(probs)]
        return [(self.labels[i], float(probs[i])) for i in order]

    def predict_video(
        self, path: str | Path, start: float = 0.0, end: float = -1.0, top_k: int | None = None
    ) -> list[tuple[str, float]]:
        """Decode [start, end) of a video file and classify it."""
        from train.data import decode_clip

        frames = decode_clip(str(path), start, end, self.num_frames, self.image_size)
        return self.predict(frames, top_k)
