"""Shared pieces of the OpenAI chat-completions wire protocol (used by the OpenAI and vLLM backends).

Why separate: both backends speak the same protocol through the official `openai` client; only
their defaults (endpoint, key, model discovery, how frames travel) differ.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from models.base import ChatMessage, TimedFrame, Usage
from models.errors import (
    BackendError,
    MalformedOutput,
    MissingCredentials,
    RateLimited,
    TransientError,
    redact,
)


def jpeg_base64(image: np.ndarray, *, max_side: int = 768, quality: int = 85) -> str:
    """Encode an RGB frame as base64 JPEG, scaled so its longest side is at most `max_side`.

    Why 768: OpenAI tiles high-detail images at 512 px and resizes anything larger anyway; smaller
    frames keep requests (and cost) down without losing text that OCR-like questions need.
    """
    from PIL import Image

    img = Image.fromarray(np.ascontiguousarray(image))
    if max(img.size) > max_side:
        scale = max_side / max(img.size)
        img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))))
    buf = io.BytesIO()
    img.convert("RGB").save(buf, format="JPEG", quality=quality)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def frame_parts(
    frames: Sequence[TimedFrame], *, detail: str = "low", max_side: int = 768
) -> list[dict[str, Any]]:
    """Each frame as a text part with its timestamp followed by its image part, so answers can cite times."""
    parts: list[dict[str, Any]] = []
    for f in frames:
        parts.append({"type": "text", "text": f"Frame at t={f.t:.2f}s:"})
        url = "data:image/jpeg;base64," + jpeg_base64(f.image, max_side=max_side)
        parts.append({"type": "image_url", "image_url": {"url": url, "detail": detail}})
    return parts


def video_part(frames: Sequence[TimedFrame], *, max_side: int = 768) -> list[dict[str, Any]]:
    """All frames as one vLLM `video_url` part (data:video/jpeg = comma-joined base64 JPEGs), times in text."""
    times = ", ".join(f"{f.t:.2f}s" for f in frames)
    data = ",".join(jpeg_base64(f.image, max_side=max_side) for f in frames)
    return [
        {"type": "text", "text": f"Video of {len(frames)} frames sampled at t = {times}:"},
        {"type": "video_url", "video_url": {"url": "data:video/jpeg;base64," + data}},
    ]


def wire_messages(messages: Sequence[ChatMessage], media: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Chat messages in wire form; `media` parts go into the last user message, before its text."""
    out: list[dict[str, Any]] = [{"role": m.role, "content": m.content} for m in messages]
    if media:
        idx = max((i for i, m in enumerate(out) if m["role"] == "user"), default=None)
        if idx is None:
            out.append({"role": "user", "content": media})
        else:
            out[idx] = {"role": "user", "content": [*media, {"type": "text", "text": out[idx]["content"]}]}
    return out


def estimate_tokens(
    messages: Sequence[ChatMessage], n_images: int, tokens_per_image: int, max_tokens: int
) -> Usage:
    """Rough prompt size (4 characters per token plus a per-message overhead) and the output cap."""
    chars = sum(len(m.content) for m in messages)
    return Usage(math.ceil(chars / 4) + 4 * len(messages) + n_images * (tokens_per_image + 8), max_tokens)


def usage_of(response: Any) -> Usage:
    u = getattr(response, "usage", None)
    if u is None:
        return Usage()
    return Usage(int(getattr(u, "prompt_tokens", 0) or 0), int(getattr(u, "completion_tokens", 0) or 0))


def _retry_after(headers: Any) -> float | None:
    if headers is None:
        return None
    for key in ("retry-after-ms", "retry-after"):
        raw = headers.get(key)
        if raw is None:
            continue
        try:
            value = float(raw)
        except ValueError:
            return None  # an HTTP date: rare for these APIs, fall back to backoff
        return value / 1000.0 if key == "retry-after-ms" else value
    return None


def map_error(e: Exception, *, backend: str, secrets: Sequence[str | None], key_hint: str) -> Exception:
    """Turn an `openai` client exception into the router's typed errors (anything unknown is returned as is)."""
    import openai

    msg = redact(f"{type(e).__name__}: {e}", secrets)
    if isinstance(e, openai.RateLimitError):
        return RateLimited(msg, backend=backend, retry_after=_retry_after(e.response.headers))
    if isinstance(e, openai.AuthenticationError | openai.PermissionDeniedError):
        return MissingCredentials(f"{backend}: credentials refused ({key_hint}): {msg}", backend=backend)
    if isinstance(e, openai.APITimeoutError | openai.APIConnectionError):
        return TransientError(msg, backend=backend)
    if isinstance(e, openai.APIStatusError):
        if e.status_code >= 500 or e.status_code in (408, 409):
            return TransientError(msg, backend=backend)
        return BackendError(msg, backend=backend)
    if isinstance(e, openai.APIResponseValidationError):
        return MalformedOutput(msg, backend=backend)
    return e
