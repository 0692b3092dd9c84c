"""The router's parts on their own, with injected clocks: breaker, token buckets, ledger, cache codec."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cluster.config import PriceSettings
from models._breaker import CircuitBreaker
from models._cache import ResponseCache, cache_key
from models._ledger import Ledger, cost_of
from models._limits import RateLimiter
from models.base import Generation, Segment, TextBox, Transcript, Usage


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.slept.append(s)
        self.now += s


def test_breaker_states() -> None:
    c = Clock()
    b = CircuitBreaker(threshold=3, cooldown_s=10, clock=c)
    for _ in range(2):
        b.failure()
    assert b.state == "closed" and b.allow()
    b.failure()
    assert b.state == "open" and not b.allow()
    c.now += 10
    assert b.state == "half_open"
    assert b.allow() and not b.allow()  # one trial at a time
    b.failure()
    assert b.state == "open"
    c.now += 10
    assert b.allow()
    b.success()
    assert b.state == "closed" and b.allow() and b.allow()


def test_rate_limiter_waits_for_requests_and_tokens() -> None:
    c = Clock()
    lim = RateLimiter(60, 600, clock=c, sleep=c.sleep)  # 1 request/s, 10 tokens/s
    assert all(lim.acquire(1, max_wait_s=0) for _ in range(60))
    assert not lim.acquire(1, max_wait_s=0.5)  # empty: the next request needs 1 s
    assert lim.acquire(1, max_wait_s=2) and c.slept == [pytest.approx(1.0)]
    c.now += 120  # refill both buckets
    assert lim.acquire(500, max_wait_s=0)
    assert not lim.acquire(200, max_wait_s=5)  # 100 tokens left, 100 more take 10 s
    assert lim.acquire(200, max_wait_s=10)
    lim.settle(estimated=200, actual=50)  # the call used less: tokens come back


def test_ledger_persists_per_day(tmp_path: Path) -> None:
    price = PriceSettings(input_per_mtok=2.0, output_per_mtok=8.0)
    usage = Usage(1000, 500)
    assert cost_of(usage, price) == pytest.approx(0.006) and cost_of(usage, None) == 0.0
    a = Ledger(tmp_path / "ledger.sqlite")
    a.record(task="qa", backend="openai", model="m", usage=usage, cost_usd=0.006, variant="x:a")
    a.close()
    b = Ledger(tmp_path / "ledger.sqlite")
    assert b.spent() == pytest.approx(0.006) and b.spent("1999-01-01") == 0.0
    assert b.by_backend() == {"openai": (1, pytest.approx(0.006))}


@pytest.mark.parametrize(
    "value",
    [
        Generation("hi", Usage(3, 4), "m", "stop"),
        Transcript("en", [Segment(0.0, 1.5, "hello", 0.9)]),
        [TextBox("def f():", 1, 2, 30, 10, 0.8)],
        np.eye(3, dtype=np.float32),
        [("cat", 0.9), ("dog", 0.1)],
    ],
)
def test_cache_round_trips_result_types(tmp_path: Path, value: object) -> None:
    cache = ResponseCache(tmp_path / "c.sqlite")
    key = cache_key("ab" * 32, "task", {"p": 1}, "backend")
    assert cache.get(key) is None
    cache.put(key, "backend", value)
    got = cache.get(key)
    if isinstance(value, np.ndarray):
        assert isinstance(got, np.ndarray) and got.dtype == np.float32 and np.array_equal(got, value)
    else:
        assert got == value


def test_cache_ttl(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path / "c.sqlite", ttl_s=0.001)
    cache.put("k", "b", "v")
    import time

    time.sleep(0.01)
    assert cache.get("k") is None
