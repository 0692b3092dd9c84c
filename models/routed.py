"""What the router returns: the answer plus where it came from (backend, attempts, variant, cost).

Why a separate module: analysis and serve code handle `Routed` values (and put `routed_json` into
API responses) without needing the router's machinery.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

from models.base import Usage

T = TypeVar("T")


@dataclass(frozen=True)
class Attempt:
    """One backend's turn on a request: `outcome` ok | error | skipped, with the reason."""

    backend: str
    outcome: Literal["ok", "error", "skipped"]
    reason: str = ""
    error: str = ""  # error class name
    tries: int = 0
    elapsed_s: float = 0.0
    variant: str = ""


@dataclass
class Routed(Generic[T]):
    """A model answer and where it came from: which backend, after which attempts, at what cost."""

    value: T
    backend: str
    task: str
    model: str = ""
    attempts: list[Attempt] = field(default_factory=list)
    variant: str = ""  # "<ab entry>:<a|b>" when an A/B split chose the backend
    usage: Usage = field(default_factory=Usage)
    cost_usd: float = 0.0
    cached: bool = False


class RoutedStream:
    """An iterator of text deltas that also says which backend produced them."""

    def __init__(self, routed: Routed[Iterator[str]]) -> None:
        self._it = routed.value
        self.backend = routed.backend
        self.attempts = routed.attempts
        self.variant = routed.variant
        self.model = routed.model

    def __iter__(self) -> Iterator[str]:
        return self._it


def _prepend(first: str | None, rest: Iterator[str]) -> Iterator[str]:
    if first is not None:
        yield first
    yield from rest


def routed_json(r: Routed[Any]) -> dict[str, Any]:
    """A JSON-safe description of where an answer came from (for API responses and logs)."""
    return {
        "backend": r.backend,
        "model": r.model,
        "task": r.task,
        "variant": r.variant,
        "cached": r.cached,
        "cost_usd": r.cost_usd,
        "usage": {"input_tokens": r.usage.input_tokens, "output_tokens": r.usage.output_tokens},
        "attempts": [dataclasses.asdict(a) for a in r.attempts],
    }
