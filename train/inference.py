"""Classify clips with an exported action model: the hand-off from training to analysis.

    from train.inference import ActionClassifier
    clf = ActionClassifier.from_pretrained("<checkpoint>/hf")
    clf.predict(frames)            # frames: uint8 [T, H, W, 3] (RGB) -> [("move_left", 0.97), ...]
    clf.predict_video("clip.mp4")  # decodes and samples frames the way training did (either source)

Why a wrapper over `AutoModel.from_pretrained`: callers should not need to know the frame count,
resolution and label order the model was trained with; they are in the exported config, and
`train.preprocess.preprocess_clip` (the code training ran) turns frames into model input with them.

Why loading is strict: transformers 5 leaves a tensor the checkpoint lacks as uninitialised memory
and only logs a warning, so a partial export would load and then predict one class for everything.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from cluster.errors import InputError, NotFoundError


class ActionClassifier:
    """An exported action classifier (train/recipes/action_model.py) ready for inference on CPU or GPU.

    `num_frames` and `image_size` are what a caller that samples frames itself should hand in: the
    frames per clip and size the training data stage decoded to. The model input after the
    curriculum (`input_frames`, `input_size`) is derived from them exactly as in training.
    """

    def __init__(self, model: Any, device: str = "cpu"):
        self.model = model.to(device).eval()
        self.device = device
        cfg = model.config
        self.labels: list[str] = list(cfg.labels)
        self.input_frames: int = int(cfg.num_frames)
        self.input_size: int = int(cfg.image_size)
        self.num_frames: int = int(getattr(cfg, "decode_frames", None) or cfg.num_frames)
        self.image_size: int = int(getattr(cfg, "decode_size", None) or cfg.image_size)

    @classmethod
    def from_pretrained(cls, directory: str | Path, device: str = "cpu") -> ActionClassifier:
        """Load an export; raise InputError when any weight is missing, unexpected, misshaped or not finite."""
        from train.recipes.action_model import ActionClassifierModel

        d = Path(directory)
        if not (d / "config.json").is_file():
            raise NotFoundError(
                f"{d} has no config.json; pass the hf/ folder of a finished action training run"
            )
        model, info = ActionClassifierModel.from_pretrained(str(d), output_loading_info=True)
        problems = {
            k: sorted(str(x) for x in info.get(k) or [])
            for k in ("missing_keys", "unexpected_keys", "mismatched_keys", "error_msgs")
        }
        problems = {k: v for k, v in problems.items() if v}
        if problems:
            detail = "; ".join(f"{k}: {v[:5]}{' ...' if len(v) > 5 else ''}" for k, v in problems.items())
            raise InputError(
                f"{d} does not hold the weights its config.json describes ({detail}); it is a partial "
                "or foreign export - re-export it from the training run's final checkpoint"
            )
        bad = [
            name
            for name, t in [*model.named_parameters(), *model.named_buffers()]
            if t.is_floating_point() and not bool(torch.isfinite(t).all())
        ]
        if bad:
            raise InputError(
                f"{d} loads with non-finite values in {bad[:5]}; the export is corrupt or the training "
                "run diverged - re-export from a checkpoint whose val_loss was finite"
            )
        return cls(model, device)

    def preprocess(self, frames: np.ndarray) -> torch.Tensor:
        """uint8 [T, H, W, 3] RGB -> float [1, input_frames, 3, input_size, input_size], as in training."""
        from train.preprocess import preprocess_clip

        arr = np.asarray(frames)
        if arr.ndim != 4 or arr.shape[-1] != 3 or arr.shape[0] < 1:
            raise InputError(f"frames must be uint8 [T>=1, H, W, 3] RGB, got shape {arr.shape}")
        return preprocess_clip(
            arr,
            decode_frames=self.num_frames,
            decode_size=self.image_size,
            num_frames=self.input_frames,
            image_size=self.input_size,
        )

    @torch.no_grad()
    def logits(self, frames: np.ndarray) -> torch.Tensor:
        """Raw class scores [num_labels] for one clip of RGB frames (label order: `labels`)."""
        return self.model(pixel_values=self.preprocess(frames).to(self.device))["logits"][0].float().cpu()

    def predict(self, frames: np.ndarray, top_k: int | None = None) -> list[tuple[str, float]]:
        """Labels with probabilities, best first, for one clip of RGB frames."""
        probs = self.logits(frames).softmax(-1).numpy()
        order = np.argsort(-probs)[: top_k or len(probs)]
        return [(self.labels[i], float(probs[i])) for i in order]

    def predict_video(
        self, path: str | Path, start: float = 0.0, end: float = -1.0, top_k: int | None = None
    ) -> list[tuple[str, float]]:
        """Decode [start, end) of a video file and classify it.

        The decoder is the one training ran on manifest clips and on Lance clips alike
        (`data_pipeline.datasets.clip_frames.decode_clip`, via train/data.py).
        """
        from train.data import decode_clip

        frames = decode_clip(str(path), start, end, self.num_frames, self.image_size)
        return self.predict(frames, top_k)
