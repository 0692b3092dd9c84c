"""Recipe 4: VideoBERT-style self-supervised pre-training over visual and transcript tokens.

Start here (Sun et al. 2019, "VideoBERT"): frames become *visual words* by k-means over frame
features; a BERT reads `[CLS] transcript [SEP] visual words [SEP]` and predicts masked tokens of
both kinds. Here the frame feature is the frame average-pooled to 4x4 RGB (cheap, deterministic),
the codebook is fitted on rank 0's first batch and broadcast so every rank quantises alike, and it
is stored as a model buffer so checkpoints and the export carry it. The transcript is the clip's
caption (the synthetic stand-in for speech).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from cluster.optional import require
from train.recipes._text import tokenizer_for
from train.recipes.base import Recipe

FEATURE_GRID = 4


def frame_features(video: torch.Tensor) -> torch.Tensor:
    """[B, T, 3, H, W] -> [B, T, 3 * 4 * 4]: each frame average-pooled to a 4x4 colour grid."""
    b, t = video.shape[:2]
    return nn.functional.adaptive_avg_pool2d(video.flatten(0, 1), FEATURE_GRID).reshape(b, t, -1)


def kmeans(x: torch.Tensor, k: int, iters: int = 20, seed: int = 0) -> torch.Tensor:
    """Plain Lloyd's k-means with seeded init; [N, D] -> centroids [k, D]."""
    g = torch.Generator().manual_seed(seed)
    centroids = x[torch.randperm(len(x), generator=g)[:k]].clone()
    if len(centroids) < k:  # fewer points than centroids: pad with jittered copies
        extra = centroids[torch.randint(len(centroids), (k - len(centroids),), generator=g)]
        centroids = torch.cat([centroids, extra + 1e-3 * torch.randn(extra.shape, generator=g)])
    for _ in range(iters):
        assign = torch.cdist(x, centroids).argmin(1)
        for j in range(k):
            members = x[assign == j]
            if len(members):
                centroids[j] = members.mean(0)
    return centroids


class VideoBERTModel(nn.Module):
    def __init__(self, bert: Any, codebook_size: int, feature_dim: int):
        super().__init__()
        self.bert = bert
        self.register_buffer("codebook", torch.zeros(codebook_size, feature_dim))

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        labels: torch.Tensor,
        visual: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        logits = self.bert(input_ids=input_ids, attention_mask=attention_mask).logits.float()
        tok = nn.functional.cross_entropy(logits.transpose(1, 2), labels, ignore_index=-100, reduction="none")
        masked = labels != -100
        vis, txt = masked & visual, masked & ~visual
        zero = logits.new_zeros(())
        return {
            "visual_loss": tok[vis].mean() if vis.any() else zero,
            "text_loss": tok[txt].mean() if txt.any() else zero,
            "visual_correct": (logits.argmax(-1)[vis] == labels[vis]).float().sum(),
            "visual_count": vis.float().sum(),
        }


class VideoBERTRecipe(Recipe):
    def __init__(self, cfg: Any, labels: list[str]):
        super().__init__(cfg, labels)
        self.tok = tokenizer_for(cfg.data.manifest, self.opts.vocab_size)
        self.text_vocab = len(self.tok)

    def build_model(self) -> torch.nn.Module:
        transformers = require("transformers", "train")
        h = self.opts.hidden_size
        config = transformers.BertConfig(
            vocab_size=self.text_vocab + self.opts.codebook_size,
            hidden_size=h,
            num_hidden_layers=self.opts.layers,
            num_attention_heads=4,
            intermediate_size=2 * h,
            max_position_embeddings=256,
            pad_token_id=self.tok.pad_token_id,
        )
        return VideoBERTModel(
            transformers.BertForMaskedLM(config), self.opts.codebook_size, 3 * FEATURE_GRID**2
        )

    def prepare(self, model: torch.nn.Module, sample: dict[str, np.ndarray]) -> None:
        """Fit the visual codebook on rank 0's first batch and broadcast it (same words on every rank)."""
        import torch.distributed as dist

        feats = frame_features(self.video_tensor(sample, 0)).flatten(0, 1)
        codebook = kmeans(feats, self.opts.codebook_size, seed=self.cfg.seed)
        if dist.is_available() and dist.is_initialized():
            dist.broadcast(codebook, src=0)
        model.codebook.copy_(codebook)  # type: ignore[operator]

    def _sequences(self, model: Any, batch: dict[str, np.ndarray], step: int) -> dict[str, torch.Tensor]:
        module = model.module if hasattr(model, "module") else model
        feats = frame_features(self.video_tensor(batch, step))  # [B, T, D]
        words = torch.cdist(feats, module.codebook.unsqueeze(0).expand(len(feats), -1, -1)).argmin(-1)
        cls_id, sep_id, pad_id = self.tok.cls_token_id, self.tok.sep_token_id, self.tok.pad_token_id
        seqs, is_vis = [], []
        for i in range(len(feats)):
            text = self.tok.encode(f" {batch['caption'][i]}", add_special_tokens=False)[
                : self.opts.max_text_tokens
            ]
            vis = (words[i] + self.text_vocab).tolist()
            seqs.append([cls_id, *text, sep_id, *vis, sep_id])
            is_vis.append([False] * (len(text) + 2) + [True] * len(vis) + [False])
        n = max(len(s) for s in seqs)
        ids = torch.tensor([s + [pad_id] * (n - len(s)) for s in seqs])
        visual = torch.tensor([v + [False] * (n - len(v)) for v in is_vis])
        special = (ids == cls_id) | (ids == sep_id) | (ids == pad_id)
        # BERT masking: 15% of real tokens are targets; 80% of those become [MASK], 10% random, 10% kept.
        target = (torch.rand(ids.shape) < self.opts.mask_prob) & ~special
        labels = torch.where(target, ids, torch.full_like(ids, -100))
        roll = torch.rand(ids.shape)
        masked = ids.clone()
        masked[target & (roll < 0.8)] = self.tok.mask_token_id
        rand_tok = torch.randint(0, self.text_vocab + self.opts.codebook_size, ids.shape)
        swap = target & (roll >= 0.8) & (roll < 0.9)
        masked[swap] = rand_tok[swap]
        return {
            "input_ids": masked,
            "attention_mask": (ids != pad_id).long(),
            "labels": labels,
            "visual": visual,
        }

    def loss(
        self, model: Any, batch: dict[str, np.ndarray], step: int
    ) -> tuple[torch.Tensor, dict[str, float]]:
        out = model(**self._sequences(model, batch, step))
        total = self.opts.visual_weight * out["visual_loss"] + self.opts.text_weight * out["text_loss"]
        return total, {
            "visual_loss": float(out["visual_loss"].detach()),
            "text_loss": float(out["text_loss"].detach()),
        }

    def evaluate(self, model: Any, batch: dict[str, np.ndarray]) -> dict[str, float]:
        g = torch.get_rng_state()
        torch.manual_seed(self.cfg.seed)  # the same masks at every evaluation
        with torch.no_grad():
            out = model(**self._sequences(model, batch, self.cfg.optim.max_steps))
        torch.set_rng_state(g)
        loss = self.opts.visual_weight * out["visual_loss"] + self.opts.text_weight * out["text_loss"]
        n = float(len(batch["idx"]))
        return {"loss_sum": float(loss) * n, "count": n}

    def export(self, state_dict: dict[str, torch.Tensor], out_dir: Path) -> None:
        safetensors_torch = require("safetensors.torch", "train")
        model: Any = self.build_model()
        model.load_state_dict(state_dict)
        model.bert.save_pretrained(out_dir, safe_serialization=True)  # BertForMaskedLM.from_pretrained
        self.tok.save_pretrained(out_dir)
        safetensors_torch.save_file(
            {"codebook": model.codebook.contiguous()}, str(out_dir / "visual_codebook.safetensors")
        )
