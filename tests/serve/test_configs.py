"""Every shipped Serve config loads: Serve's own schema, vidray's app args, the import path, and the
resource rules (autoscaling + max_ongoing_requests everywhere; local fits on 2 cores)."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import yaml
from ray.serve.schema import ServeDeploySchema

from cluster.errors import InputError
from serve.settings import parse_serve_settings

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "serve" / "configs").glob("*.yaml"))
DEPLOYMENTS = {"Ingress", "IngestWorker", "Analyzer", "ModelRouter"}


def test_both_configs_are_shipped() -> None:
    assert {p.name for p in CONFIGS} >= {"local.yaml", "cluster.yaml"}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_validates(path: Path) -> None:
    doc = yaml.safe_load(path.read_text())
    schema = (
        ServeDeploySchema.model_validate(doc)
        if hasattr(ServeDeploySchema, "model_validate")
        else ServeDeploySchema.parse_obj(doc)
    )
    apps = {a.name: a for a in schema.applications}
    vidray = apps["vidray"]
    module, _, attr = vidray.import_path.partition(":")
    assert callable(getattr(importlib.import_module(module), attr))
    parse_serve_settings(vidray.args)  # extra="forbid": a typo in args fails here
    named = {d.name: d for d in vidray.deployments}
    assert set(named) == DEPLOYMENTS
    total_max_cpus = 0.0
    for d in named.values():
        assert d.autoscaling_config and d.max_ongoing_requests, d.name
        auto = d.autoscaling_config
        assert auto["min_replicas"] <= auto["max_replicas"] and auto["target_ongoing_requests"] > 0
        opts = d.ray_actor_options
        num_cpus = opts["num_cpus"] if isinstance(opts, dict) else opts.num_cpus
        total_max_cpus += float(num_cpus) * auto["max_replicas"]
    if path.name == "local.yaml":
        assert schema.http_options.host == "127.0.0.1"
        assert total_max_cpus <= 2.0, "local.yaml must fit the 2-core machine at max replicas"


def test_unknown_app_arg_is_refused() -> None:
    with pytest.raises(InputError, match="max_queue_dept"):
        parse_serve_settings({"max_queue_dept": 3})


def test_decorator_defaults_declare_autoscaling() -> None:
    from serve.deployments.analyzer import Analyzer
    from serve.deployments.ingest import IngestWorker
    from serve.deployments.ingress import Ingress
    from serve.deployments.models import ModelRouter

    for dep in (Ingress, IngestWorker, Analyzer, ModelRouter):
        assert dep._deployment_config.autoscaling_config is not None, dep.name
        assert dep.ray_actor_options["num_cpus"] < 1, dep.name


def test_generated_api_docs_are_current() -> None:
    """docs/api.md and docs/openapi.json are generated; regenerate with the commands in their header."""
    from serve.api.export_openapi import markdown, spec

    root = Path(__file__).resolve().parents[2]
    doc = spec()
    import json

    assert json.loads((root / "docs" / "openapi.json").read_text()) == json.loads(json.dumps(doc)), (
        "docs/openapi.json is stale: python -m serve.api.export_openapi > docs/openapi.json"
    )
    assert (root / "docs" / "api.md").read_text() == markdown(doc), (
        "docs/api.md is stale: python -m serve.api.export_openapi --markdown > docs/api.md"
    )
