"""One model router per process for the analysis tasks.

Why shared: the router holds loaded backends (Whisper, OCR, MiniLM weights), circuit breakers, rate
limiters and the cost ledger; building one per task would reload models and forget failures.
"""

from __future__ import annotations

import threading
from typing import Any

from cluster.config import Settings

_lock = threading.Lock()
_routers: dict[str, Any] = {}


def router_for(settings: Settings) -> Any:
    """The process's `models.router.Router` for these settings (keyed by their JSON)."""
    from models.router import Router

    key = settings.model_dump_json(include={"models", "offline", "data_dir"})
    with _lock:
        router = _routers.get(key)
        if router is None:
            router = _routers[key] = Router(settings)
        return router
