"""Recipe 2: video-language fine-tuning of a tiny random Qwen2-VL, with LoRA (peft) or full fine-tuning.

Start here: `loss` turns a batch of decoded clips into Qwen2-VL inputs by hand - the transformers
video processor needs torchvision, which cannot be installed beside the CPU torch (DESIGN.md):
  1. frames -> CLIP-normalised, resized to a multiple of 28 (patch 14 x spatial merge 2), even count
  2. Qwen's patch layout: [t, h, w] grid of 2x14x14 patches flattened per row (`qwen_video_patches`)
  3. chat text with N <|video_pad|> tokens, N = t*h*w / merge^2, and `mm_token_type_ids` = 2 there
  4. per-clip token losses, averaged per task (QA, caption) and weighted (`model.qa_weight`, ...)

The model is random and tiny (built from a config in milliseconds); a real run swaps `_build_config`
for `Qwen2VLForConditionalGeneration.from_pretrained(path)` and keeps everything else.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from cluster.optional import require
from train.recipes._text import chat_sequences, pad, tokenizer_for
from train.recipes.base import Recipe

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
PATCH, TEMPORAL_PATCH, MERGE = 14, 2, 2


def qwen_video_patches(video: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """[T, 3, H, W] (normalised, T even, H/W multiples of 28) -> (patches [t*h*w, 3*2*14*14], grid [t, h, w])."""
    t_, c, h_, w_ = video.shape
    gt, gh, gw = t_ // TEMPORAL_PATCH, h_ // PATCH, w_ // PATCH
    x = video.reshape(gt, TEMPORAL_PATCH, c, gh // MERGE, MERGE, PATCH, gw // MERGE, MERGE, PATCH)
    x = x.permute(0, 3, 6, 4, 7, 2, 1, 5, 8)
    return x.reshape(gt * gh * gw, c * TEMPORAL_PATCH * PATCH * PATCH), torch.tensor([gt, gh, gw])


def per_task_loss(
    logits: torch.Tensor, labels: torch.Tensor, tasks: list[str], weights: dict[str, float]
) -> tuple[torch.Tensor, dict[str, float]]:
    """Next-token loss per sequence, averaged within each task, then the weighted sum over tasks."""
    shift_logits, shift_labels = logits[:, :-1].float(), labels[:, 1:]
    tok = torch.nn.functional.cross_entropy(
        shift_logits.transpose(1, 2), shift_labels, ignore_index=-100, reduction="none"
    )
    mask = (shift_labels != -100).float()
    per_seq = (tok * mask).sum(1) / mask.sum(1).clamp(min=1)
    total = logits.new_zeros((), dtype=torch.float32)
    parts: dict[str, float] = {}
    for task, w in weights.items():
        sel = [i for i, t in enumerate(tasks) if t == task]
        if sel and w > 0:
            task_loss = per_seq[sel].mean()
            total = total + w * task_loss
            parts[f"{task}_loss"] = float(task_loss.detach())
    return total, parts


class VLMRecipe(Recipe):
    def __init__(self, cfg: Any, labels: list[str]):
        super().__init__(cfg, labels)
        self.tok = tokenizer_for(cfg.data.manifest, self.opts.vocab_size)

    def _build_config(self) -> Any:
        transformers = require("transformers", "train")
        o, ids = self.opts, self.tok.convert_tokens_to_ids
        heads = 4
        head_dim = o.hidden_size // heads
        section = head_dim // 2  # mrope sections (t, h, w) must sum to head_dim / 2
        mrope = [section - 2 * (section // 3), section // 3, section // 3]
        return transformers.Qwen2VLConfig(
            text_config={
                "vocab_size": len(self.tok),
                "hidden_size": o.hidden_size,
                "intermediate_size": 2 * o.hidden_size,
                "num_hidden_layers": o.layers,
                "num_attention_heads": heads,
                "num_key_value_heads": 2,
                "max_position_embeddings": 1024,
                "bos_token_id": ids("<bos>"),
                "eos_token_id": ids("<|im_end|>"),
                "pad_token_id": ids("<pad>"),
                "rope_scaling": {"type": "mrope", "mrope_section": mrope},
            },
            vision_config={
                "depth": o.vision_depth,
                "embed_dim": o.vision_dim,
                "hidden_size": o.hidden_size,
                "num_heads": 2,
                "mlp_ratio": 2,
                "patch_size": PATCH,
                "temporal_patch_size": TEMPORAL_PATCH,
                "spatial_merge_size": MERGE,
                "in_channels": 3,
            },
            image_token_id=ids("<|image_pad|>"),
            video_token_id=ids("<|video_pad|>"),
            vision_start_token_id=ids("<|vision_start|>"),
            vision_end_token_id=ids("<|vision_end|>"),
            bos_token_id=ids("<bos>"),
            eos_token_id=ids("<|im_end|>"),
            pad_token_id=ids("<pad>"),
        )

    def _base_model(self) -> Any:
        transformers = require("transformers", "train")
        return transformers.Qwen2VLForConditionalGeneration(self._build_config())

    def _wrap_lora(self, model: Any) -> Any:
        if self.opts.lora_rank == 0:
            return model
        peft = require("peft", "train")
        lora = peft.LoraConfig(
            r=self.opts.lora_rank,
            lora_alpha=self.opts.lora_alpha,
            lora_dropout=0.0,
            target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        )
        return peft.get_peft_model(model, lora)

    def build_model(self) -> torch.nn.Module:
        return self._wrap_lora(self._base_model())

    def _inputs(
        self, batch: dict[str, np.ndarray], step: int
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor, list[str]]:
        video = self.video_tensor(batch, step)  # [B, T, 3, S, S]
        t = video.shape[1] - video.shape[1] % TEMPORAL_PATCH
        s = max(28, self.size_at(step) // 28 * 28)
        b = video.shape[0]
        v = torch.nn.functional.interpolate(
            video[:, :t].flatten(0, 1), size=(s, s), mode="bilinear", align_corners=False
        )
        mean, std = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1), torch.tensor(CLIP_STD).view(1, 3, 1, 1)
        v = ((v - mean) / std).view(b, t, 3, s, s)
        patches, grids = zip(*(qwen_video_patches(v[i]) for i in range(b)), strict=True)
        n_video = int(grids[0].prod()) // (MERGE * MERGE)
        seqs, labels, tasks = chat_sequences(self.tok, batch, step, n_video, self.opts.max_text_tokens)
        input_ids = torch.from_numpy(pad(seqs, self.tok.pad_token_id))
        video_id = self.tok.convert_tokens_to_ids("<|video_pad|>")
        inputs = {
            "input_ids": input_ids,
            "attention_mask": (input_ids != self.tok.pad_token_id).long(),
            "mm_token_type_ids": (input_ids == video_id).long() * 2,
            "pixel_values_videos": torch.cat(patches),
            "video_grid_thw": torch.stack(grids),
        }
        return inputs, torch.from_numpy(pad(labels, -100)), tasks

    def loss(
        self, model: Any, batch: dict[str, np.ndarray], step: int
    ) -> tuple[torch.Tensor, dict[str, float]]:
        inputs, labels, tasks = self._inputs(batch, step)
        logits = model(**inputs).logits
        return per_task_loss(
            logits, labels, tasks, {"qa": self.opts.qa_weight, "caption": self.opts.caption_weight}
        )

    def export(self, state_dict: dict[str, torch.Tensor], out_dir: Path) -> None:
        model: Any = self.build_model()
        model.load_state_dict(state_dict)
        if self.opts.lora_rank:
            model = model.merge_and_unload()  # plain Qwen2-VL weights: loadable without peft
        model.save_pretrained(out_dir, safe_serialization=True)
        self.tok.save_pretrained(out_dir)
