"""Build a tiny random-weight Llama and an offline BPE tokenizer in a directory vLLM can load.

Run with the vLLM venv's Python (its transformers is the one vLLM checks the config with):

    .venv-vllm/bin/python tests/models/tiny_llama.py /tmp/tiny-llama

Why these sizes: head_dim must be 64 (vLLM's CPU attention kernels have no head size 16), two
layers keep loading under a second; the tokenizer is trained on a few sentences so no hub download
is needed, and a chat template makes `/v1/chat/completions` work.
"""

from __future__ import annotations

import sys
from pathlib import Path

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "Vidray turns videos into answers, summaries, code and training data.",
    "What happens in the video? A person writes Python code on a dark screen.",
    "def main(): print('hello world') return 0",
] * 20


def build(out: Path) -> None:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<unk>", "<s>", "</s>", "<|system|>", "<|user|>", "<|assistant|>"]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(
        CORPUS, trainers.BpeTrainer(vocab_size=512, special_tokens=specials, show_progress=False)
    )
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>")
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(out)

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(fast),
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=2,  # head_dim = 128 / 2 = 64
        num_key_value_heads=2,
        max_position_embeddings=512,
        bos_token_id=fast.bos_token_id,
        eos_token_id=fast.eos_token_id,
        tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(config).float()
    model.config.dtype = torch.float32
    model.save_pretrained(out, safe_serialization=True)


if __name__ == "__main__":
    target = Path(sys.argv[1])
    target.mkdir(parents=True, exist_ok=True)
    build(target)
    print(target)
