"""cluster.metrics: one metric per name, readable values, text exposition."""

from __future__ import annotations

import threading

import pytest

from cluster import metrics


def test_counter_is_created_once_and_counts() -> None:
    c = metrics.counter("vidray_test_things_total", "Things.", ["kind"])
    assert metrics.counter("vidray_test_things_total", "Things.", ["kind"]) is c
    before = metrics.value("vidray_test_things_total", {"kind": "a"})
    c.labels(kind="a").inc()
    metrics.counter("vidray_test_things_total", "Things.", ["kind"]).labels(kind="a").inc(2)
    assert metrics.value("vidray_test_things_total", {"kind": "a"}) == before + 3
    assert metrics.value("vidray_test_things_total", {"kind": "never"}) == 0.0


def test_same_name_with_another_type_or_labels_is_an_error() -> None:
    metrics.gauge("vidray_test_level", "Level.")
    with pytest.raises(ValueError, match="already exists as Gauge"):
        metrics.counter("vidray_test_level", "Level.")
    with pytest.raises(ValueError, match=r"one type and label set per name"):
        metrics.gauge("vidray_test_level", "Level.", ["x"])


def test_histogram_gauge_and_render() -> None:
    h = metrics.histogram("vidray_test_seconds", "Durations.", ["stage"], buckets=[0.1, 1.0])
    h.labels(stage="probe").observe(0.5)
    g = metrics.gauge("vidray_test_inflight", "In flight.")
    g.set(3)
    assert metrics.value("vidray_test_seconds_count", {"stage": "probe"}) == 1
    assert metrics.value("vidray_test_seconds_bucket", {"stage": "probe", "le": "1.0"}) == 1
    assert metrics.value("vidray_test_seconds_bucket", {"stage": "probe", "le": "0.1"}) == 0
    assert metrics.value("vidray_test_inflight") == 3
    text = metrics.render().decode()
    assert 'vidray_test_seconds_count{stage="probe"} 1.0' in text
    assert "vidray_test_inflight 3.0" in text


def test_concurrent_creation_yields_one_metric() -> None:
    got: list[object] = []

    def make() -> None:
        got.append(metrics.counter("vidray_test_race_total", "Race."))

    threads = [threading.Thread(target=make) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(x) for x in got}) == 1


def test_merge_texts_sums_counters_and_histograms_and_keeps_gauge_max() -> None:
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    from cluster.metrics import merge_texts

    texts = []
    for n in (1, 3):
        reg = CollectorRegistry()
        Counter("x_total", "c", ["k"], registry=reg).labels(k="a").inc(n)
        Histogram("y_seconds", "h", registry=reg, buckets=(1.0,)).observe(0.5 * n)
        Gauge("z", "g", registry=reg).set(n)
        texts.append(generate_latest(reg).decode())
    fams = {f.name: f for f in text_string_to_metric_families(merge_texts(texts))}
    assert fams["x"].samples[0].value == 4.0 and fams["x"].type == "counter"
    hist = {s.name: s.value for s in fams["y_seconds"].samples if s.labels.get("le") in (None, "+Inf")}
    assert hist["y_seconds_count"] == 2.0 and hist["y_seconds_sum"] == 2.0
    assert fams["z"].samples[0].value == 3.0
    assert not any(name.endswith("_created") for name in fams)
