"""Real Ray Train + DeepSpeed ZeRO-2 on gloo, 2 workers: checkpoints, stop/resume, worker crash.

One uninterrupted run is the reference; a stopped-then-rerun run and a run whose worker is
SIGKILLed mid-run must reproduce its losses exactly from the resume point on, which only holds if
model, optimizer, data order, per-step randomness and the lr schedule all resume where they were.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.train.conftest import read_metrics
from train.config import TrainConfig, load_train_config

pytestmark = [
    pytest.mark.slow,
    pytest.mark.integration,
    pytest.mark.timeout(1500),
]  # slow when the box is loaded

ACTION_YAML = Path(__file__).parents[2] / "train" / "configs" / "action_tiny_cpu.yaml"


def _cfg(manifest: Path, storage: Path, name: str, *extra: str) -> TrainConfig:
    return load_train_config(
        ACTION_YAML,
        [
            f"name={name}",
            f"storage_path={storage}",
            f"data.manifest={manifest}",
            "data.synthetic=null",
            "data.size=32",
            "data.num_frames=4",
            "data.batch_size=4",
            "curriculum.frames=[]",
            "curriculum.unfreeze_at_step=3",
            "model.backbone=tiny_cnn",
            "model.pretrained=false",
            "optim.max_steps=6",
            "optim.warmup_steps=2",
            "checkpoint.every_n_steps=2",
            "eval.every_n_steps=3",
            *extra,
        ],
    )


def _run(cfg: TrainConfig) -> dict[str, Any]:
    from train.run import run

    return run(cfg)


@pytest.fixture(scope="module")
def reference(
    ray_local: None, tiny_actions: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict]:
    storage = tmp_path_factory.mktemp("train")
    summary = _run(_cfg(tiny_actions, storage, "full"))
    assert summary["steps"] == 6 and summary["export"]
    return storage, summary


def test_uninterrupted_run_reports_and_exports(reference: tuple[Path, dict]) -> None:
    storage, summary = reference
    metrics = read_metrics(storage / "full")
    assert sorted(metrics) == [1, 2, 3, 4, 5, 6]
    for m in metrics.values():
        assert m["loss"] > 0 and m["clips_per_s"] > 0 and m["memory_mb"] > 0
    assert "val_accuracy" in metrics[3] and "val_accuracy" in metrics[6]
    assert summary["final_loss"] == pytest.approx(metrics[6]["loss"])
    assert 0.0 <= summary["val_accuracy"] <= 1.0

    from train.inference import ActionClassifier
    from train.synthetic import CLASSES

    clf = ActionClassifier.from_pretrained(summary["export"])
    import numpy as np

    ranked = clf.predict(np.zeros((6, 40, 40, 3), dtype=np.uint8))
    assert sorted(label for label, _ in ranked) == sorted(CLASSES)
    assert sum(score for _, score in ranked) == pytest.approx(1.0, abs=1e-4)


def test_stop_then_rerun_resumes_with_identical_losses(
    reference: tuple[Path, dict], tiny_actions: Path
) -> None:
    storage, _ = reference
    first = _run(_cfg(tiny_actions, storage, "stopped", "fault.stop_after_steps=3"))
    assert first["steps"] == 3 and first["export"] is None
    second = _run(_cfg(tiny_actions, storage, "stopped"))  # same name + storage: resume
    assert second["steps"] == 6
    ref, got = read_metrics(storage / "full"), read_metrics(storage / "stopped")
    for step in range(1, 7):
        assert got[step]["loss"] == pytest.approx(ref[step]["loss"], rel=1e-5, abs=1e-6), step
    lines = (storage / "stopped" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 6  # steps 1-3, then 4-6 after resuming from the step-3 checkpoint


def test_killed_worker_resumes_from_last_checkpoint(reference: tuple[Path, dict], tiny_actions: Path) -> None:
    storage, _ = reference
    summary = _run(
        _cfg(
            tiny_actions,
            storage,
            "killed",
            "fault.kill_at_step=5",
            "fault.kill_rank=1",
            "fault.max_failures=1",
        )
    )
    assert summary["steps"] == 6
    assert (storage / "killed" / ".kill_injected").read_text() == "5"
    lines = (storage / "killed" / "metrics.jsonl").read_text().splitlines()
    import json

    steps = [json.loads(x)["step"] for x in lines]
    assert steps.count(1) == 1  # restarted from the step-4 checkpoint, not from scratch
    ref, got = read_metrics(storage / "full"), read_metrics(storage / "killed")
    for step in (5, 6):
        assert got[step]["loss"] == pytest.approx(ref[step]["loss"], rel=1e-5, abs=1e-6), step


def test_streaming_mode_splits_and_trains(reference: tuple[Path, dict], tiny_actions: Path) -> None:
    """data.deterministic=false: streaming_split shards (the GPU configs' mode) train and evaluate."""
    storage, _ = reference
    summary = _run(
        _cfg(
            tiny_actions,
            storage,
            "stream",
            "data.deterministic=false",
            "optim.max_steps=4",
            "checkpoint.export=false",
        )
    )
    assert summary["steps"] == 4 and summary["export"] is None and summary["checkpoint"]
    assert 0.0 <= summary["val_accuracy"] <= 1.0
