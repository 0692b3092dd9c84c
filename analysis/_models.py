"""The model router the analysis tasks use: the process-wide one from `models.router`.

Why shared: the router holds loaded backends (Whisper, OCR, MiniLM weights), circuit breakers, rate
limiters and the cost ledger; building one per task would reload models and forget failures.
"""

from __future__ import annotations

from typing import Any

from cluster.config import Settings


def router_for(settings: Settings) -> Any:
    """`models.router.shared_router(settings)`."""
    from models.router import shared_router

    return shared_router(settings)
