"""Training configuration: one pydantic model per concern, loaded from YAML plus `key=value` overrides.

Why pydantic with `extra="forbid"`: a typo in a 40-line YAML (`max_step: 100`) must fail at load
time with the key's name, not silently train with the default. DeepSpeed settings pass through as a
plain dict (`deepspeed:`) because DeepSpeed validates its own schema and grows keys every release;
the loop only fills in the batch-size keys it derives from this config. Recipe-specific settings
(`model:`) are validated by the recipe's own `Options` model when the config is built, so they fail
just as early.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from cluster.config import _deep_merge, parse_overrides
from cluster.errors import InputError

RecipeName = Literal["action", "vlm", "video_chatgpt", "videobert"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ScalingSettings(_Model):
    """Maps onto `ray.train.ScalingConfig`."""

    num_workers: int = Field(
        2, ge=1, description="Ray Train workers (one process each; one GPU each when use_gpu)."
    )
    use_gpu: bool = Field(
        False, description="Give each worker a GPU; the process group then uses NCCL, else gloo."
    )
    cpus_per_worker: float = Field(
        1.0,
        gt=0,
        description="CPUs reserved per worker. On a 2-core box with 2 workers this must leave room for Ray Data "
        "decode tasks, which is why those use fractional CPUs (see data.decode_num_cpus).",
    )
    torch_threads: int = Field(
        1, ge=1, description="torch.set_num_threads in each worker (1 avoids oversubscription on CPU)."
    )


class SyntheticSettings(_Model):
    """Generate the synthetic action dataset (train/synthetic.py) into `data.manifest`'s folder if missing."""

    train_per_class: int = Field(100, ge=1, description="Training clips per motion class.")
    val_per_class: int = Field(24, ge=1, description="Held-out validation clips per motion class.")
    size: int = Field(64, ge=16, description="Frame width and height in pixels.")
    frames: int = Field(16, ge=2, description="Frames per clip (encoded at 8 fps).")
    seed: int = Field(0, description="Generator seed; same seed, same videos.")


class DataSettings(_Model):
    """Where clips come from and how they are decoded (train/data.py)."""

    manifest: str | None = Field(
        None, description="JSONL clip manifest: {clip_id, video, start, end, label, split, ...}."
    )
    dataset_uri: str | None = Field(
        None,
        description="Versioned Lance dataset (data_pipeline.datasets); when set it is used instead of "
        "data.manifest (clips and class names), decoded by the same rule as a manifest clip.",
    )
    dataset_version: int | None = Field(
        None, description="Lance dataset version; None = the latest when the run starts (then pinned)."
    )
    synthetic: SyntheticSettings | None = Field(
        None, description="Generate a synthetic action dataset at `manifest` if absent."
    )
    num_frames: int = Field(
        8,
        ge=1,
        description="Frames sampled uniformly from each clip at decode time (the curriculum's maximum).",
    )
    size: int = Field(64, ge=16, description="Decoded frames are resized to size x size.")
    batch_size: int = Field(
        16, ge=1, description="Clips per worker per step (DeepSpeed train_micro_batch_size_per_gpu)."
    )
    decode_num_cpus: float = Field(
        0.25,
        gt=0,
        le=8,
        description="CPUs per Ray Data decode task. Fractional on purpose: with whole CPUs, 2 trainer workers on "
        "2 cores leave no slot for decoding and the pipeline deadlocks.",
    )
    deterministic: bool = Field(
        True,
        description="Decode once, give every worker a fixed rank partition and a seeded per-epoch order, so a "
        "resumed run sees exactly the batches an uninterrupted one would. False streams shards "
        "(streaming_split) for datasets bigger than memory; resume then restarts the epoch's order.",
    )
    max_clips: int | None = Field(
        None, ge=1, description="Use only the first N clips of each split (smoke tests)."
    )


class OptimSettings(_Model):
    """AdamW with linear warmup then cosine decay; group learning rates are scaled by the recipe."""

    lr: float = Field(1e-3, gt=0, description="Peak learning rate.")
    weight_decay: float = Field(0.01, ge=0, description="AdamW weight decay.")
    warmup_steps: int = Field(10, ge=0, description="Linear warmup steps.")
    min_lr_ratio: float = Field(
        0.1, ge=0, le=1, description="Cosine decays to lr * min_lr_ratio at max_steps."
    )
    max_steps: int = Field(100, ge=1, description="Optimizer steps in the whole run (resume included).")
    grad_clip: float = Field(1.0, ge=0, description="DeepSpeed gradient_clipping; 0 disables.")


class CurriculumSettings(_Model):
    """Progressive strategies, all keyed by global step so a resumed run follows the same schedule."""

    unfreeze_at_step: int | None = Field(
        None,
        ge=0,
        description="Backbone learning rate is 0 (and its forward runs without grad) before this step.",
    )
    backbone_lr_scale: float = Field(0.1, ge=0, description="Backbone lr = optim.lr * this once unfrozen.")
    frames: list[tuple[int, int]] = Field(
        default_factory=list,
        description="[[step, frames], ...]: from `step` on, use this many frames per clip (<= data.num_frames).",
    )
    resolution: list[tuple[int, int]] = Field(
        default_factory=list, description="[[step, size], ...]: from `step` on, resize frames to size x size."
    )


class CheckpointSettings(_Model):
    """Ray Train checkpoints (DeepSpeed state + loop state) and the final Hugging Face export."""

    every_n_steps: int = Field(
        50, ge=1, description="Report a checkpoint every N steps (and always at the end)."
    )
    num_to_keep: int | None = Field(2, ge=1, description="Ray Train keeps this many latest checkpoints.")
    export: bool = Field(
        True, description="Write save_pretrained weights into the final checkpoint's hf/ folder."
    )


class EvalSettings(_Model):
    """Evaluation on the validation split."""

    every_n_steps: int = Field(50, ge=1, description="Evaluate every N steps and at the end.")
    max_batches: int | None = Field(
        None, ge=1, description="Cap evaluation batches per worker (None = whole split)."
    )


class FaultSettings(_Model):
    """Failure handling and injection (for tests and drills)."""

    max_failures: int = Field(
        0, ge=-1, description="ray.train.FailureConfig(max_failures); -1 retries forever."
    )
    kill_at_step: int | None = Field(
        None,
        ge=1,
        description="SIGKILL one worker when it reaches this step, once per run (marker in the run folder).",
    )
    kill_rank: int = Field(0, ge=0, description="Which worker rank to kill.")
    stop_after_steps: int | None = Field(
        None,
        ge=1,
        description="End the run early after this step (after its checkpoint): simulates a stopped job.",
    )


class TrainConfig(_Model):
    """A whole training run: `python -m train.run --config X.yaml key=value ...`."""

    name: str = Field(
        ..., min_length=1, description="Run name; re-running with the same name + storage_path resumes."
    )
    storage_path: str = Field(
        "~/.cache/vidray/train",
        description="Ray Train storage (local path or s3://); checkpoints live under <storage>/<name>.",
    )
    recipe: RecipeName = Field(
        ..., description="Which recipe in train/recipes/ builds the model and the losses."
    )
    seed: int = Field(0, description="Seeds model init, data order and per-step randomness.")
    scaling: ScalingSettings = Field(default_factory=ScalingSettings)
    data: DataSettings = Field(default_factory=DataSettings)
    optim: OptimSettings = Field(default_factory=OptimSettings)
    curriculum: CurriculumSettings = Field(default_factory=CurriculumSettings)
    checkpoint: CheckpointSettings = Field(default_factory=CheckpointSettings)
    eval: EvalSettings = Field(default_factory=EvalSettings)
    fault: FaultSettings = Field(default_factory=FaultSettings)
    deepspeed: dict[str, Any] = Field(
        default_factory=lambda: {"zero_optimization": {"stage": 2}},
        description="DeepSpeed config, passed through. The loop sets train_micro_batch_size_per_gpu, "
        "gradient_clipping and (if absent) gradient_accumulation_steps; bf16.enabled may be 'auto'.",
    )
    model: dict[str, Any] = Field(
        default_factory=dict, description="Recipe options; validated by the recipe's Options."
    )

    @model_validator(mode="after")
    def _check(self) -> TrainConfig:
        if self.data.manifest is None and self.data.dataset_uri is None:
            raise ValueError("set data.manifest (JSONL clip manifest) or data.dataset_uri (Lance dataset)")
        for step, frames in self.curriculum.frames:
            if frames > self.data.num_frames or frames < 1 or step < 0:
                raise ValueError(
                    f"curriculum.frames entry [{step}, {frames}] must have 1 <= frames <= data.num_frames "
                    f"({self.data.num_frames}); raise data.num_frames or lower the entry"
                )
        for key in ("train_micro_batch_size_per_gpu", "train_batch_size"):
            if key in self.deepspeed:
                raise ValueError(
                    f"deepspeed.{key} is derived from data.batch_size; remove it and set data.batch_size"
                )
        from train.recipes import options_for

        options_for(self.recipe, self.model)  # raises ValueError naming the bad key
        return self

    @property
    def run_dir(self) -> Path:
        """Local run folder (markers, metrics log); only meaningful for a local storage_path."""
        return Path(self.storage_path).expanduser() / self.name


def load_train_config(path: str | Path | None, overrides: list[str] | None = None) -> TrainConfig:
    """Load a YAML file, apply `key=value` overrides, validate; errors name the key and the file."""
    doc: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise InputError(f"train config {p} does not exist; see train/configs/ for shipped ones")
        try:
            loaded = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as e:
            raise InputError(f"train config {p} is not valid YAML: {e}") from e
        if not isinstance(loaded, dict):
            raise InputError(f"train config {p} must hold a mapping at the top level")
        doc = loaded
    doc = _deep_merge(doc, parse_overrides(overrides or []))
    try:
        return TrainConfig.model_validate(doc)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(x) for x in first["loc"]) or "(top level)"
        raise InputError(
            f"invalid train setting {where}: {first['msg']} (config {path or 'overrides'})"
        ) from e
