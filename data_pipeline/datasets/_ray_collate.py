"""Ray Data collate class for clip batches (kept apart so `reader` imports without Ray).

Ray ≥ 2.47 wants `iter_torch_batches(collate_fn=...)` to be a `NumpyBatchCollateFn` subclass
rather than a plain function.
"""

# ruff: noqa: I001  (cluster.ray_runtime must be imported before ray)
from __future__ import annotations

from typing import Any

import numpy as np

from cluster.ray_runtime import ray  # noqa: F401
from data_pipeline.datasets.reader import collate_clips
from ray.data.collate_fn import NumpyBatchCollateFn


class ClipCollate(NumpyBatchCollateFn):
    """Numeric columns to tensors; string columns (label, text, ids) stay lists."""

    def __call__(self, batch: dict[str, np.ndarray]) -> Any:
        return collate_clips(batch)
