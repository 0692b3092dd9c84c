"""Any OpenAI-compatible vLLM endpoint (`vllm serve`, or `ray.serve.llm` from models/vllm_deploy.py).

Differences from the OpenAI backend: the endpoint is required (`base_url`, else $VLLM_BASE_URL),
the key is optional (vLLM's `--api-key`; $VLLM_API_KEY), the model id is discovered from
`/v1/models` when not configured, usage is free unless a price is configured, and frames can travel
either as `image_url` parts (default, works with every VLM) or as one `video_url` part
(`options.video_mode: video_url`) for video-native models such as Qwen2.5-VL / LLaVA-NeXT-Video,
which then see the frames as a clip instead of separate images.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cluster.optional import available
from models._openai_wire import video_part
from models.base import Availability, TimedFrame
from models.errors import MalformedOutput
from models.openai_backend import OpenAIBackend


class VLLMBackend(OpenAIBackend):
    """A vLLM server speaking the OpenAI protocol; text generation and (for VLMs) vision-language."""

    type_name = "vllm"
    base_url_env = "VLLM_BASE_URL"
    key_optional = True

    _discovered: str | None = None

    def availability(self) -> Availability:
        if not available("openai"):
            return Availability.no("openai client is not installed: pip install 'vidray[api]'")
        if not self.base_url:
            return Availability.no(f"no endpoint: set models.backends.{self.name}.base_url or VLLM_BASE_URL")
        return Availability.yes(f"model {self.model or '(discovered)'} at {self.base_url}")

    def resolved_model(self) -> str:
        """The configured model id, else the first one the server lists (one request, then remembered)."""
        if self.config.model:
            return self.config.model
        if self._discovered is None:
            from models import _credentials
            from models._openai_wire import map_error

            try:
                listed = list(self.client().models.list())
            except Exception as e:
                raise map_error(
                    e, backend=self.name, secrets=self._secrets(), key_hint=_credentials.where(self.config)
                ) from None
            if not listed:
                raise MalformedOutput(f"{self.name}: {self.base_url} serves no models", backend=self.name)
            self._discovered = str(listed[0].id)
        return self._discovered

    @property
    def model(self) -> str:
        return self.config.model or self._discovered or ""

    def media_parts(self, frames: Sequence[TimedFrame]) -> list[dict[str, Any]]:
        if frames and self.config.options.get("video_mode", "frames") == "video_url":
            return video_part(frames, max_side=int(self.config.options.get("image_max_side", 768)))
        return super().media_parts(frames)
