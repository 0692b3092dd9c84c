"""Build the vidray Serve application: FastAPI ingress -> ingest -> analyzer -> model router.

    serve run serve.app:app                                    # defaults, http://127.0.0.1:8000
    serve run serve/configs/local.yaml                         # the tested local config
    serve deploy serve/configs/cluster.yaml                    # a running cluster (KubeRay: rayservice.yaml)
    vidray serve --port 8000                                   # the same, started from the CLI
    vidray serve --port 8000 --direct-ingress                  # no proxy hop (serve/direct_ingress.py)

`build_app(args)` takes the application `args:` of a Serve config (see `serve.settings.ServeSettings`);
deployment options (replicas, autoscaling, resources) are the decorators' defaults, overridden per
deployment in the config's `deployments:` list.

Graph (each arrow a DeploymentHandle):

    Ingress (HTTP, auth, DB rows, dispatcher) --> IngestWorker (fetch, probe, cache)
        |                                            ^
        +--> Analyzer (analyze jobs, chat) ----------+
                  |
                  +--> ModelRouter (router backends; vLLM app on GPUs; extractive fallback)
"""

from __future__ import annotations

from typing import Any, cast

import cluster.ray_runtime  # noqa: F401  (sets loopback Ray env before ray is imported)

# isort: split
import ray.serve

from serve import direct_ingress
from serve.deployments.analyzer import Analyzer
from serve.deployments.ingest import IngestWorker
from serve.deployments.ingress import Ingress
from serve.deployments.models import ModelRouter
from serve.settings import parse_serve_settings


def build_app(args: dict[str, Any] | None = None) -> ray.serve.Application:
    """The application for `args` (validated now, so a bad config fails before any replica starts)."""
    settings = parse_serve_settings(args)
    doc = settings.model_dump()
    # the decorators turn the classes into ray.serve.Deployment objects (mypy still sees the classes)
    models = cast(ray.serve.Deployment, ModelRouter).bind(doc)
    ingest = cast(ray.serve.Deployment, IngestWorker).bind(doc)
    analyzer = cast(ray.serve.Deployment, Analyzer).bind(doc, ingest, models)
    ingress = cast(ray.serve.Deployment, Ingress)
    if direct_ingress.enabled():
        # The ingress replica owns the API's one port and no proxy balances between replicas, so
        # exactly one; and with no proxy writing the access line, the replica writes its own.
        ingress = ingress.options(
            num_replicas=1, autoscaling_config=None, logging_config={"enable_access_log": True}
        )
    return ingress.bind(doc, ingest, analyzer, models)


app = build_app({})
