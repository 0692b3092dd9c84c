"""Recipes: what model to build and which losses to compute; the loop (train/loop.py) does the rest.

| recipe          | module            | what it trains |
|-----------------|-------------------|----------------|
| `action`        | action.py         | EfficientNet-Lite0 (ImageNet) per frame + temporal head; frozen-then-unfrozen |
| `vlm`           | vlm.py            | tiny Qwen2-VL on video QA + captions, LoRA (peft) or full fine-tuning |
| `video_chatgpt` | video_chatgpt.py  | pooled frame features -> projector -> LM; QA + caption + classification losses |
| `videobert`     | videobert.py      | masked prediction over k-means visual tokens + transcript tokens |

Recipes are looked up in a dict and imported lazily, so loading a config never imports torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from train.recipes.options import OPTIONS

if TYPE_CHECKING:
    from train.config import TrainConfig
    from train.recipes.base import Recipe

RECIPES: dict[str, str] = {
    "action": "train.recipes.action:ActionRecipe",
    "vlm": "train.recipes.vlm:VLMRecipe",
    "video_chatgpt": "train.recipes.video_chatgpt:VideoChatGPTRecipe",
    "videobert": "train.recipes.videobert:VideoBERTRecipe",
}


def options_for(recipe: str, model: dict[str, Any]) -> BaseModel:
    """Validate `model:` for `recipe`; the ValueError names the offending key."""
    try:
        return OPTIONS[recipe].model_validate(model)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(x) for x in first["loc"])
        raise ValueError(f"model.{where}: {first['msg']} (recipe {recipe})") from e


def get_recipe(cfg: TrainConfig, labels: list[str]) -> Recipe:
    """Instantiate the recipe named by `cfg.recipe`."""
    module, cls = RECIPES[cfg.recipe].split(":")
    return getattr(importlib.import_module(module), cls)(cfg, labels)


__all__ = ["OPTIONS", "RECIPES", "get_recipe", "options_for"]
