"""Typed failures a model backend raises, so the router can decide what to do without parsing text.

Why these classes: the router treats each differently. `RateLimited` is retried after its
`retry_after` (the provider's Retry-After), `TransientError` is retried with jittered backoff,
`MalformedOutput` and `MissingCredentials` move straight on to the next backend, and
`BudgetExceeded` / `AllBackendsFailed` are what the caller finally sees. All extend
`cluster.errors` so the CLI and the HTTP API map them to an exit code / status without knowing
about models.

Messages never contain credentials: backends pass provider error text through `redact` first.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from cluster.errors import PolicyError, UnavailableError


class BackendError(UnavailableError):
    """A backend failed for this request. `backend` names it; `retryable` says whether trying again may help."""

    retryable = False

    def __init__(self, message: str, *, backend: str = "") -> None:
        super().__init__(message)
        self.backend = backend


class RateLimited(BackendError):
    """HTTP 429 or a provider quota: wait `retry_after` seconds (None: use backoff) before trying again."""

    http_status = 429
    retryable = True

    def __init__(self, message: str, *, backend: str = "", retry_after: float | None = None) -> None:
        super().__init__(message, backend=backend)
        self.retry_after = retry_after


class TransientError(BackendError):
    """A 5xx, a timeout or a dropped connection: the same request may succeed in a moment."""

    retryable = True


class MalformedOutput(BackendError):
    """The backend answered, but not in the promised shape (empty choices, bad JSON, wrong array size)."""


class MissingCredentials(BackendError):
    """No API key (or it was refused with 401/403). The message names the environment variable to set."""


class BudgetExceeded(PolicyError):
    """The estimated cost of a call is over the per-request or per-day budget, so it was refused before it ran."""

    http_status = 402


class AllBackendsFailed(UnavailableError):
    """Every backend in a task's order failed or was skipped; `attempts` says why each one was passed over."""

    def __init__(self, message: str, attempts: list[Any] | None = None) -> None:
        super().__init__(message)
        self.attempts = attempts or []


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """Replace each secret (API key) in `text` with a marker; short strings are left alone to avoid noise."""
    for secret in secrets:
        if secret and len(secret) >= 6:
            text = text.replace(secret, "***")
    return text
