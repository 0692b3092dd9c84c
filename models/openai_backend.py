"""OpenAI chat models (text and vision) through the official `openai` client.

Frames travel as base64 JPEG `image_url` parts, each preceded by a text part carrying its timestamp,
so the model can say *when* something happens. Requests hold at most `options.max_frames` frames
(default 32); more frames are processed in batches whose notes are then combined in a final call
(map-reduce), with usage summed over all calls so cost accounting stays exact.

Configuration (`models.backends.<name>`): `model`, `base_url` (else $OPENAI_BASE_URL),
`api_key_env` (OPENAI_API_KEY) / `api_key_file`, `timeout_s`; options: `max_frames`,
`image_detail` ("low" | "high" | "auto"), `image_max_side`, `tokens_per_image` (cost estimate),
`extra_body` (provider-specific request fields, e.g. vLLM's `{"min_tokens": 4}`).
The client's own retries are off: the router retries, backs off and falls back.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any

from cluster.optional import available, require
from models import _credentials
from models._openai_wire import (
    estimate_tokens,
    frame_parts,
    map_error,
    usage_of,
    wire_messages,
)
from models.base import (
    Availability,
    ChatMessage,
    Generation,
    Kind,
    TextGenerator,
    TimedFrame,
    Usage,
    VisionLanguage,
)
from models.errors import MalformedOutput, MissingCredentials

_MAP_PROMPT = (
    "You see frames {first:.2f}s to {last:.2f}s of a longer video. Write concise notes, each starting "
    "with its timestamp, of everything relevant to the request below.\n\nRequest: {request}"
)


class OpenAIBackend(VisionLanguage, TextGenerator):
    """OpenAI (or any OpenAI-protocol service with a key) for text generation and vision-language tasks."""

    kind = Kind.VISION_LANGUAGE
    kinds = (Kind.TEXT_GENERATION, Kind.VISION_LANGUAGE)
    type_name = "openai"
    network = True
    #: env var consulted when `base_url` is not configured
    base_url_env = "OPENAI_BASE_URL"
    #: whether a call may go out without an API key (local OpenAI-compatible servers)
    key_optional = False

    _client: Any = None

    # ------------------------------------------------------------ configuration

    @property
    def base_url(self) -> str | None:
        return self.config.base_url or os.environ.get(self.base_url_env) or None

    @property
    def model(self) -> str:
        return self.config.model

    def _opt(self, key: str, default: Any) -> Any:
        return self.config.options.get(key, default)

    def availability(self) -> Availability:
        if not available("openai"):
            return Availability.no("openai is not installed: pip install 'vidray[api]'")
        if not self.key_optional and not _credentials.api_key(self.config):
            return Availability.no(f"no API key: {_credentials.where(self.config)}")
        return Availability.yes(f"model {self.model or '?'} at {self.base_url or 'api.openai.com'}")

    def _secrets(self) -> list[str | None]:
        return [_credentials.api_key(self.config)]

    def client(self) -> Any:
        """The `openai.OpenAI` client, created on first use (retries off: the router owns them)."""
        if self._client is None:
            openai = require("openai", "api")
            key = _credentials.api_key(self.config)
            if not key and not self.key_optional:
                raise MissingCredentials(
                    f"{self.name}: no API key; {_credentials.where(self.config)}", backend=self.name
                )
            self._client = openai.OpenAI(
                api_key=key or "EMPTY", base_url=self.base_url, max_retries=0, timeout=self.config.timeout_s
            )
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    # ------------------------------------------------------------ cost

    def estimate_usage(
        self, messages: Sequence[ChatMessage] = (), frames: Sequence[TimedFrame] = (), max_tokens: int = 0
    ) -> Usage:
        n_batches = max(1, -(-len(frames) // self._max_frames())) if frames else 1
        calls = n_batches + (1 if n_batches > 1 else 0)
        base = estimate_tokens(messages, len(frames), int(self._opt("tokens_per_image", 85)), max_tokens)
        return Usage(base.input_tokens + (calls - 1) * max_tokens, base.output_tokens * calls)

    # ------------------------------------------------------------ calls

    def _max_frames(self) -> int:
        return max(1, int(self._opt("max_frames", 32)))

    def media_parts(self, frames: Sequence[TimedFrame]) -> list[dict[str, Any]]:
        """How frames are sent; the vLLM backend overrides this to send a `video_url` part."""
        return frame_parts(
            frames,
            detail=str(self._opt("image_detail", "low")),
            max_side=int(self._opt("image_max_side", 768)),
        )

    def resolved_model(self) -> str:
        if not self.model:
            raise MissingCredentials(f"{self.name}: no model configured (models.backends.{self.name}.model)")
        return self.model

    def _create(self, wire: list[dict[str, Any]], max_tokens: int, temperature: float, **extra: Any) -> Any:
        client = self.client()
        body = self._opt("extra_body", None)
        if body:
            extra["extra_body"] = dict(body)
        try:
            return client.chat.completions.create(
                model=self.resolved_model(),
                messages=wire,
                max_tokens=max_tokens,
                temperature=temperature,
                **extra,
            )
        except Exception as e:
            raise map_error(
                e, backend=self.name, secrets=self._secrets(), key_hint=_credentials.where(self.config)
            ) from None

    def _complete(self, wire: list[dict[str, Any]], max_tokens: int, temperature: float) -> Generation:
        resp = self._create(wire, max_tokens, temperature)
        choices = getattr(resp, "choices", None)
        if not choices:
            raise MalformedOutput(f"{self.name}: response has no choices", backend=self.name)
        text = choices[0].message.content
        if not isinstance(text, str) or not text.strip():
            raise MalformedOutput(f"{self.name}: response has empty content", backend=self.name)
        return Generation(
            text=text,
            usage=usage_of(resp),
            model=str(getattr(resp, "model", "") or self.model),
            finish_reason=str(choices[0].finish_reason or ""),
        )

    def generate(
        self,
        messages: list[ChatMessage],
        frames: Sequence[TimedFrame] = (),
        *,
        max_tokens: int = 512,
        temperature: float = 0.0,
    ) -> Generation:
        frames = list(frames)
        size = self._max_frames()
        if len(frames) <= size:
            return self._complete(wire_messages(messages, self.media_parts(frames)), max_tokens, temperature)
        # Map: notes per batch of frames. Reduce: answer from the notes, as text.
        request = next((m.content for m in reversed(messages) if m.role == "user"), "")
        notes: list[str] = []
        used = Usage()
        for i in range(0, len(frames), size):
            batch = frames[i : i + size]
            prompt = _MAP_PROMPT.format(first=batch[0].t, last=batch[-1].t, request=request)
            g = self._complete(
                wire_messages([ChatMessage("user", prompt)], self.media_parts(batch)), max_tokens, temperature
            )
            notes.append(g.text)
            used = Usage(used.input_tokens + g.usage.input_tokens, used.output_tokens + g.usage.output_tokens)
        joined = "\n\n".join(notes)
        final = [
            *messages[:-1],
            ChatMessage("user", f"Notes from the video's frames:\n{joined}\n\n{request}"),
        ]
        g = self._complete(wire_messages(final, []), max_tokens, temperature)
        total = Usage(used.input_tokens + g.usage.input_tokens, used.output_tokens + g.usage.output_tokens)
        return Generation(g.text, total, g.model, g.finish_reason)

    def stream(
        self,
        messages: list[ChatMessage],
        frames: Sequence[TimedFrame] = (),
        *,
        max_tokens: int = 512,
        temperature: float = 0.0,
    ) -> Iterator[str]:
        frames = list(frames)
        if len(frames) > self._max_frames():
            yield self.generate(messages, frames, max_tokens=max_tokens, temperature=temperature).text
            return
        wire = wire_messages(messages, self.media_parts(frames))
        chunks = self._create(wire, max_tokens, temperature, stream=True)
        try:
            for chunk in chunks:
                for choice in getattr(chunk, "choices", None) or []:
                    delta = getattr(choice.delta, "content", None)
                    if delta:
                        yield delta
        except Exception as e:
            raise map_error(
                e, backend=self.name, secrets=self._secrets(), key_hint=_credentials.where(self.config)
            ) from None
