"""Structured JSON logs that carry the job and request ids of the work in progress.

Why contextvars: Ray Serve replicas run many requests on one event loop; a contextvar keeps each
request's ids attached to its own log lines without passing them through every call.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_context: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("vidray_log", default=None)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, context ids and `extra` fields."""

    _skip = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        doc.update(_context.get() or {})
        for key, value in record.__dict__.items():
            if key not in self._skip:
                doc[key] = value
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)


def setup_logging(level: str | None = None, json_logs: bool | None = None) -> None:
    """Configure the root `vidray` loggers once; JSON unless VIDRAY_LOG_FORMAT=text."""
    level = level or os.environ.get("VIDRAY_LOG_LEVEL", "WARNING")
    if json_logs is None:
        json_logs = os.environ.get("VIDRAY_LOG_FORMAT", "json") != "text"
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if json_logs else logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    for name in ("vidray", "cluster", "data_pipeline", "models", "analysis", "serve", "train"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level.upper())
        logger.propagate = False


@contextmanager
def log_context(**ids: Any) -> Iterator[None]:
    """Attach ids (job_id, request_id, video_id) to every log line inside the block."""
    merged = {**(_context.get() or {}), **{k: v for k, v in ids.items() if v is not None}}
    token = _context.set(merged)
    try:
        yield
    finally:
        _context.reset(token)


@contextmanager
def timed(logger: logging.Logger, stage: str, **fields: Any) -> Iterator[dict[str, Any]]:
    """Log a stage's duration at INFO; the yielded dict collects fields to log with it."""
    start = time.perf_counter()
    out: dict[str, Any] = dict(fields)
    try:
        yield out
    finally:
        out["seconds"] = round(time.perf_counter() - start, 4)
        logger.info("stage %s done", stage, extra={"stage": stage, **out})
