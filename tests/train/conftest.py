"""Fixtures for training tests: one small synthetic action dataset per session, and a Ray for a module."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from train.synthetic import generate


@pytest.fixture(scope="session")
def tiny_actions(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """8 train + 2 val clips per class (5 classes), 32x32, 8 frames: ~1 s to generate."""
    ds = generate(
        tmp_path_factory.mktemp("actions") / "ds", train_per_class=8, val_per_class=2, size=32, frames=8
    )
    return ds.manifest


@pytest.fixture(scope="module")
def ray_local() -> Iterator[None]:
    """A loopback Ray shared by the runs of one test module (starting one costs ~10 s here)."""
    from cluster.ray_runtime import init_ray, shutdown_ray

    init_ray(num_cpus=2)
    yield
    shutdown_ray()


def read_metrics(run_dir: Path) -> dict[int, dict]:
    """metrics.jsonl of a run as {step: metrics}; a step logged twice (before a crash and after the
    resume) keeps its last record."""
    out: dict[int, dict] = {}
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        m = json.loads(line)
        out[int(m["step"])] = m
    return out
