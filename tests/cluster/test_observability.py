"""Dashboards and alerts only reference metrics that exist; code registers them as declared; logs carry ids.

A typo in a PromQL expression never errors: the panel is empty and the alert never fires. So every
expression in cluster/observability/ is parsed here and each metric name must be declared in
cluster/metric_names.py (or be one of Ray's own, which must exist in the installed Ray).
"""

from __future__ import annotations

import ast
import io
import json
import logging
import re
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from cluster import metric_names as mn

ROOT = Path(__file__).resolve().parents[2]
OBS = ROOT / "cluster" / "observability"

_KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset",
    "inf", "nan",
}  # fmt: skip


def metric_names_in(expr: str) -> set[str]:
    """Metric names referenced by a PromQL expression (functions, labels, keywords and durations removed)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', expr)  # string literals
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # range selectors, incl. $__rate_interval
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for m in re.finditer(r"(?<![\w$.])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?", text):
        word, is_call = m.group(1), m.group(2)
        if not is_call and word.lower() not in _KEYWORDS:
            names.add(word)
    return names


def _alert_rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load((OBS / "alerts.yaml").read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def _dashboard_exprs() -> list[str]:
    dash = json.loads((OBS / "grafana-dashboard.json").read_text())
    return [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]


def test_extractor_finds_names_and_ignores_syntax() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (le, stage) (rate(vidray_stage_seconds_bucket{stage="decode",x=~"a|b"}'
        "[$__rate_interval]))) / on (stage) group_left max(foo_bar) > 2 * 1024 and vidray_queue_depth offset 5m"
    )
    assert metric_names_in(expr) == {"vidray_stage_seconds_bucket", "foo_bar", "vidray_queue_depth"}


@pytest.mark.parametrize("source", ["alerts", "dashboard"])
def test_every_promql_name_is_in_the_catalogue(source: str) -> None:
    exprs = [r["expr"] for r in _alert_rules()] if source == "alerts" else _dashboard_exprs()
    assert exprs
    known = mn.known_series()
    unknown = {name for e in exprs for name in metric_names_in(e)} - known
    assert not unknown, f"not declared in cluster/metric_names.py: {sorted(unknown)}"


def test_a_misspelt_metric_would_be_caught() -> None:
    assert metric_names_in("rate(vidray_jobs_faild_total[5m])") - mn.known_series() == {
        "vidray_jobs_faild_total"
    }


def test_catalogue_covers_what_operators_ask_about() -> None:
    wanted = {
        "vidray_jobs_submitted_total", "vidray_jobs_succeeded_total", "vidray_jobs_failed_total",
        "vidray_stage_seconds", "vidray_jobs", "vidray_queue_capacity", "vidray_cache_hits_total", "vidray_download_bytes_total",
        "vidray_model_seconds", "vidray_model_requests_total", "vidray_ab_outcomes_total",
        "vidray_api_cost_usd_total", "vidray_job_peak_memory_bytes",
    }  # fmt: skip
    assert wanted <= set(mn.CATALOGUE)
    assert {"task", "backend"} <= set(mn.spec(mn.JOBS_FAILED).labels)
    assert "backend" in mn.spec(mn.MODEL_SECONDS).labels
    assert "provider" in mn.spec(mn.API_COST).labels
    assert "variant" in mn.spec(mn.AB_OUTCOMES).labels


def test_alert_rules_are_complete() -> None:
    rules = _alert_rules()
    names = [r["alert"] for r in rules]
    assert len(names) == len(set(names))
    for r in rules:
        assert r["labels"]["severity"] in {"page", "ticket"}, r["alert"]
        assert r["annotations"]["summary"] and r["annotations"]["runbook"].startswith(
            "docs/observability.md#"
        )
        assert re.fullmatch(r"\d+[smh]", r["for"]), r["alert"]
    text = " ".join(r["expr"] for r in rules)
    for topic in (
        "vidray_jobs_failed_total",
        "vidray_queue_capacity",
        "vidray_api_cost_usd_total",
        "ray_node_mem_used",
    ):
        assert topic in text, f"no alert on {topic}"
    anchors = set(re.findall(r"^#+ .*?\{#([\w-]+)\}|^<a id=\"([\w-]+)\"", _docs(), re.M))
    doc_anchors = {a for pair in anchors for a in pair if a} | {
        re.sub(r"[^a-z0-9 -]", "", h.lower()).replace(" ", "-")
        for h in re.findall(r"^#+ (.*)$", _docs(), re.M)
    }
    for r in rules:
        assert r["annotations"]["runbook"].split("#", 1)[1] in doc_anchors, r["annotations"]["runbook"]


def _docs() -> str:
    path = ROOT / "docs" / "observability.md"
    return path.read_text() if path.is_file() else ""


def test_dashboard_structure() -> None:
    dash = json.loads((OBS / "grafana-dashboard.json").read_text())
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    for p in dash["panels"]:
        assert p["datasource"]["uid"] == "${datasource}", p["title"]
        assert p["targets"], p["title"]
        assert len({t["refId"] for t in p["targets"]}) == len(p["targets"])


def test_ray_metric_names_exist_in_installed_ray() -> None:
    import ray

    source = "\n".join(
        p.read_text(errors="ignore")
        for p in Path(ray.__file__).parent.rglob("*.py")
        if "tests" not in p.parts
    )
    for name in mn.RAY_METRICS:
        base = re.sub(r"_(total|bucket|sum|count)$", "", name.removeprefix("ray_"))
        templated = re.sub(r"_(http|grpc)_", "_{protocol_name}_", base)
        assert f'"{base}"' in source or templated in source, f"{name} not found in ray {ray.__version__}"


def _registrations() -> list[tuple[str, str, str, tuple[str, ...] | None]]:
    """(file:line, kind, name, labels or None) for every metrics.counter/gauge/histogram("vidray_...") call."""
    found = []
    packages = ["cluster", "data_pipeline", "models", "analysis", "serve", "train", "vidray", "benchmarks"]
    for path in (p for pkg in packages for p in (ROOT / pkg).rglob("*.py")):
        rel = path.relative_to(ROOT)
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            if node.func.attr not in {"counter", "gauge", "histogram"} or not node.args:
                continue
            first = node.args[0]
            if not (isinstance(first, ast.Constant) and str(first.value).startswith("vidray_")):
                continue
            labels: tuple[str, ...] | None = None
            label_node = (
                node.args[2]
                if len(node.args) > 2
                else next((k.value for k in node.keywords if k.arg == "labelnames"), None)
            )
            if isinstance(label_node, ast.List | ast.Tuple):
                labels = tuple(ast.literal_eval(label_node))
            elif label_node is None:
                labels = ()
            found.append((f"{rel}:{node.lineno}", node.func.attr, str(first.value), labels))
    return found


def test_code_registers_metrics_as_declared() -> None:
    problems = []
    for where, kind, name, labels in _registrations():
        declared = mn.CATALOGUE.get(name)
        if declared is None:
            problems.append(f"{where}: {name} is not declared in cluster/metric_names.py")
        elif declared.kind != kind or (labels is not None and labels != declared.labels):
            problems.append(
                f"{where}: {name} is {kind}{list(labels or [])}, declared {declared.kind}{list(declared.labels)}"
            )
    assert not problems, "\n".join(problems)


def test_get_creates_the_declared_metric() -> None:
    from cluster import metrics

    mn.get(mn.DOWNLOAD_BYTES).labels(source="http").inc(1000)
    assert metrics.value("vidray_download_bytes_total", {"source": "http"}) >= 1000
    mn.get(mn.STAGE_SECONDS).labels(stage="decode").observe(0.2)
    assert metrics.value("vidray_stage_seconds_count", {"stage": "decode"}) >= 1
    assert mn.get(mn.STAGE_SECONDS) is mn.get(mn.STAGE_SECONDS)
    with pytest.raises(KeyError, match=r"metric_names\.py"):
        mn.get("vidray_nope_total")


def test_log_lines_carry_job_and_request_ids() -> None:
    from cluster.log import JsonFormatter, log_context

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("vidray.test_observability")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        with log_context(job_id="job-1", request_id="req-9"):
            logger.info("decoded %d frames", 16, extra={"stage": "decode"})
        logger.info("outside")
    finally:
        logger.removeHandler(handler)
    inside, outside = (json.loads(line) for line in stream.getvalue().splitlines())
    assert inside["job_id"] == "job-1" and inside["request_id"] == "req-9"
    assert inside["msg"] == "decoded 16 frames" and inside["stage"] == "decode" and inside["level"] == "info"
    assert "job_id" not in outside and "request_id" not in outside


_EXPORTER = """
import os, sys, time, urllib.request
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
import ray
port = int(sys.argv[1])
ray.init(_node_ip_address="127.0.0.1", include_dashboard=False, num_cpus=1, _metrics_export_port=port,
         log_to_driver=False)
from cluster import metric_names as mn

@ray.remote
def emit():
    mn.ray_metric(mn.JOBS_SUCCEEDED).inc(1, tags={"task": "qa", "backend": "offline"})
    mn.ray_metric(mn.STAGE_SECONDS).observe(0.3, tags={"stage": "decode"})
    mn.ray_metric(mn.QUEUE_CAPACITY).set(64)
    time.sleep(30)  # stay alive until the agent has exported the values

ref = emit.remote()
names = set()
deadline = time.time() + 60
while time.time() < deadline:
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        names = {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line.startswith("ray_vidray_")}
        if {"ray_vidray_stage_seconds_bucket", "ray_vidray_queue_capacity"} <= names and any(
                n.startswith("ray_vidray_jobs_succeeded") for n in names):
            break
    except OSError:
        pass
    time.sleep(1)
print("NAMES", " ".join(sorted(names)), flush=True)
ray.cancel(ref, force=True)
ray.shutdown()
"""


@pytest.mark.integration
@pytest.mark.slow
def test_ray_metrics_export_uses_catalogue_names(tmp_path: Path) -> None:
    """Ray's metrics agent exports `ray_` + the catalogue name, so one relabel rule maps them back."""
    import os
    import subprocess
    import sys

    from tests.cluster import _procs

    port = _procs.free_port()
    env = {**os.environ, "HOME": str(tmp_path), "PYTHONPATH": str(ROOT)}
    env.pop("RAY_ADDRESS", None)
    proc = subprocess.run(
        [sys.executable, "-c", _EXPORTER, str(port)], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=240, start_new_session=True,
    )  # fmt: skip
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("NAMES")), "")
    names = set(line.split()[1:])
    assert {"ray_vidray_stage_seconds_bucket", "ray_vidray_queue_capacity"} <= names, (
        names,
        proc.stderr[-2000:],
    )
    assert "ray_vidray_jobs_succeeded_total" in names, names
    assert {n.removeprefix("ray_") for n in names} <= mn.known_series()


@pytest.mark.parametrize("reset_works", [True, False], ids=["hwm-reset", "sampler-fallback"])
def test_track_job_memory_sees_a_jobs_peak(reset_works: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """A job's peak is its own, not the process's lifetime peak, whether or not the kernel resets VmHWM."""
    from cluster import metrics

    if not reset_works:  # what gVisor-like sandboxes do: the write is accepted and ignored
        monkeypatch.setattr(mn, "_reset_peak_rss", lambda: False)
    hog = b"\x01" * (300 * 1024 * 1024)  # a big earlier peak the next jobs must not inherit
    del hog
    before = metrics.value("vidray_job_peak_memory_bytes_count", {"task": "memtest"})
    with mn.track_job_memory("memtest") as small:
        time.sleep(0.05)
    with mn.track_job_memory("memtest") as big:
        block = b"\x01" * (200 * 1024 * 1024)  # bytes * n writes every page, so all of it is resident
        time.sleep(0.1)  # longer than the sampler's period
        del block
    expected = "hwm" if reset_works else "sampled"
    assert small["method"] == big["method"] == expected
    assert big["peak_bytes"] - small["peak_bytes"] >= 150 * 1024 * 1024, (small, big)
    assert small["peak_bytes"] < mn._current_rss_bytes() + 250 * 1024 * 1024, small
    assert metrics.value("vidray_job_peak_memory_bytes_count", {"task": "memtest"}) == before + 2
    assert metrics.value("vidray_process_memory_bytes", {"component": "worker"}) > 0
