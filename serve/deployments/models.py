"""Model deployment: the chat model behind /v1/chat/completions and the analyzer.

On a GPU cluster the language model is a vLLM deployment built by `ray.serve.llm` (cluster.yaml
runs it as its own application, an OpenAI-compatible server); this deployment reaches it through
`models/`' router (its `vllm`/`openai`/`gemini` backends, with fallbacks, limits and budgets).
Where no language model is configured - this CPU machine, tests - it answers extractively from
what the analyzer measured about the attached media, and says so, instead of inventing text.

A tenth of a core: the extractive path is string work and the router's remote backends are
network waits; model weights never load in this process (vLLM runs in its own replicas).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import cluster.ray_runtime  # noqa: F401  (sets loopback Ray env before ray is imported)

# isort: split
import ray.serve

from cluster.log import setup_logging
from serve.settings import parse_serve_settings

log = logging.getLogger("serve.deployments.models")
EXTRACTIVE = "vidray-extractive"


def extractive_answer(messages: list[dict[str, str]], attachments: list[str]) -> str:
    """An answer made only of facts the analyzer measured (metadata), quoted back with the question."""
    question = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "").strip()
    if not attachments:
        return (
            "No video or image is attached and no language model is configured on this server, so I can only "
            "answer questions about attached media. Add a video_url part to your message."
        )
    facts = " ".join(attachments)
    return (
        f"About your question ({question[:200]!r}): here is what was measured from the attached media: {facts}. "
        "(Extractive answer: no language model is configured on this server.)"
    )


@ray.serve.deployment(
    ray_actor_options={"num_cpus": 0.1},  # network waits / string work; vLLM replicas hold the GPUs
    max_ongoing_requests=32,  # streams are mostly waiting on the backend
    autoscaling_config={"min_replicas": 1, "max_replicas": 2, "target_ongoing_requests": 16},
    health_check_period_s=5,
)
class ModelRouter:
    def __init__(self, args: dict[str, Any]) -> None:
        setup_logging()
        self.settings = parse_serve_settings(args)
        self.vidray = self.settings.vidray_settings()
        self.router: Any = None
        try:  # models/router.py (fallbacks, limits, budgets); absent in a serve-only build
            from models.router import Router  # type: ignore[import-not-found,unused-ignore]

            self.router = Router(self.vidray)
        except Exception as e:
            log.info("model router unavailable (%s); answering extractively", e)

    async def metrics_text(self) -> str:
        """This replica's Prometheus metrics; the ingress merges them into `/metrics`."""
        from cluster import metrics

        return metrics.render().decode()

    async def ping(self) -> str:
        return "ok"

    async def list_models(self) -> list[dict[str, Any]]:
        out = [{"id": "vidray", "owned_by": "vidray"}, {"id": EXTRACTIVE, "owned_by": "vidray"}]
        backends = getattr(getattr(self.vidray, "models", None), "backends", {}) or {}
        out += [{"id": name, "owned_by": getattr(cfg, "type", "vidray")} for name, cfg in backends.items()]
        return out

    def _router_stream(
        self, messages: list[dict[str, str]], attachments: list[str], max_tokens: int
    ) -> tuple[str, Iterator[str]]:
        """(model that answers, its text deltas) from the router's `chat` task order."""
        from models.base import ChatMessage

        context = "Attached media:\n" + "\n".join(attachments) if attachments else ""
        msgs = [ChatMessage("system", "You answer questions about videos. " + context)]
        for m in messages:
            role = m["role"]
            if role in ("system", "user", "assistant"):
                msgs.append(ChatMessage(role, m["content"]))  # type: ignore[arg-type]
        routed = self.router.stream(msgs, max_tokens=max_tokens)
        return str(routed.model or routed.backend), iter(routed)

    def _router_usable(self) -> bool:
        """Whether the router's first available chat backend is one we want answering HTTP chat."""
        for name in self.router.order("chat"):
            if self.router.availability(name).ok:
                return (
                    bool(getattr(self.router.backend(name), "network", False))
                    or self.settings.chat_offline_llm
                )
        return False

    async def chat_stream(
        self, messages: list[dict[str, str]], attachments: list[str], model: str, max_tokens: int
    ) -> AsyncIterator[dict[str, Any]]:
        """Yield {"delta", "model"} text pieces."""
        if self.router is not None and model != EXTRACTIVE and await asyncio.to_thread(self._router_usable):
            try:
                answering, it = await asyncio.to_thread(
                    self._router_stream, messages, attachments, max_tokens
                )
                first = await asyncio.to_thread(next, it, None)
                if first is not None:
                    yield {"delta": first, "model": answering}
                    while (piece := await asyncio.to_thread(next, it, None)) is not None:
                        yield {"delta": piece, "model": answering}
                    return
            except Exception as e:  # nothing sent yet: fall back to the extractive answer
                log.warning("router chat failed before the first token (%s); answering extractively", e)
        words = extractive_answer(messages, attachments).split(" ")
        budget = max(1, max_tokens)
        for i, word in enumerate(words[:budget]):
            yield {"delta": word if i == 0 else " " + word, "model": EXTRACTIVE}
