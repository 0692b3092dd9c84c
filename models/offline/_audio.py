"""Checks shared by the speech backends: the audio array every `SpeechToText` accepts."""

from __future__ import annotations

import numpy as np

from cluster.errors import InputError


def check_audio(audio: np.ndarray) -> np.ndarray:
    """16 kHz mono float32 in [-1, 1] (see `models.base`), as a contiguous float32 array.

    Why strict: a stereo (n, 2) array or int16 samples would be transcribed as noise without an
    error; refusing them here names the mistake.
    """
    if not isinstance(audio, np.ndarray) or audio.ndim != 1:
        shape = getattr(audio, "shape", None)
        raise InputError(f"speech backends take mono 16 kHz audio as a 1-D array, got shape {shape}")
    if audio.dtype != np.float32:
        if not np.issubdtype(audio.dtype, np.floating):
            raise InputError(f"audio must be float32 in [-1, 1], got {audio.dtype} (divide int16 by 32768)")
        audio = audio.astype(np.float32)
    return np.ascontiguousarray(audio)
