"""Clip preprocessing shared by training and inference: frames -> model input, one code path.

Start here: training turns a clip into model input in two stages, and inference must repeat both,
in the same order, with the same settings, or a model that scores well in training mislabels
clips it has not seen:

    video [start, end) or decoded RGB frames
        --frames_to_clip(decode_frames, decode_size)-->  uint8 [T, S, S, 3]
        (the data stage, both sources: train/data.py's manifest decode and the Lance reader run
        `data_pipeline.datasets.clip_frames.decode_clip` - uniform pick over the clip's frames,
        PIL bilinear squash - whose pick and resize are `frames_to_clip`, re-exported here)
    uint8 [B, T, S, S, 3] --clips_to_pixel_values(num_frames, image_size)--> float [B, T', 3, S', S']
        (Recipe.video_tensor: the frames/resolution curriculum, [0, 255] -> [0, 1], THWC -> TCHW)

`preprocess_clip` chains both for one clip; `train.inference.ActionClassifier` uses it with the
four numbers the export's config.json records (data.num_frames/data.size and the curriculum's
values at the last step). The first stage lives in data_pipeline because the Lance reader's Ray
actors apply it and data_pipeline never imports train; it is the same function either way.

Frames are uint8 RGB, always: a float input would be ambiguous ([0, 1] or [0, 255]), and guessing
from the values (an all-dark clip has max <= 1) silently changes the scale.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from cluster.errors import InputError
from data_pipeline.datasets.clip_frames import frames_to_clip, sample_indices

if TYPE_CHECKING:
    import torch

__all__ = ["clips_to_pixel_values", "frames_to_clip", "preprocess_clip", "sample_indices"]


def clips_to_pixel_values(clips: np.ndarray, num_frames: int, size: int) -> torch.Tensor:
    """Model-input stage: uint8 [B, T, H, W, 3] -> float [B, num_frames, 3, size, size] in [0, 1].

    Frames are re-picked only when T differs (the frames curriculum) and resized only when H, W
    differ (the resolution curriculum), with torch bilinear: training did exactly this.
    """
    import torch

    arr = np.asarray(clips)
    if arr.dtype != np.uint8 or arr.ndim != 5 or arr.shape[-1] != 3:
        raise InputError(
            f"clips must be uint8 [B, T, H, W, 3] RGB, got {arr.dtype} {tuple(arr.shape)}; "
            "decode with train.preprocess.frames_to_clip"
        )
    x = torch.from_numpy(np.ascontiguousarray(arr)).permute(0, 1, 4, 2, 3).float() / 255.0
    if num_frames != x.shape[1]:
        x = x[:, torch.from_numpy(sample_indices(x.shape[1], num_frames))]
    if size != x.shape[-1] or size != x.shape[-2]:
        b, t = x.shape[:2]
        x = torch.nn.functional.interpolate(
            x.flatten(0, 1), size=(size, size), mode="bilinear", align_corners=False
        )
        x = x.view(b, t, 3, size, size)
    return x


def preprocess_clip(
    frames: np.ndarray | Sequence[np.ndarray],
    *,
    decode_frames: int,
    decode_size: int,
    num_frames: int,
    image_size: int,
) -> torch.Tensor:
    """Both stages for one clip of RGB frames: float [1, num_frames, 3, image_size, image_size]."""
    clip = frames_to_clip(frames, decode_frames, decode_size)
    return clips_to_pixel_values(clip[None], num_frames, image_size)
