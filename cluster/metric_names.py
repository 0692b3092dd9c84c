"""The vidray metric catalogue: every metric name, its type, help text and labels, in one place.

Why one file: the Grafana dashboard and the Prometheus alert rules (cluster/observability/) query
metrics by name, and a typo there fails silently (an empty panel, an alert that never fires).
tests/cluster/test_observability.py parses every PromQL expression and checks each metric name is
declared here, and that code registering a `vidray_*` metric through cluster.metrics uses the
type and labels declared here. Call sites keep using the cluster.metrics facade; `get(NAME)`
creates the metric from its spec so help text and labels cannot drift between call sites:

    from cluster import metric_names as mn
    mn.get(mn.STAGE_SECONDS).labels(stage="decode").observe(1.2)

Labels are kept low-cardinality on purpose (task, backend, provider, stage - never a job or video
id): each label value is a separate time series in Prometheus.
"""

from __future__ import annotations

from collections.abc import Iterator
import threading
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

Kind = Literal["counter", "gauge", "histogram"]

# Seconds: 10 ms (cache hit) .. 1 h (a long video through every analyzer).
LATENCY_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
# Bytes: 64 MiB .. 64 GiB, powers of 4 (peak memory of one job).
MEMORY_BUCKETS = tuple(float(64 * 1024**2 * 4**i) for i in range(6))


@dataclass(frozen=True)
class MetricSpec:
    """One metric: `name` as Prometheus shows it (counters end in `_total`)."""

    name: str
    kind: Kind
    help: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] | None = None

    @property
    def series(self) -> tuple[str, ...]:
        """Every sample name this metric exposes (histograms add _bucket/_sum/_count)."""
        if self.kind == "histogram":
            return (f"{self.name}_bucket", f"{self.name}_sum", f"{self.name}_count")
        return (self.name,)


CATALOGUE: dict[str, MetricSpec] = {}


def _m(
    name: str, kind: Kind, help: str, labels: tuple[str, ...] = (), buckets: tuple[float, ...] | None = None
) -> str:
    if name in CATALOGUE:
        raise ValueError(f"metric {name} declared twice in cluster/metric_names.py")
    if kind == "counter" and not name.endswith("_total"):
        raise ValueError(f"counter {name} must end in _total (Prometheus convention)")
    if kind == "histogram" and buckets is None:
        buckets = LATENCY_BUCKETS
    CATALOGUE[name] = MetricSpec(name, kind, help, labels, buckets)
    return name


# --- jobs (serve/jobs, data_pipeline.run, train.run) ------------------------------------------------
JOBS_SUBMITTED = _m("vidray_jobs_submitted_total", "counter", "Jobs accepted by the API.", ("kind", "cached"))
JOBS_SUCCEEDED = _m(
    "vidray_jobs_succeeded_total", "counter", "Jobs that finished with a result.", ("task", "backend")
)
JOBS_FAILED = _m(
    "vidray_jobs_failed_total",
    "counter",
    "Jobs that ended in an error; error is the VidrayError class name or 'bug'.",
    ("task", "backend", "error"),
)
JOB_SECONDS = _m("vidray_job_seconds", "histogram", "Wall time of a job, submit to result.", ("task",))
JOB_PEAK_MEMORY = _m(
    "vidray_job_peak_memory_bytes",
    "histogram",
    "Peak resident memory of the process that ran a job (why a job OOMs is visible before it does).",
    ("task",),
    MEMORY_BUCKETS,
)
PROCESS_MEMORY = _m(
    "vidray_process_memory_bytes", "gauge", "Resident memory of a vidray process right now.", ("component",)
)
SUBMIT_SECONDS = _m("vidray_submit_seconds", "histogram", "Time for the API to accept a job.", ("kind",))
CHAT_REQUESTS = _m("vidray_chat_requests_total", "counter", "OpenAI-compatible chat requests.", ("stream",))

# --- queue and HTTP (serve/) ------------------------------------------------------------------------
# Queue depth is `vidray_jobs{status="queued"}`: serve counts the job table when /metrics is scraped.
JOBS_BY_STATUS = _m(
    "vidray_jobs", "gauge", "Jobs in the database by status (queued = queue depth).", ("status",)
)
QUEUE_CAPACITY = _m(
    "vidray_queue_capacity",
    "gauge",
    "max_queue_depth: queued jobs the API accepts before answering 429 (saturation = queued / capacity).",
)
QUEUE_FULL = _m("vidray_queue_full_total", "counter", "Submits refused because the queue was full.")
QUEUE_WAIT_SECONDS = _m(
    "vidray_queue_wait_seconds", "histogram", "Time a job waited before a worker claimed it."
)
HTTP_REQUESTS = _m(
    "vidray_http_requests_total",
    "counter",
    "HTTP requests by route and status.",
    ("method", "route", "status"),
)
HTTP_SECONDS = _m(
    "vidray_http_request_seconds", "histogram", "HTTP request latency (headers sent).", ("method", "route")
)

# --- stages (data_pipeline, analysis) ------------------------------------------------------------------
STAGE_SECONDS = _m(
    "vidray_stage_seconds",
    "histogram",
    "Duration of one stage: download, probe, decode, sample, audio, or an analysis task (transcript, qa, ...).",
    ("stage",),
)
STAGE_ERRORS = _m(
    "vidray_stage_errors_total", "counter", "Stage failures, by stage and error class.", ("stage", "error")
)
INGEST_TOTAL = _m(
    "vidray_ingest_total",
    "counter",
    "Videos ingested, by source kind and cache outcome.",
    ("source", "cached"),
)
INGEST_SECONDS = _m("vidray_ingest_seconds", "histogram", "Wall time of ingest() calls.", ("source",))
DOWNLOAD_BYTES = _m("vidray_download_bytes_total", "counter", "Bytes fetched from sources.", ("source",))
CACHE_HITS = _m("vidray_cache_hits_total", "counter", "Cache lookups answered from the cache.", ("kind",))
CACHE_MISSES = _m("vidray_cache_misses_total", "counter", "Cache lookups that had to compute.", ("kind",))
FRAMES_DECODED = _m("vidray_frames_decoded_total", "counter", "Frames decoded, by decoder.", ("decoder",))

# --- models (models/router) -----------------------------------------------------------------------------
MODEL_REQUESTS = _m(
    "vidray_model_requests_total",
    "counter",
    "Model calls by backend and kind; outcome is ok, error or fallback (error rate = error / all).",
    ("backend", "kind", "outcome"),
)
MODEL_SECONDS = _m("vidray_model_seconds", "histogram", "Latency of one model call.", ("backend", "kind"))
AB_OUTCOMES = _m(
    "vidray_ab_outcomes_total",
    "counter",
    "A/B experiment results: which variant served and whether it succeeded (ok/error) or was rated good/bad.",
    ("experiment", "variant", "outcome"),
)
API_COST = _m(
    "vidray_api_cost_usd_total",
    "counter",
    "Estimated spend on paid APIs, in US dollars.",
    ("provider", "model"),
)
API_TOKENS = _m(
    "vidray_api_tokens_total",
    "counter",
    "Tokens sent (input) and received (output) from paid APIs.",
    ("provider", "direction"),
)
COST_BUDGET = _m(
    "vidray_cost_budget_usd",
    "gauge",
    "models.budget.per_day_usd (cluster/config.py BudgetSettings): the daily spend cap alerts compare with.",
)

# --- training (train/) ---------------------------------------------------------------------------------
TRAIN_STEP_SECONDS = _m(
    "vidray_train_step_seconds", "histogram", "Wall time of one optimizer step.", ("recipe",)
)
TRAIN_LOSS = _m("vidray_train_loss", "gauge", "Last reported training loss.", ("recipe",))

# Metrics Ray itself exports (prefixed `ray_` in Prometheus) that dashboards and alerts may use.
# tests/cluster/test_observability.py checks each still exists in the installed Ray.
RAY_METRICS: dict[str, str] = {
    "ray_node_mem_used": "Memory used on a Ray node, bytes.",
    "ray_node_mem_total": "Memory of a Ray node, bytes.",
    "ray_node_cpu_utilization": "CPU utilisation of a Ray node, percent.",
    "ray_node_gpus_utilization": "GPU utilisation per GPU, percent.",
    "ray_serve_num_http_requests_total": "HTTP requests seen by the Serve proxies.",
    "ray_serve_num_http_error_requests_total": "HTTP requests answered with an error by the Serve proxies.",
    "ray_serve_deployment_processing_latency_ms_bucket": "Serve replica processing latency histogram.",
}


def spec(name: str) -> MetricSpec:
    """The declared spec of `name`; KeyError names the file to add it to."""
    try:
        return CATALOGUE[name]
    except KeyError:
        raise KeyError(f"metric {name!r} is not declared in cluster/metric_names.py") from None


def get(name: str) -> Any:
    """The prometheus-client metric for `name`, created through the cluster.metrics facade."""
    from cluster import metrics

    s = spec(name)
    if s.kind == "counter":
        return metrics.counter(s.name, s.help, s.labels)
    if s.kind == "gauge":
        return metrics.gauge(s.name, s.help, s.labels)
    return metrics.histogram(s.name, s.help, s.labels, s.buckets)


def known_series() -> set[str]:
    """Every sample name a PromQL expression may reference (vidray's own and Ray's)."""
    return {series for s in CATALOGUE.values() for series in s.series} | set(RAY_METRICS)


def ray_metric(name: str) -> Any:
    """The same metric as a `ray.util.metrics` object, for code running in Ray tasks and actors.

    Why: a Ray worker's prometheus-client registry is not scraped by anyone; Ray's metrics agent
    is (the `metrics-export-port` in kuberay/). Ray adds a `ray_` prefix, so Prometheus shows
    `ray_vidray_...`; the scrape config in docs/observability.md strips it again so dashboards
    and alerts use one name for both paths. Counters are created without their `_total` suffix,
    which Ray's exporter appends itself.
    """
    import ray.util.metrics as ray_metrics

    s = spec(name)
    tag_keys = s.labels or None
    if s.kind == "counter":
        return ray_metrics.Counter(s.name.removesuffix("_total"), s.help, tag_keys=tag_keys)
    if s.kind == "gauge":
        return ray_metrics.Gauge(s.name, s.help, tag_keys=tag_keys)
    return ray_metrics.Histogram(
        s.name, s.help, boundaries=list(s.buckets or LATENCY_BUCKETS), tag_keys=tag_keys
    )


def _peak_rss_bytes() -> int:
    """This process's peak resident memory (VmHWM), falling back to getrusage where /proc is absent."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024  # KiB on Linux


def _current_rss_bytes() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return _peak_rss_bytes()


def _reset_peak_rss() -> bool:
    """Reset this process's VmHWM to its current RSS; True only when the kernel really did it.

    Why verify: some kernels and sandboxes (gVisor, hardened containers) accept the write to
    /proc/self/clear_refs and ignore it, so success of the write proves nothing.
    """
    with suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")
        return _peak_rss_bytes() <= _current_rss_bytes() + _RESET_SLACK_BYTES
    return False


_RESET_SLACK_BYTES = 8 * 1024 * 1024
_SAMPLE_PERIOD_S = 0.01


@contextmanager
def track_job_memory(task: str, component: str = "worker") -> Iterator[dict[str, Any]]:
    """Observe the peak memory of the job run inside the block into `vidray_job_peak_memory_bytes`.

    Why reset the peak first: a long-lived worker's lifetime peak says nothing about this job.
    Linux resets VmHWM when "5" is written to /proc/self/clear_refs. Where the reset is refused or
    silently ignored, a daemon thread samples RSS every 10 ms instead, which can miss a spike
    shorter than that but never reports the process's lifetime peak as this job's. The yielded dict
    gets `peak_bytes` (and `method`: "hwm" or "sampled") for the caller's logs.
    """
    out: dict[str, Any] = {}
    stop = threading.Event()
    sampled = [_current_rss_bytes()]
    sampler: threading.Thread | None = None
    if not _reset_peak_rss():

        def _sample() -> None:
            while not stop.wait(_SAMPLE_PERIOD_S):
                sampled[0] = max(sampled[0], _current_rss_bytes())

        sampler = threading.Thread(target=_sample, name="vidray-job-memory", daemon=True)
        sampler.start()
    try:
        yield out
    finally:
        if sampler is None:
            out["peak_bytes"], out["method"] = _peak_rss_bytes(), "hwm"
        else:
            stop.set()
            sampler.join(timeout=1.0)
            out["peak_bytes"] = max(sampled[0], _current_rss_bytes())
            out["method"] = "sampled"
        get(JOB_PEAK_MEMORY).labels(task=task).observe(out["peak_bytes"])
        get(PROCESS_MEMORY).labels(component=component).set(_current_rss_bytes())
