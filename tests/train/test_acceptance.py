"""Acceptance: recipe 1 on the synthetic action dataset reaches >= 90% held-out accuracy, and the
exported model keeps it outside training.

The whole shipped `action_tiny_cpu.yaml`: 500 training clips (5 motion classes), 2 Ray Train
workers, DeepSpeed ZeRO-2 on gloo, EfficientNet-Lite0 frozen then partly unfrozen, 150 steps.
Then the export (`<checkpoint>/hf`) goes through the two consumers of a trained model:
`train.inference.ActionClassifier` on fresh clips from `render_clip` (never in the dataset), and
`vidray analyze --tasks actions` with env VIDRAY_ACTION_MODEL pointing at it. An earlier export
scored 96.7% inside training and 1/5 through ActionClassifier (tests/train/test_export_roundtrip.py
has the cause); checking only the in-training number would not have caught it.

Minutes on a 2-core machine, so it is opt-in:
`VIDRAY_TRAIN_ACCEPTANCE=1 pytest tests/train/test_acceptance.py -s` (prints the summary).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from train.config import load_train_config

pytestmark = [
    pytest.mark.slow,
    pytest.mark.integration,
    pytest.mark.timeout(1800),
    # Minutes of both cores: opt-in so the whole project suite stays well under 30 minutes.
    pytest.mark.skipif(
        os.environ.get("VIDRAY_TRAIN_ACCEPTANCE") != "1",
        reason="set VIDRAY_TRAIN_ACCEPTANCE=1 to run the 90% accuracy acceptance run (~10 min on 2 cores)",
    ),
]

FRESH_PER_CLASS = 5  # 25 fresh clips: 80% = 20 right, so one class mislabelled wholesale fails
FRESH_SEED = 20261207  # not the dataset's seed: clips no training or validation step has seen


def test_action_recipe_reaches_90_percent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from train.inference import ActionClassifier
    from train.run import run
    from train.synthetic import CLASSES, render_clip, write_mp4

    cfg = load_train_config(
        Path(__file__).parents[2] / "train" / "configs" / "action_tiny_cpu.yaml",
        [
            f"storage_path={tmp_path / 'runs'}",
            f"data.manifest={tmp_path / 'actions' / 'manifest.jsonl'}",
        ],
    )
    try:
        summary = run(cfg)
    finally:
        from cluster.ray_runtime import shutdown_ray

        shutdown_ray()
    print(summary)
    assert summary["val_accuracy"] >= 0.90, summary

    clf = ActionClassifier.from_pretrained(summary["export"])
    assert clf.labels == list(CLASSES)

    # held-out validation videos, decoded from file the way training decoded them
    from train.data import read_manifest

    rows = read_manifest(cfg.data.manifest, "val")[:20]  # type: ignore[arg-type]
    val_right = sum(clf.predict_video(r["video"])[0][0] == r["label_name"] for r in rows)

    # fresh rendered clips (raw RGB frames, as analysis hands them in), 5 per class
    assert cfg.data.synthetic is not None
    rng = np.random.default_rng(FRESH_SEED)
    fresh = [
        (label, render_clip(label, rng, size=cfg.data.synthetic.size, frames=cfg.data.synthetic.frames)[0])
        for _ in range(FRESH_PER_CLASS)
        for label in CLASSES
    ]
    predicted = [clf.predict(frames)[0][0] for _, frames in fresh]
    fresh_right = sum(p == label for p, (label, _) in zip(predicted, fresh, strict=True))
    confusion = {
        label: [p for p, (lab, _) in zip(predicted, fresh, strict=True) if lab == label] for label in CLASSES
    }

    # the analysis actions task with the export plugged in, on one rendered clip
    from analysis.runner import analyze
    from analysis.schema import AnalysisRequest
    from cluster.config import load_settings

    truth = "move_right"
    frames, _ = render_clip(truth, rng, size=cfg.data.synthetic.size, frames=cfg.data.synthetic.frames)
    clip = tmp_path / "analyze" / "clip.mp4"
    clip.parent.mkdir()
    write_mp4(frames, clip)
    monkeypatch.setenv("VIDRAY_ACTION_MODEL", str(summary["export"]))
    settings = load_settings(
        env={"VIDRAY_DATA_DIR": str(tmp_path / "analyze" / "data"), "VIDRAY_OFFLINE": "1"}
    )
    result = analyze(str(clip), AnalysisRequest(tasks=["actions"]), settings).public()
    assert not result.get("errors"), result.get("errors")
    labels = [a["label"] for a in result["actions"]]
    # "<motion label> / <model label>": without the suffix the model did not load (analysis logs and
    # skips a broken export rather than failing)
    model_labels = [x.rsplit(" / ", 1)[1] if " / " in x else None for x in labels]

    print(
        {
            "val_accuracy_in_training": summary["val_accuracy"],
            "val_videos_via_ActionClassifier": f"{val_right}/{len(rows)}",
            "fresh_clips_via_ActionClassifier": f"{fresh_right}/{len(fresh)}",
            "fresh_predictions_by_true_class": confusion,
            "analyze_actions_labels": labels,
            "analyze_truth": truth,
        }
    )
    assert val_right >= 0.8 * len(rows), (val_right, len(rows))
    assert len(fresh) >= 20 and fresh_right >= 0.8 * len(fresh), confusion
    assert labels and all(m in CLASSES for m in model_labels), labels
    # last, so a slow (shared, loaded) box still reports the export's accuracy above
    assert summary["wall_s"] < 15 * 60, summary  # includes generating and decoding the 620 clips
