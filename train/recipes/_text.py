"""Text side of the video-language recipes: an offline BPE tokenizer and prompt/answer sequences.

Why train a tokenizer: nothing can be downloaded from a model hub here, and the recipes train tiny
random language models anyway. A byte-level BPE trained on the dataset's captions, questions and
answers (seconds) is wrapped in `PreTrainedTokenizerFast`, so it exports with `save_pretrained`
beside the model. Training is deterministic for the same corpus, so every rank builds the same one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from cluster.optional import require

SPECIAL = [
    "<pad>",
    "<unk>",
    "<bos>",
    "<eos>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|video_pad|>",
    "<|image_pad|>",
    "[MASK]",
    "[CLS]",
    "[SEP]",
]
CAPTION_PROMPT = "describe the video"


def corpus_from_manifest(manifest: str | Path) -> list[str]:
    """Every caption, question, answer and label name in the manifest, in file order."""
    texts: list[str] = []
    for line in Path(manifest).read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            texts += [str(row[k]) for k in ("caption", "question", "answer", "label_name") if row.get(k)]
    return [*texts, CAPTION_PROMPT, "user", "assistant"]


def build_tokenizer(corpus: list[str], vocab_size: int) -> Any:
    """Byte-level BPE trained on `corpus`, as a transformers fast tokenizer with the special tokens."""
    tokenizers = require("tokenizers", "train")
    transformers = require("transformers", "train")
    tok = tokenizers.Tokenizer(tokenizers.models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=True)
    tok.decoder = tokenizers.decoders.ByteLevel()
    trainer = tokenizers.trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL,
        initial_alphabet=tokenizers.pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus, trainer=trainer)
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        unk_token="<unk>",
        bos_token="<bos>",
        eos_token="<eos>",
        mask_token="[MASK]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        additional_special_tokens=SPECIAL[4:10],
    )


def tokenizer_for(manifest: str | None, vocab_size: int) -> Any:
    if manifest is None:
        raise ValueError(
            "the video-language recipes build their tokenizer from data.manifest's text; set data.manifest"
        )
    return build_tokenizer(corpus_from_manifest(manifest), vocab_size)


def chat_sequences(
    tok: Any,
    batch: dict[str, np.ndarray],
    step: int,
    video_tokens: int,
    max_text: int,
) -> tuple[list[list[int]], list[list[int]], list[str]]:
    """One chat per clip: QA or captioning, alternating by clip and step so both tasks share each batch.

    Layout: <|im_start|>user <|vision_start|> <|video_pad|>*N <|vision_end|> prompt <|im_end|>
            <|im_start|>assistant answer <|im_end|>; labels are -100 everywhere but the answer.
    With `video_tokens=0` the video block is left out (the caller puts visual embeddings in front).
    """
    ids = tok.convert_tokens_to_ids
    start, end = ids("<|im_start|>"), ids("<|im_end|>")
    seqs, labels, tasks = [], [], []
    for i in range(len(batch["idx"])):
        qa = (i + step) % 2 == 0 or not str(batch["caption"][i])
        prompt = str(batch["question"][i]) if qa else CAPTION_PROMPT
        answer = str(batch["answer"][i]) if qa else str(batch["caption"][i])
        p = tok.encode(f" user {prompt}", add_special_tokens=False)[:max_text]
        a = tok.encode(f" {answer}", add_special_tokens=False)[:max_text]
        video = (
            [ids("<|vision_start|>"), *[ids("<|video_pad|>")] * video_tokens, ids("<|vision_end|>")]
            if video_tokens
            else []
        )
        head = [start, *video, *p, end, start, *tok.encode(" assistant", add_special_tokens=False)]
        seq = head + a + [end]
        seqs.append(seq)
        labels.append([-100] * len(head) + a + [end])
        tasks.append("qa" if qa else "caption")
    return seqs, labels, tasks


def pad(seqs: list[list[int]], value: int) -> np.ndarray:
    n = max(len(s) for s in seqs)
    return np.array([s + [value] * (n - len(s)) for s in seqs], dtype=np.int64)
