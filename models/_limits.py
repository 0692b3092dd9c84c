"""Client-side rate limits per provider: requests per minute and tokens per minute (token buckets).

Why client-side: staying under a quota is cheaper than collecting 429s and backing off, and
several configured backends (A/B variants, text and vision) can share one provider account.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class _Bucket:
    def __init__(self, per_minute: float, now: float) -> None:
        self.rate = per_minute / 60.0
        self.capacity = per_minute
        self.level = per_minute
        self.stamp = now

    def refill(self, now: float) -> None:
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now

    def wait_for(self, amount: float) -> float:
        # a request larger than the whole bucket waits only for a full bucket, then overdraws it
        need = min(amount, self.capacity) - self.level
        return max(0.0, need / self.rate)


class RateLimiter:
    """Token buckets for one provider. `acquire` waits (up to `max_wait_s`) or says no."""

    def __init__(
        self,
        requests_per_minute: float | None,
        tokens_per_minute: float | None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        now = clock()
        self._requests = _Bucket(requests_per_minute, now) if requests_per_minute else None
        self._tokens = _Bucket(tokens_per_minute, now) if tokens_per_minute else None

    def _needs(self, tokens: int) -> list[tuple[_Bucket, float]]:
        pairs = ((self._requests, 1.0), (self._tokens, float(tokens)))
        return [(bucket, amount) for bucket, amount in pairs if bucket is not None]

    def acquire(self, tokens: int, max_wait_s: float) -> bool:
        """Take one request and `tokens` tokens; wait if that fits in `max_wait_s`, else take nothing."""
        while True:
            with self._lock:
                now = self._clock()
                wait = 0.0
                for bucket, amount in self._needs(tokens):
                    bucket.refill(now)
                    wait = max(wait, bucket.wait_for(amount))
                if wait <= 0.0:
                    for bucket, amount in self._needs(tokens):
                        bucket.level -= amount
                    return True
                if wait > max_wait_s:
                    return False
            self._sleep(wait)
            max_wait_s -= wait

    def settle(self, estimated: int, actual: int) -> None:
        """Correct the token bucket once the real usage is known."""
        if self._tokens is not None:
            with self._lock:
                self._tokens.level -= actual - estimated
