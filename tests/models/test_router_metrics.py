"""The router's Prometheus series: calls, errors, latency, cost, tokens and A/B outcomes per backend."""

from __future__ import annotations

from typing import Any

import pytest

from cluster import metrics
from models.router import Router
from tests.models.api_fakes import Status
from tests.models.test_router import Q, servers, settings  # noqa: F401 - `servers` is a fixture

pytest.importorskip("openai")


def _v(name: str, **labels: str) -> float:
    return metrics.value(name, labels)


def test_router_emits_model_and_cost_metrics(servers: Any) -> None:  # noqa: F811
    a, _, _ = servers
    cfg = settings(servers, prices={"a": {"input_per_mtok": 1000.0, "output_per_mtok": 1000.0},
                                    "b": {"input_per_mtok": 1000.0, "output_per_mtok": 1000.0}})
    before = {k: _v("vidray_model_requests_total", backend=k[0], kind="text_generation", outcome=k[1])
              for k in (("a", "error"), ("b", "ok"))}
    cost_before = _v("vidray_api_cost_usd_total", provider="openai", model="model-b")
    a.push(Status(500, "boom"))
    out = Router(cfg).generate(Q)
    assert out.backend == "b" and out.cost_usd > 0
    assert _v("vidray_model_requests_total", backend="a", kind="text_generation", outcome="error") == \
        before[("a", "error")] + 1
    assert _v("vidray_model_requests_total", backend="b", kind="text_generation", outcome="ok") == \
        before[("b", "ok")] + 1
    assert _v("vidray_api_cost_usd_total", provider="openai", model="model-b") == pytest.approx(
        cost_before + out.cost_usd)
    assert _v("vidray_model_seconds_count", backend="b", kind="text_generation") >= 1
    assert _v("vidray_api_tokens_total", provider="openai", direction="output") > 0


def test_ab_outcomes_are_counted(servers: Any) -> None:  # noqa: F811
    cfg = settings(servers, tasks={"chat": ["exp"]}, ab={"exp": {"variants": ["a", "b"], "fraction_b": 0.5}})
    router = Router(cfg)
    total_before = sum(_v("vidray_ab_outcomes_total", experiment="exp", variant=v, outcome="ok") for v in "ab")
    for i in range(10):
        router.generate(Q, request_id=f"r{i}")
    total = sum(_v("vidray_ab_outcomes_total", experiment="exp", variant=v, outcome="ok") for v in "ab")
    assert total == total_before + 10
