"""SmolLM2 through transformers' GGUF loader: loads offline, answers a simple question, streams."""

from __future__ import annotations

import pytest

from models.base import ChatMessage
from models.offline.llm import SmolLM2Generator


@pytest.fixture(scope="module")
def llm() -> SmolLM2Generator:
    g = SmolLM2Generator()
    if not g.availability().ok:
        pytest.skip(g.availability().reason)
    return g


@pytest.mark.slow
def test_answers_a_factual_question(llm: SmolLM2Generator) -> None:
    out = llm.generate([ChatMessage("user", "What is the capital of France?")], max_tokens=12)
    assert "paris" in out.text.lower()
    assert out.usage.input_tokens > 5 and 0 < out.usage.output_tokens <= 12
    assert out.model and out.finish_reason in {"stop", "length"}


@pytest.mark.slow
def test_stream_matches_generate(llm: SmolLM2Generator) -> None:
    messages = [
        ChatMessage("system", "Answer in one short sentence."),
        ChatMessage("user", "Name a primary colour."),
    ]
    deltas = list(llm.stream(messages, max_tokens=8))
    assert len(deltas) >= 2
    assert "".join(deltas).strip() == llm.generate(messages, max_tokens=8).text
