"""A tiny metrics facade over prometheus-client: counters, histograms and gauges created once by name.

Why a facade: many modules bump the same metric (every cache hit, every ingest, every model call)
and prometheus-client raises if a metric name is registered twice. Asking this module for a metric
by name returns the one already made, so call sites stay one line:

    metrics.counter("vidray_cache_hits_total", "Cache hits.", ["kind"]).labels(kind="video").inc()

All metrics live in vidray's own `REGISTRY` (not prometheus-client's global one) so an exporter
decides what to publish and tests can read values without other libraries' metrics in the way.
Each process (a Ray worker, a Serve replica) holds its own values; exporting them over HTTP or
through Ray is the exporter's job (`render()` gives the text exposition format).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics import MetricWrapperBase

REGISTRY = CollectorRegistry(auto_describe=True)

_lock = threading.Lock()
_metrics: dict[str, tuple[MetricWrapperBase, tuple[str, ...]]] = {}

M = TypeVar("M", bound=MetricWrapperBase)


def _get_or_create(
    cls: type[M], name: str, documentation: str, labelnames: Sequence[str], **kwargs: Any
) -> M:
    labels = tuple(labelnames)
    with _lock:
        found = _metrics.get(name)
        if found is not None:
            metric, known = found
            if not isinstance(metric, cls) or known != labels:
                raise ValueError(
                    f"metric {name!r} already exists as {type(metric).__name__}{list(known)}; "
                    f"asked for {cls.__name__}{list(labels)}: use one type and label set per name"
                )
            return metric
        metric = cls(name, documentation, labels, registry=REGISTRY, **kwargs)
        _metrics[name] = (metric, labels)
        return metric


def counter(name: str, documentation: str, labelnames: Sequence[str] = ()) -> Counter:
    """The counter called `name`, created on first use (end names in `_total`)."""
    return _get_or_create(Counter, name, documentation, labelnames)


def gauge(name: str, documentation: str, labelnames: Sequence[str] = ()) -> Gauge:
    """The gauge called `name`, created on first use."""
    return _get_or_create(Gauge, name, documentation, labelnames)


def histogram(
    name: str, documentation: str, labelnames: Sequence[str] = (), buckets: Sequence[float] | None = None
) -> Histogram:
    """The histogram called `name`, created on first use; `buckets` only matter on that first call."""
    kwargs: dict[str, Any] = {"buckets": tuple(buckets)} if buckets is not None else {}
    return _get_or_create(Histogram, name, documentation, labelnames, **kwargs)


def value(name: str, labels: dict[str, str] | None = None) -> float:
    """Current value of one sample (0.0 when never observed); for tests and quick checks.

    Counters are read by their full sample name, e.g. `vidray_cache_hits_total`.
    """
    got = REGISTRY.get_sample_value(name, labels or {})
    return float(got) if got is not None else 0.0


def render() -> bytes:
    """All vidray metrics in the Prometheus text exposition format."""
    return generate_latest(REGISTRY)


def merge_texts(texts: Sequence[str]) -> str:
    """Merge Prometheus text expositions from several processes into one.

    Why: the HTTP app's work happens in several Ray Serve replicas (ingest, analyzer, model router),
    each with its own registry; `/metrics` on the ingress asks each for its text and serves the sum.
    Counters and histograms add up across processes; gauges take the largest value (the ones here
    are queue depths, capacities and memory, where a sum would double-count a shared database).
    `_created` timestamps are dropped: they describe one process, not the merged series.
    """
    from prometheus_client.parser import text_string_to_metric_families

    families: dict[str, tuple[str, str, dict[tuple[str, tuple[tuple[str, str], ...]], float]]] = {}
    for text in texts:
        for fam in text_string_to_metric_families(text):
            if fam.name.endswith("_created"):
                continue
            _, _, samples = families.setdefault(fam.name, (fam.type, fam.documentation, {}))
            for s in fam.samples:
                if s.name.endswith("_created"):
                    continue
                key = (s.name, tuple(sorted(s.labels.items())))
                if fam.type == "gauge":
                    samples[key] = max(samples.get(key, float("-inf")), s.value)
                else:
                    samples[key] = samples.get(key, 0.0) + s.value
    out: list[str] = []
    for name, (kind, doc, samples) in sorted(families.items()):
        if kind == "counter" and samples and all(k[0] == f"{name}_total" for k in samples):
            name = f"{name}_total"  # text format 0.0.4 names a counter family by its sample name
        out.append(f"# HELP {name} {_escape_help(doc)}")
        out.append(f"# TYPE {name} {kind}")
        for (sample, labels), value in samples.items():
            lab = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
            out.append(f"{sample}{{{lab}}} {value!r}" if lab else f"{sample} {value!r}")
    return "\n".join(out) + "\n"


def _escape_help(doc: str) -> str:
    return doc.replace("\\", "\\\\").replace("\n", "\\n")


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
