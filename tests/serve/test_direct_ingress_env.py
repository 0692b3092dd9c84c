"""Direct-ingress mode without starting Ray: the environment it sets and how `build_app` adapts.

The end-to-end check (a real `vidray serve --direct-ingress` over HTTP) is test_direct_ingress.py.
"""

from __future__ import annotations

import pytest

import cluster.ray_runtime  # noqa: F401  (loopback Ray env before ray is imported)
from serve import direct_ingress
from serve.app import build_app


def test_env_pins_the_one_port_and_shortens_quarantine_and_drain() -> None:
    env = direct_ingress.direct_ingress_env(8000)
    assert env["RAY_SERVE_ENABLE_DIRECT_INGRESS"] == "1"
    # Ray's port range is [min, max): exactly the API's port
    assert (env["RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT"], env["RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT"]) == (
        "8000",
        "8001",
    )
    assert env["RAY_SERVE_PORT_QUARANTINE_S"] == "0"
    assert float(env["RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S"]) <= 5


def test_bad_port_names_the_fix() -> None:
    with pytest.raises(ValueError, match="pick a TCP port"):
        direct_ingress.direct_ingress_env(0)


def test_apply_env_refuses_once_ray_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    import ray

    monkeypatch.setattr(ray, "is_initialized", lambda: True)
    with pytest.raises(RuntimeError, match="before Ray starts"):
        direct_ingress.apply_env(8000)


def test_build_app_pins_one_ingress_with_its_own_access_log(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAY_SERVE_ENABLE_DIRECT_INGRESS", raising=False)
    default = build_app({})._bound_deployment
    assert default._deployment_config.autoscaling_config is not None
    assert default._deployment_config.logging_config["enable_access_log"] is False

    monkeypatch.setenv("RAY_SERVE_ENABLE_DIRECT_INGRESS", "1")
    direct = build_app({})._bound_deployment
    assert direct.name == "Ingress"
    assert direct.num_replicas == 1 and direct._deployment_config.autoscaling_config is None
    assert direct._deployment_config.logging_config["enable_access_log"] is True
