"""Counting people from a fixed camera: upright moving blobs over a learned background.

Why not OpenCV's HOG people detector or Haar cascades, as the design brief suggests: the
opencv-python installed here is 5.1, whose main modules no longer contain `HOGDescriptor` or
`CascadeClassifier` (moved to opencv_contrib); downgrading cv2 would change it for every package.
A MOG2 background model ships in 5.1's `video` module and, on a fixed camera, separates walkers
from the scene well: each upright foreground blob of person-like size is counted as one person.
Limits (documented in docs/analysis-code-actions.md): people standing still melt into the
background after ~`_HISTORY` frames, groups walking together count as one, and a moving camera
gives no count at all (the caller passes -1).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cluster.optional import require

_HISTORY = 150  # frames of background memory (~6 s at 25 fps)
_WARMUP = 15  # frames before counts mean anything: the model starts with everything foreground
_MIN_AREA = 0.0015  # blob area share of the frame: smaller is noise or a distant head
_MIN_HEIGHT = 0.06  # blob height share of the frame
_ASPECT = (0.9, 5.0)  # height / width of an upright person's blob


class BlobCounter:
    """Feed consecutive grey frames of one shot with `update`; `count` reads people off the latest one.

    Why two calls: the background model must see every frame (it needs continuity), but callers
    sample counts a few times a second; the mask clean-up and blob search cost as much as the model
    update, so they run only when a count is asked for.
    """

    def __init__(self) -> None:
        cv2 = require("cv2")
        self._cv2 = cv2
        self._model: Any = cv2.createBackgroundSubtractorMOG2(
            history=_HISTORY, varThreshold=25, detectShadows=True
        )
        self._seen = 0
        self._fg: np.ndarray | None = None
        self._kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
        self._join = cv2.getStructuringElement(cv2.MORPH_RECT, (5, 11))  # joins legs, torso and head

    def update(self, grey: np.ndarray) -> None:
        self._fg = self._model.apply(grey)
        self._seen += 1

    def count(self) -> int:
        """People in the latest frame, or -1 while the model is still learning the background."""
        if self._fg is None or self._seen < _WARMUP:
            return -1
        cv2 = self._cv2
        mask = (self._fg > 200).astype(np.uint8)  # 127 marks shadows
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, self._kernel)
        mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, self._join)
        return count_blobs(mask)


def count_blobs(mask: np.ndarray) -> int:
    """Person-like components (size and upright shape) in a 0/1 foreground mask."""
    cv2 = require("cv2")
    h, w = mask.shape
    n, _labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    count = 0
    for i in range(1, n):
        bw, bh, area = stats[i, 2], stats[i, 3], stats[i, 4]
        if area < _MIN_AREA * h * w or bh < _MIN_HEIGHT * h:
            continue
        if bh / max(bw, 1) < _ASPECT[0] or bh / max(bw, 1) > _ASPECT[1]:
            continue
        if bw > 0.5 * w:  # a lighting change or a cut, not a person
            continue
        count += 1
    return count
