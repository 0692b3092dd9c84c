"""Speech to text with CMU PocketSphinx 5 (the `pocketsphinx` wheel ships its en-us model).

Why keep it: it needs nothing but a 5 MB wheel and no torch/CTranslate2, so it still works
where faster-whisper cannot be installed. It is much weaker (WER ~0.3 on LibriVox read speech
against ~0.01 for Whisper tiny.en), returns lower-case words without punctuation and is slower
than real time on a busy 2-core machine: a fallback only, never the default.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from cluster.optional import require
from models.base import Availability, Segment, SpeechToText, Transcript
from models.offline._audio import check_audio
from models.offline._packaged import check

_FILLERS = {"<s>", "</s>", "<sil>", "[NOISE]", "[SPEECH]"}
_PAUSE_S = 0.6  # a silence at least this long starts a new segment


class PocketSphinxSTT(SpeechToText):
    """PocketSphinx continuous decoding; segments split at pauses, times from its 100 fps frames."""

    type_name = "pocketsphinx"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lock = threading.Lock()  # a Decoder is not re-entrant

    def availability(self) -> Availability:
        return check({"pocketsphinx": "pip install pocketsphinx"})

    def transcribe(self, audio: np.ndarray, *, language: str | None = None) -> Transcript:
        audio = check_audio(audio)
        lang = language or "en"
        if lang != "en":
            from cluster.errors import InputError

            raise InputError(
                f"{self.name}: the packaged PocketSphinx model is English (en-us) only, not {lang!r}"
            )
        if audio.size == 0:
            return Transcript(language="en")
        ps = require("pocketsphinx", "models")
        pcm = (np.clip(audio, -1.0, 1.0) * 32767).astype("<i2").tobytes()
        with self._lock:
            decoder = ps.Decoder(samprate=16000, loglevel="FATAL")
            frate = float(decoder.config["frate"])
            decoder.start_utt()
            decoder.process_raw(pcm, full_utt=True)
            decoder.end_utt()
            words = [
                (s.word, s.start_frame / frate, (s.end_frame + 1) / frate, s.prob) for s in decoder.seg()
            ]
        return Transcript(language="en", segments=_segments(words))


def _segments(words: list[tuple[str, float, float, int]]) -> list[Segment]:
    out: list[Segment] = []
    cur: list[tuple[str, float, float]] = []
    last_end = 0.0
    for word, start, end, _prob in words:
        if word in _FILLERS or word.startswith("["):
            continue
        if cur and start - last_end >= _PAUSE_S:
            out.append(Segment(cur[0][1], cur[-1][2], " ".join(w for w, _, _ in cur)))
            cur = []
        cur.append((word.split("(")[0], start, end))  # "read(2)" is an alternate pronunciation
        last_end = end
    if cur:
        out.append(Segment(cur[0][1], cur[-1][2], " ".join(w for w, _, _ in cur)))
    return out
