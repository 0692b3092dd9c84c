"""Google Gemini through the `google-genai` SDK (text, frames, or a whole video file).

Why `google-genai`: it is Google's maintained SDK; the older `google-generativeai` package is
deprecated and gets no new features, so vidray does not support it.

Frames go inline as JPEG parts, each after a text part with its timestamp. Past
`options.inline_max_frames` (default 16) frames, or with `options.use_files: true`, they are
uploaded with the File API instead, which keeps each request small. `generate_from_video` uploads
a whole video file (Gemini samples it itself, ≈1 fps, and hears its audio), polls until the file is
ACTIVE, asks, and deletes the upload.

Configuration: `model` (default gemini-2.5-flash), `api_key_env` (GEMINI_API_KEY) or
`api_key_file`, `base_url` (else $GEMINI_BASE_URL; passed as `http_options.base_url`, which is how
tests point the SDK at a loopback server), `timeout_s`; options `inline_max_frames`, `use_files`,
`poll_s`, `upload_timeout_s`, `tokens_per_image` (258, Gemini's per-image count), `image_max_side`.
The SDK's own retries stay off (its default): the router owns retries.
"""

from __future__ import annotations

import base64
import contextlib
import io
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from cluster.optional import available, require
from models import _credentials
from models._openai_wire import estimate_tokens, jpeg_base64
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
from models.errors import (
    BackendError,
    MalformedOutput,
    MissingCredentials,
    RateLimited,
    TransientError,
    redact,
)

_DEFAULT_MODEL = "gemini-2.5-flash"


class GeminiBackend(VisionLanguage, TextGenerator):
    """Gemini for text generation and vision-language tasks."""

    kind = Kind.VISION_LANGUAGE
    kinds = (Kind.TEXT_GENERATION, Kind.VISION_LANGUAGE)
    type_name = "gemini"
    network = True

    _client: Any = None

    @property
    def model(self) -> str:
        return self.config.model or _DEFAULT_MODEL

    @property
    def base_url(self) -> str | None:
        return self.config.base_url or os.environ.get("GEMINI_BASE_URL") or None

    def _opt(self, key: str, default: Any) -> Any:
        return self.config.options.get(key, default)

    def availability(self) -> Availability:
        if not available("google.genai"):
            return Availability.no("google-genai is not installed: pip install 'vidray[api]'")
        if not _credentials.api_key(self.config):
            return Availability.no(f"no API key: {_credentials.where(self.config)}")
        return Availability.yes(
            f"model {self.model} at {self.base_url or 'generativelanguage.googleapis.com'}"
        )

    def client(self) -> Any:
        if self._client is None:
            genai = require("google.genai", "api")
            types = require("google.genai.types", "api")
            key = _credentials.api_key(self.config)
            if not key:
                raise MissingCredentials(
                    f"{self.name}: no API key; {_credentials.where(self.config)}", backend=self.name
                )
            opts = types.HttpOptions(base_url=self.base_url, timeout=int(self.config.timeout_s * 1000))
            self._client = genai.Client(api_key=key, http_options=opts)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def estimate_usage(
        self, messages: Sequence[ChatMessage] = (), frames: Sequence[TimedFrame] = (), max_tokens: int = 0
    ) -> Usage:
        return estimate_tokens(messages, len(frames), int(self._opt("tokens_per_image", 258)), max_tokens)

    # ------------------------------------------------------------ errors

    def _map(self, e: Exception) -> Exception:
        """SDK/transport exceptions -> typed errors; the key is scrubbed from every message."""
        import httpx
        from google.genai import errors as gerr

        msg = redact(f"{type(e).__name__}: {e}", [_credentials.api_key(self.config)])
        if isinstance(e, gerr.APIError):
            code = int(e.code or 0)
            if code == 429:
                headers = getattr(getattr(e, "response", None), "headers", None) or {}
                raw = headers.get("retry-after") if hasattr(headers, "get") else None
                try:
                    retry_after = float(raw) if raw is not None else None
                except ValueError:
                    retry_after = None
                return RateLimited(msg, backend=self.name, retry_after=retry_after)
            if code in (401, 403):
                return MissingCredentials(
                    f"{self.name}: credentials refused ({_credentials.where(self.config)}): {msg}",
                    backend=self.name,
                )
            if code >= 500 or code == 408:
                return TransientError(msg, backend=self.name)
            return BackendError(msg, backend=self.name)
        if isinstance(e, httpx.TimeoutException | httpx.TransportError):
            return TransientError(msg, backend=self.name)
        return e

    # ------------------------------------------------------------ request building

    def _contents(self, messages: Sequence[ChatMessage], media: list[Any]) -> tuple[str | None, list[Any]]:
        types = require("google.genai.types", "api")
        system = "\n\n".join(m.content for m in messages if m.role == "system") or None
        turns = [m for m in messages if m.role != "system"]
        last_user = max((i for i, m in enumerate(turns) if m.role == "user"), default=-1)
        contents = []
        for i, m in enumerate(turns):
            parts = [*media] if i == last_user else []
            parts.append(types.Part.from_text(text=m.content))
            contents.append(types.Content(role="user" if m.role == "user" else "model", parts=parts))
        if last_user < 0 and media:
            contents.append(types.Content(role="user", parts=media))
        return system, contents

    def _frame_parts(self, frames: Sequence[TimedFrame]) -> tuple[list[Any], list[Any]]:
        """(parts, uploaded files to delete afterwards)."""
        types = require("google.genai.types", "api")
        use_files = bool(self._opt("use_files", False)) or len(frames) > int(
            self._opt("inline_max_frames", 16)
        )
        max_side = int(self._opt("image_max_side", 768))
        parts: list[Any] = []
        uploaded: list[Any] = []
        for f in frames:
            parts.append(types.Part.from_text(text=f"Frame at t={f.t:.2f}s:"))
            data = base64.b64decode(jpeg_base64(f.image, max_side=max_side))
            if use_files:
                file = self.upload(io.BytesIO(data), mime_type="image/jpeg")
                uploaded.append(file)
                parts.append(types.Part.from_uri(file_uri=file.uri, mime_type="image/jpeg"))
            else:
                parts.append(types.Part.from_bytes(data=data, mime_type="image/jpeg"))
        return parts, uploaded

    # ------------------------------------------------------------ File API

    def upload(self, source: Path | str | io.IOBase, *, mime_type: str) -> Any:
        """Upload a file (or bytes stream) with the File API and wait until Gemini says it is ACTIVE."""
        client = self.client()
        try:
            file = client.files.upload(file=source, config={"mime_type": mime_type})
            deadline = time.monotonic() + float(self._opt("upload_timeout_s", 300.0))
            while _state(file) != "ACTIVE":
                if _state(file) == "FAILED":
                    raise BackendError(
                        f"{self.name}: Gemini could not process the upload {file.name}", backend=self.name
                    )
                if time.monotonic() > deadline:
                    raise TransientError(
                        f"{self.name}: upload {file.name} not ACTIVE in time", backend=self.name
                    )
                time.sleep(float(self._opt("poll_s", 1.0)))
                file = client.files.get(name=file.name)
        except BackendError:
            raise
        except Exception as e:
            raise self._map(e) from None
        return file

    def _delete(self, files: list[Any]) -> None:
        for f in files:
            # uploads expire after 48 h anyway; a failed delete must not fail the answer
            with contextlib.suppress(Exception):
                self.client().files.delete(name=f.name)

    # ------------------------------------------------------------ calls

    def _generate(
        self, messages: Sequence[ChatMessage], media: list[Any], max_tokens: int, temperature: float
    ) -> Generation:
        types = require("google.genai.types", "api")
        system, contents = self._contents(messages, media)
        config = types.GenerateContentConfig(
            system_instruction=system, max_output_tokens=max_tokens, temperature=temperature
        )
        try:
            resp = self.client().models.generate_content(model=self.model, contents=contents, config=config)
        except Exception as e:
            raise self._map(e) from None
        try:
            text = resp.text
        except Exception as e:  # the SDK raises on some malformed candidate lists
            raise MalformedOutput(f"{self.name}: unreadable response: {e}", backend=self.name) from None
        if not text or not text.strip():
            raise MalformedOutput(f"{self.name}: response has no text", backend=self.name)
        meta = resp.usage_metadata
        usage = Usage(
            int(getattr(meta, "prompt_token_count", 0) or 0),
            int(getattr(meta, "candidates_token_count", 0) or 0),
        )
        finish = resp.candidates[0].finish_reason if resp.candidates else None
        return Generation(
            text, usage, str(resp.model_version or self.model), str(getattr(finish, "value", finish) or "")
        )

    def generate(
        self,
        messages: list[ChatMessage],
        frames: Sequence[TimedFrame] = (),
        *,
        max_tokens: int = 512,
        temperature: float = 0.0,
    ) -> Generation:
        parts, uploaded = self._frame_parts(frames) if frames else ([], [])
        try:
            return self._generate(messages, parts, max_tokens, temperature)
        finally:
            self._delete(uploaded)

    def generate_from_video(
        self, messages: list[ChatMessage], video: Path, *, max_tokens: int = 512, temperature: float = 0.0
    ) -> Generation:
        """Upload the whole video (Gemini samples frames and audio itself), ask, then delete the upload."""
        types = require("google.genai.types", "api")
        mime = {
            ".mp4": "video/mp4",
            ".webm": "video/webm",
            ".mov": "video/quicktime",
            ".mkv": "video/x-matroska",
        }
        mime_type = mime.get(Path(video).suffix.lower(), "video/mp4")
        file = self.upload(Path(video), mime_type=mime_type)
        try:
            part = types.Part.from_uri(file_uri=file.uri, mime_type=mime_type)
            return self._generate(messages, [part], max_tokens, temperature)
        finally:
            self._delete([file])

    def stream(
        self,
        messages: list[ChatMessage],
        frames: Sequence[TimedFrame] = (),
        *,
        max_tokens: int = 512,
        temperature: float = 0.0,
    ) -> Iterator[str]:
        types = require("google.genai.types", "api")
        parts, uploaded = self._frame_parts(frames) if frames else ([], [])
        system, contents = self._contents(messages, parts)
        config = types.GenerateContentConfig(
            system_instruction=system, max_output_tokens=max_tokens, temperature=temperature
        )
        try:
            for chunk in self.client().models.generate_content_stream(
                model=self.model, contents=contents, config=config
            ):
                if chunk.text:
                    yield chunk.text
        except BackendError:
            raise
        except Exception as e:
            raise self._map(e) from None
        finally:
            self._delete(uploaded)


def _state(file: Any) -> str:
    state = getattr(file, "state", None)
    return str(getattr(state, "value", state) or "")
