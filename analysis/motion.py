"""Per-sample motion features of a video from a low-resolution decode (one pass, bounded memory).

What each sample measures (at `fps` samples per second, frames shrunk to `_SIDE` px):
* `diff`: mean absolute grey change from the previous sample (0..1): any change at all.
* `camera`: magnitude of the median Farneback optical flow (px per sample at `_FLOW_W` px wide):
  the whole picture moving together is the camera panning, or a screen scrolling.
* `local`: mean flow magnitude after removing the median: things moving inside the picture.
* `moving`: share of pixels whose residual flow exceeds 1 px.
* `flat`: share of pixels in the most common of 32 grey levels: screens (editor and UI
  backgrounds) are mostly one colour, camera footage almost never is.
* `people`: upright moving blobs from a background model (`analysis.people`), or -1 while the
  model is still learning or the camera moves (the background model needs a fixed camera).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cluster.optional import require

_SIDE = 320  # decode size: enough for blob counting, cheap to decode and to flow
_FLOW_W = 160  # optical flow width: motion classes need direction and amount, not detail
_CAMERA_FLOW = 0.5  # px/sample at 160 px of median flow: the frame itself moves


@dataclass(frozen=True)
class MotionSample:
    t: float
    diff: float
    camera: float
    local: float
    moving: float
    flat: float
    people: int


def motion_profile(
    path: str | Path, *, fps: float = 5.0, cuts: Sequence[float] = (), threads: int = 0
) -> list[MotionSample]:
    """Motion features sampled at about `fps` per second; the background model restarts at `cuts`."""
    cv2 = require("cv2")
    from analysis.people import BlobCounter
    from data_pipeline.decode import VideoReader

    out: list[MotionSample] = []
    cut_list = sorted(cuts)
    with VideoReader(path, max_side=_SIDE, threads=threads) as reader:
        step = 1.0 / fps
        next_t = reader.begin_s
        prev_grey: np.ndarray | None = None
        prev_small: np.ndarray | None = None
        counter = BlobCounter()
        ci = 0
        for chunk in reader.iter_frames(chunk=32):
            for frame in chunk:
                # Every frame feeds the background model (it needs continuity); features are per sample.
                grey = cv2.cvtColor(frame.image, cv2.COLOR_RGB2GRAY)
                while ci < len(cut_list) and frame.t >= cut_list[ci] - 1e-6:
                    counter = BlobCounter()
                    prev_grey = prev_small = None
                    ci += 1
                counter.update(grey)
                if frame.t + 1e-6 < next_t:
                    continue
                next_t = frame.t + step
                h, w = grey.shape
                small = cv2.resize(
                    grey, (_FLOW_W, max(2, round(h * _FLOW_W / w))), interpolation=cv2.INTER_AREA
                )
                if prev_grey is None or prev_small is None or prev_grey.shape != grey.shape:
                    diff = camera = local = moving = 0.0
                else:
                    diff = float(np.abs(grey.astype(np.int16) - prev_grey).mean()) / 255.0
                    flow = cv2.calcOpticalFlowFarneback(prev_small, small, None, 0.5, 3, 15, 3, 5, 1.2, 0)
                    med = np.median(flow.reshape(-1, 2), axis=0)
                    resid = np.linalg.norm(flow - med, axis=2)
                    camera = float(np.linalg.norm(med))
                    local = float(resid.mean())
                    moving = float((resid > 1.0).mean())
                hist = np.bincount((grey // 8).ravel(), minlength=32)
                flat = float(hist.max() / grey.size)
                people = counter.count() if camera < _CAMERA_FLOW else -1
                out.append(
                    MotionSample(
                        round(frame.t, 3),
                        round(diff, 5),
                        round(camera, 4),
                        round(local, 4),
                        round(moving, 4),
                        round(flat, 4),
                        people,
                    )
                )
                prev_grey, prev_small = grey.astype(np.int16), small
    return out


def to_json(samples: list[MotionSample]) -> list[dict[str, Any]]:
    return [asdict(s) for s in samples]
