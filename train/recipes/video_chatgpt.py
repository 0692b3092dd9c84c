"""Recipe 3: Video-ChatGPT-style adapter - pooled frame features -> projector -> language model.

Start here (Maaz et al. 2023, "Video-ChatGPT"): a frozen frame encoder gives a feature map per
frame, [T, h*w, C]. Averaging over time gives h*w *spatial* tokens, averaging over space gives T
*temporal* tokens; both sets go through one trainable linear projector into the LM's embedding
space and are put in front of the chat text. Only the projector, the LM and the classification
head train.

Multi-task in one run: the batch mixes QA and captioning chats (see `_text.chat_sequences`), and an
action-classification head reads the mean visual feature; the loss is
`qa_weight * qa + caption_weight * caption + cls_weight * cls`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from cluster.optional import require
from train.recipes._frame_encoders import build_frame_encoder
from train.recipes._text import chat_sequences, pad, tokenizer_for
from train.recipes.base import Recipe
from train.recipes.vlm import per_task_loss


class VideoChatGPTModel(nn.Module):
    def __init__(self, encoder: Any, lm: Any, num_labels: int):
        super().__init__()
        self.encoder = encoder.requires_grad_(False)
        c = encoder.out_channels
        hidden = lm.config.hidden_size
        self.projector = nn.Sequential(nn.Linear(c, hidden), nn.GELU(), nn.Linear(hidden, hidden))
        self.lm = lm
        self.cls_head = nn.Linear(c, max(1, num_labels))

    def visual_tokens(self, video: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[B, T, 3, H, W] -> (spatio-temporal tokens [B, h*w + T, C], pooled feature [B, C])."""
        b, t = video.shape[:2]
        self.encoder.eval()
        with torch.no_grad():
            fmap = self.encoder(video.flatten(0, 1))  # [B*T, C, h, w]
        feats = fmap.flatten(2).transpose(1, 2).reshape(b, t, -1, fmap.shape[1])  # [B, T, hw, C]
        spatial = feats.mean(dim=1)  # [B, hw, C]  (pooled over time)
        temporal = feats.mean(dim=2)  # [B, T, C]  (pooled over space)
        return torch.cat([spatial, temporal], dim=1), feats.mean(dim=(1, 2))

    def forward(
        self,
        pixel_values: torch.Tensor,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        labels: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        tokens, pooled = self.visual_tokens(pixel_values)
        vis = self.projector(tokens)
        text = self.lm.get_input_embeddings()(input_ids)
        embeds = torch.cat([vis.to(text.dtype), text], dim=1)
        mask = torch.cat([attention_mask.new_ones(vis.shape[:2]), attention_mask], dim=1)
        logits = self.lm(inputs_embeds=embeds, attention_mask=mask).logits[:, vis.shape[1] :]
        return {"logits": logits, "cls_logits": self.cls_head(pooled)}


class VideoChatGPTRecipe(Recipe):
    def __init__(self, cfg: Any, labels: list[str]):
        super().__init__(cfg, labels)
        self.tok = tokenizer_for(cfg.data.manifest, self.opts.vocab_size)

    def _lm(self) -> Any:
        transformers = require("transformers", "train")
        h = self.opts.hidden_size
        config = transformers.LlamaConfig(
            vocab_size=len(self.tok),
            hidden_size=h,
            intermediate_size=2 * h,
            num_hidden_layers=self.opts.layers,
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=h // 4,
            max_position_embeddings=512,
            bos_token_id=self.tok.bos_token_id,
            eos_token_id=self.tok.convert_tokens_to_ids("<|im_end|>"),
            pad_token_id=self.tok.pad_token_id,
        )
        return transformers.LlamaForCausalLM(config)

    def build_model(self) -> torch.nn.Module:
        encoder = build_frame_encoder(self.opts.backbone, self.opts.pretrained)
        return VideoChatGPTModel(encoder, self._lm(), len(self.labels))

    def _forward(
        self, model: Any, batch: dict[str, np.ndarray], step: int
    ) -> tuple[torch.Tensor, dict[str, float], torch.Tensor]:
        seqs, labels, tasks = chat_sequences(self.tok, batch, step, 0, self.opts.max_text_tokens)
        input_ids = torch.from_numpy(pad(seqs, self.tok.pad_token_id))
        out = model(
            pixel_values=self.video_tensor(batch, step),
            input_ids=input_ids,
            attention_mask=(input_ids != self.tok.pad_token_id).long(),
        )
        o = self.opts
        total, parts = per_task_loss(
            out["logits"],
            torch.from_numpy(pad(labels, -100)),
            tasks,
            {"qa": o.qa_weight, "caption": o.caption_weight},
        )
        if o.cls_weight > 0:
            cls = nn.functional.cross_entropy(
                out["cls_logits"].float(), torch.from_numpy(batch["label"].astype(np.int64))
            )
            total = total + o.cls_weight * cls
            parts["cls_loss"] = float(cls.detach())
        return total, parts, out["cls_logits"]

    def loss(
        self, model: Any, batch: dict[str, np.ndarray], step: int
    ) -> tuple[torch.Tensor, dict[str, float]]:
        total, parts, _ = self._forward(model, batch, step)
        return total, parts

    def evaluate(self, model: Any, batch: dict[str, np.ndarray]) -> dict[str, float]:
        with torch.no_grad():
            total, _, cls_logits = self._forward(model, batch, self.cfg.optim.max_steps)
        n = float(len(batch["idx"]))
        result = {"loss_sum": float(total) * n, "count": n}
        if self.opts.cls_weight > 0:  # the classification head's accuracy on held-out clips
            result["correct"] = float((cls_logits.argmax(-1).numpy() == batch["label"]).sum())
        return result

    def export(self, state_dict: dict[str, torch.Tensor], out_dir: Path) -> None:
        safetensors_torch = require("safetensors.torch", "train")
        model: Any = self.build_model()
        model.load_state_dict(state_dict)
        model.lm.save_pretrained(out_dir / "lm", safe_serialization=True)  # loads with AutoModelForCausalLM
        self.tok.save_pretrained(out_dir / "lm")
        adapter = {k: v.contiguous() for k, v in model.state_dict().items() if not k.startswith("lm.")}
        safetensors_torch.save_file(adapter, str(out_dir / "adapter.safetensors"))
        import json

        (out_dir / "adapter_config.json").write_text(
            json.dumps(
                {
                    "recipe": "video_chatgpt",
                    "options": self.opts.model_dump(),
                    "labels": self.labels,
                    "num_frames": self.frames_at(self.cfg.optim.max_steps),
                    "image_size": self.size_at(self.cfg.optim.max_steps),
                },
                indent=2,
            )
        )
