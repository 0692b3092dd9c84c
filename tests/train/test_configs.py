"""Every shipped train YAML loads and validates; bad keys fail early with their name."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from cluster.errors import InputError
from train.config import load_train_config
from train.loop import deepspeed_config, lr_at

CONFIGS = sorted((Path(__file__).parents[2] / "train" / "configs").glob("*.yaml"))


def test_configs_exist() -> None:
    names = {p.name for p in CONFIGS}
    assert {"action_tiny_cpu.yaml", "vlm_tiny_cpu.yaml"} <= names
    for recipe in ("action", "vlm", "video_chatgpt", "videobert"):
        assert f"{recipe}_tiny_cpu.yaml" in names and f"{recipe}_gpu.yaml" in names


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_config_validates(path: Path) -> None:
    cfg = load_train_config(path)
    assert cfg.name and cfg.recipe
    text = path.read_text()
    assert "python -m train.run --config train/configs/" in text  # the header gives the launch command
    assert "ray job submit --working-dir ." in text
    ds = deepspeed_config(cfg, cfg.scaling.num_workers)
    assert ds["train_micro_batch_size_per_gpu"] == cfg.data.batch_size
    assert ds["zero_optimization"]["stage"] in (2, 3)


def test_unknown_key_is_named() -> None:
    with pytest.raises(InputError, match=r"optim\.max_step"):
        load_train_config(CONFIGS[0], ["optim.max_step=3"])


def test_recipe_option_typo_is_named() -> None:
    with pytest.raises(InputError, match="lora_rnk"):
        load_train_config(Path(CONFIGS[0]).with_name("vlm_tiny_cpu.yaml"), ["model.lora_rnk=4"])


def test_overrides_and_curriculum_check() -> None:
    cfg = load_train_config(
        Path(CONFIGS[0]).with_name("action_tiny_cpu.yaml"), ["optim.max_steps=7", "data.batch_size=3"]
    )
    assert cfg.optim.max_steps == 7 and cfg.data.batch_size == 3
    with pytest.raises(InputError, match=r"curriculum\.frames"):
        load_train_config(Path(CONFIGS[0]).with_name("action_tiny_cpu.yaml"), ["curriculum.frames=[[0,99]]"])
    with pytest.raises(InputError, match="train_micro_batch_size_per_gpu"):
        load_train_config(
            Path(CONFIGS[0]).with_name("action_tiny_cpu.yaml"), ["deepspeed.train_micro_batch_size_per_gpu=4"]
        )


def test_lr_schedule_warmup_then_cosine() -> None:
    cfg = load_train_config(
        Path(CONFIGS[0]).with_name("action_tiny_cpu.yaml"),
        ["optim.lr=1.0", "optim.warmup_steps=4", "optim.max_steps=20", "optim.min_lr_ratio=0.1"],
    )
    lrs = [lr_at(cfg, s) for s in range(20)]
    assert lrs[0] == pytest.approx(0.25) and lrs[3] == pytest.approx(1.0)
    assert all(a >= b - 1e-12 for a, b in itertools.pairwise(lrs[3:]))  # non-increasing after warmup
    assert lrs[-1] > 0.1 - 1e-9


def test_bf16_auto_resolves_off_on_cpu() -> None:
    cfg = load_train_config(Path(CONFIGS[0]).with_name("action_gpu.yaml"))
    assert deepspeed_config(cfg, 4)["bf16"]["enabled"] is False  # no CUDA here


def test_frames_and_resolution_curriculum_follow_the_step() -> None:
    import numpy as np

    from train.recipes import get_recipe

    cfg = load_train_config(
        Path(CONFIGS[0]).with_name("action_tiny_cpu.yaml"),
        ["data.num_frames=8", "curriculum.frames=[[0,4],[10,8]]", "curriculum.resolution=[[0,32],[10,64]]"],
    )
    recipe = get_recipe(cfg, ["a", "b"])  # building the recipe does not build the model
    batch = {"frames": np.zeros((2, 8, 64, 64, 3), dtype=np.uint8)}
    assert tuple(recipe.video_tensor(batch, 0).shape) == (2, 4, 3, 32, 32)
    assert tuple(recipe.video_tensor(batch, 10).shape) == (2, 8, 3, 64, 64)
    assert (
        recipe.lr_scale("backbone", 0) == 0.0
        and recipe.lr_scale("backbone", 60) == cfg.curriculum.backbone_lr_scale
    )
