"""Response cache keyed by (video sha256, task, params, backend), in SQLite under data_dir.

Why the backend is in the key: answers differ by model, and an A/B comparison must not be
short-circuited by the other variant's cached answer. Values are stored as JSON (not pickle) so a
cache file from elsewhere cannot execute code; a small codec covers the result types of
`models.base` and numpy arrays.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from models import base

_TYPES: dict[str, type] = {
    cls.__name__: cls for cls in (base.Generation, base.Usage, base.Transcript, base.Segment, base.TextBox)
}


def _encode(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return {"__ndarray__": value.tolist(), "dtype": str(value.dtype), "shape": list(value.shape)}
    if dataclasses.is_dataclass(value) and type(value).__name__ in _TYPES:
        fields = {f.name: _encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return {"__type__": type(value).__name__, "fields": fields}
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(v) for v in value]}
    if isinstance(value, list):
        return [_encode(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _encode(v) for k, v in value.items()}
    return value


def _decode(doc: Any) -> Any:
    if isinstance(doc, list):
        return [_decode(v) for v in doc]
    if not isinstance(doc, dict):
        return doc
    if "__ndarray__" in doc:
        return np.asarray(doc["__ndarray__"], dtype=doc["dtype"]).reshape(doc["shape"])
    if "__type__" in doc:
        return _TYPES[doc["__type__"]](**{k: _decode(v) for k, v in doc["fields"].items()})
    if "__tuple__" in doc:
        return tuple(_decode(v) for v in doc["__tuple__"])
    return {k: _decode(v) for k, v in doc.items()}


def cache_key(video_sha256: str, task: str, params: dict[str, Any], backend: str) -> str:
    blob = json.dumps([video_sha256, task, params, backend], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


class ResponseCache:
    """get/put of model results; `ttl_s` ignores old entries."""

    def __init__(self, path: Path | None = None, ttl_s: float | None = None) -> None:
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        self.ttl_s = ttl_s
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path) if path else ":memory:", check_same_thread=False, timeout=30)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, ts REAL, backend TEXT, value TEXT)"
        )

    def get(self, key: str) -> Any | None:
        with self._lock:
            row = self._db.execute("SELECT ts, value FROM responses WHERE key = ?", (key,)).fetchone()
        if row is None or (self.ttl_s is not None and time.time() - row[0] > self.ttl_s):
            return None
        return _decode(json.loads(row[1]))

    def put(self, key: str, backend: str, value: Any) -> None:
        doc = json.dumps(_encode(value))
        with self._lock, self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO responses VALUES (?,?,?,?)", (key, time.time(), backend, doc)
            )

    def close(self) -> None:
        self._db.close()
