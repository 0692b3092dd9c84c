"""Router behaviour over real HTTP: the official `openai` client against loopback OpenAI-protocol servers.

Each test builds a `ModelsSettings` with two or three OpenAI-protocol backends pointing at
`FakeOpenAI` servers and checks what the router did and what the servers saw.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cluster.config import ModelsSettings
from models.base import ChatMessage
from models.errors import AllBackendsFailed, BudgetExceeded
from models.router import Router, routed_json
from tests.models.api_fakes import Delay, FakeOpenAI, Malformed, Reply, Status

pytest.importorskip("openai")

KEY = "sk-test-0123456789abcdef"
Q = [ChatMessage("user", "What happens in the video?")]


@pytest.fixture
def servers(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[FakeOpenAI, FakeOpenAI, FakeOpenAI]]:
    monkeypatch.setenv("VIDRAY_TEST_KEY", KEY)
    a, b, c = FakeOpenAI(), FakeOpenAI(), FakeOpenAI()
    a.default, b.default, c.default = Reply("from a"), Reply("from b"), Reply("from c")
    yield a, b, c
    for s in (a, b, c):
        s.close()


def settings(servers: tuple[FakeOpenAI, ...], **extra: Any) -> ModelsSettings:
    backends = {
        name: {
            "type": "openai",
            "base_url": s.url,
            "api_key_env": "VIDRAY_TEST_KEY",
            "model": f"model-{name}",
            "retries": 0,
            "timeout_s": 5,
        }
        for name, s in zip("abc", servers, strict=False)
    }
    for name, patch in extra.pop("backend_patch", {}).items():
        backends[name].update(patch)
    doc = {"backends": backends, "tasks": {"chat": ["a", "b", "c"]}, "prices": {}, **extra}
    return ModelsSettings.model_validate(doc)


@pytest.mark.parametrize(
    ("failure", "error"),
    [
        (Status(429, "slow down"), "RateLimited"),
        (Status(500, "boom"), "TransientError"),
        (Status(503, "overloaded"), "TransientError"),
        (Malformed(), "MalformedOutput"),
    ],
)
def test_falls_back_on_failure_and_records_attempts(servers: Any, failure: Any, error: str) -> None:
    a, b, _ = servers
    a.push(failure)
    out = Router(settings(servers)).generate(Q)
    assert out.backend == "b" and out.value.text == "from b"
    assert [(x.backend, x.outcome, x.error) for x in out.attempts] == [("a", "error", error), ("b", "ok", "")]
    assert len(a.calls("/chat/completions")) == 1 and len(b.calls("/chat/completions")) == 1
    assert routed_json(out)["backend"] == "b"


def test_falls_back_on_timeout(servers: Any) -> None:
    a, _, _ = servers
    a.push(Delay(3.0))
    r = Router(settings(servers, backend_patch={"a": {"timeout_s": 0.3}}))
    t0 = time.monotonic()
    out = r.generate(Q)
    assert out.backend == "b"
    assert out.attempts[0].error == "TransientError" and "Timeout" in out.attempts[0].reason
    assert time.monotonic() - t0 < 2.5


def test_retry_honours_retry_after(servers: Any) -> None:
    a, b, _ = servers
    a.push(Status(429, "quota", {"retry-after": "0.6"}), Reply("a after wait"))
    r = Router(
        settings(
            servers, backend_patch={"a": {"retries": 1}}, retry={"base_delay_s": 0.01, "max_delay_s": 0.02}
        )
    )
    out = r.generate(Q)
    assert out.backend == "a" and out.value.text == "a after wait"
    assert out.attempts[0].tries == 2
    first, second = a.calls("/chat/completions")
    assert second.t - first.t >= 0.6  # waited Retry-After, not the 0.02 s backoff
    assert not b.requests


def test_too_long_retry_after_falls_back_instead_of_waiting(servers: Any) -> None:
    a, _, _ = servers
    a.push(Status(429, "quota", {"retry-after": "120"}))
    r = Router(settings(servers, backend_patch={"a": {"retries": 3}}))
    t0 = time.monotonic()
    out = r.generate(Q)
    assert out.backend == "b" and "too long" in out.attempts[0].reason
    assert time.monotonic() - t0 < 5


def test_backoff_is_jittered_exponential(servers: Any) -> None:
    a, _, _ = servers
    a.push(Status(500), Status(500), Status(500), Reply("third time"))
    sleeps: list[float] = []
    r = Router(
        settings(
            servers, backend_patch={"a": {"retries": 3}}, retry={"base_delay_s": 0.1, "max_delay_s": 0.3}
        ),
        sleep=sleeps.append,
    )
    out = r.generate(Q)
    assert out.backend == "a" and out.attempts[0].tries == 4
    assert 0.05 <= sleeps[0] <= 0.1 and 0.1 <= sleeps[1] <= 0.2 and 0.15 <= sleeps[2] <= 0.3


def test_all_failing_raises_with_attempts(servers: Any) -> None:
    for s in servers:
        s.default = Status(500)
    with pytest.raises(AllBackendsFailed) as ei:
        Router(settings(servers)).generate(Q)
    assert [a.backend for a in ei.value.attempts] == ["a", "b", "c"]


def test_circuit_breaker_opens_then_half_opens_and_closes(servers: Any) -> None:
    a, _, _ = servers
    a.default = Status(500)
    r = Router(settings(servers, breaker={"failure_threshold": 2, "cooldown_s": 0.5}))
    assert r.generate(Q).backend == "b"
    assert r.generate(Q).backend == "b"
    assert r.breaker("a").state == "open"
    out = r.generate(Q)  # open: a is not called at all
    assert out.backend == "b" and out.attempts[0].error == "CircuitOpen"
    assert len(a.calls("/chat/completions")) == 2
    time.sleep(0.55)
    assert r.breaker("a").state == "half_open"
    a.default = Status(500)
    assert r.generate(Q).backend == "b"  # the half-open trial fails: open again
    assert len(a.calls("/chat/completions")) == 3 and r.breaker("a").state == "open"
    time.sleep(0.55)
    a.default = Reply("a is back")
    assert r.generate(Q).backend == "a"  # trial succeeds: closed
    assert r.breaker("a").state == "closed"
    assert r.generate(Q).backend == "a"


def test_budget_refuses_an_over_budget_call_before_sending(servers: Any) -> None:
    a, b, _ = servers
    prices = {"model-a": {"input_per_mtok": 5000.0, "output_per_mtok": 5000.0}}
    r = Router(settings(servers, prices=prices, budget={"per_request_usd": 0.01, "on_exceed": "refuse"}))
    with pytest.raises(BudgetExceeded, match="per-request budget"):
        r.generate(Q, max_tokens=64)
    assert not a.requests and not b.requests


def test_budget_degrades_to_a_cheaper_backend(servers: Any) -> None:
    a, _, _ = servers
    prices = {"model-a": {"input_per_mtok": 5000.0, "output_per_mtok": 5000.0}}
    r = Router(settings(servers, prices=prices, budget={"per_request_usd": 0.01, "on_exceed": "degrade"}))
    out = r.generate(Q, max_tokens=64)
    assert out.backend == "b" and out.attempts[0].error == "BudgetExceeded" and not a.requests


def test_daily_budget_counts_real_usage(servers: Any) -> None:
    a, _, _ = servers
    a.default = Reply("costly", input_tokens=500, output_tokens=300)  # 800 tokens at $1/Mtok = $0.0008
    prices = {
        "a": {"input_per_mtok": 1.0, "output_per_mtok": 1.0},
        "b": {"input_per_mtok": 1.0, "output_per_mtok": 1.0},
    }
    r = Router(
        settings(
            servers[:2],
            prices=prices,
            tasks={"chat": ["a", "b"]},
            budget={"per_day_usd": 0.0008, "on_exceed": "degrade"},
        )
    )
    first = r.generate(Q, max_tokens=16)
    assert first.backend == "a" and first.cost_usd == pytest.approx(0.0008)
    assert r.ledger.spent() == pytest.approx(0.0008)
    with pytest.raises(BudgetExceeded, match="daily budget"):
        r.generate(Q, max_tokens=16)
    assert len(a.calls("/chat/completions")) == 1


def test_ab_split_matches_its_ratio_over_200_requests(servers: Any) -> None:
    a, b, _ = servers
    r = Router(
        settings(
            servers, tasks={"chat": ["pair", "c"]}, ab={"pair": {"variants": ["a", "b"], "fraction_b": 0.3}}
        )
    )
    variants = [r.generate([ChatMessage("user", f"q{i}")], request_id=f"req-{i}").variant for i in range(200)]
    n_b = variants.count("pair:b")
    assert abs(n_b / 200 - 0.3) <= 0.10, n_b
    assert n_b == len(b.calls("/chat/completions")) and 200 - n_b == len(a.calls("/chat/completions"))
    # the same request id always lands in the same variant
    assert r.generate([ChatMessage("user", "again")], request_id="req-7").variant == variants[7]


def test_response_cache_hits_across_routers(servers: Any, tmp_path: Path) -> None:
    a, _, _ = servers
    s = settings(servers)
    first = Router(s, data_dir=tmp_path).generate(Q, video_sha256="ab" * 32, task="qa")
    again = Router(s, data_dir=tmp_path).generate(Q, video_sha256="ab" * 32, task="qa")
    assert not first.cached and again.cached and again.value == first.value and again.backend == "a"
    assert len(a.calls("/chat/completions")) == 1
    other = Router(s, data_dir=tmp_path).generate(Q, video_sha256="ab" * 32, task="qa", max_tokens=99)
    assert not other.cached and len(a.calls("/chat/completions")) == 2


def test_offline_mode_never_touches_the_network(servers: Any) -> None:
    r = Router(settings(servers), offline=True)
    with pytest.raises(AllBackendsFailed, match="offline mode"):
        r.generate(Q)
    assert not any(s.requests for s in servers)


def test_local_rate_limit_skips_to_next_provider(servers: Any) -> None:
    a, _, _ = servers
    r = Router(
        settings(
            servers,
            limits={"openai-a": {"requests_per_minute": 2, "max_wait_s": 0}},
            backend_patch={"a": {"provider": "openai-a"}},
        )
    )
    assert [r.generate(Q).backend for _ in range(3)] == ["a", "a", "b"]
    assert len(a.requests) == 2


def test_api_key_never_appears_in_errors_or_logs(servers: Any, caplog: pytest.LogCaptureFixture) -> None:
    for s in servers:
        s.default = Status(401, f"Incorrect API key provided: {KEY}")
    caplog.set_level(logging.DEBUG)
    with pytest.raises(AllBackendsFailed) as ei:
        Router(settings(servers)).generate(Q)
    text = str(ei.value) + repr(ei.value.attempts) + caplog.text
    assert "MissingCredentials" in text and "VIDRAY_TEST_KEY" in text
    assert KEY not in text
    assert servers[0].requests[0].headers["authorization"] == f"Bearer {KEY}"  # it was really sent


def test_missing_key_is_unavailable_not_an_error(servers: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VIDRAY_TEST_KEY")
    r = Router(settings(servers))
    assert not r.availability("a").ok and "VIDRAY_TEST_KEY" in r.availability("a").reason
    with pytest.raises(AllBackendsFailed, match="no API key"):
        r.generate(Q)


def test_stream_falls_back_before_the_first_delta(servers: Any) -> None:
    a, b, _ = servers
    a.push(Status(500))
    b.default = Reply("streamed words arrive")
    s = Router(settings(servers)).stream(Q)
    assert "".join(s).split() == ["streamed", "words", "arrive"]
    assert s.backend == "b" and [x.outcome for x in s.attempts] == ["error", "ok"]
