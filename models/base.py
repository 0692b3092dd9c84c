"""The model layer's contracts: one abstract base class per kind of model, and the values they return.

Start here: analysis code never calls a backend directly. It asks `models.router.Router` for a task
("transcribe", "ocr", "qa", ...); the router walks the task's configured backend order, skips the
unavailable ones, and calls the first that works. Every backend therefore keeps the same promises:

* **Construction is cheap and never fails for a missing extra or key.** `Backend(config)` only
  stores configuration; heavy imports and model loading happen on first use (via
  `cluster.optional.require`). `availability()` reports, without network traffic or model loading,
  whether the backend can run here and, if not, why (missing extra, missing key, no GPU, no model
  directory), so `vidray models` can list everything on any machine.
* **Errors are typed** (`models.errors`): `RateLimited(retry_after)` for 429/quota,
  `TransientError` for 5xx/timeouts/connection drops, `MalformedOutput` when an answer has the
  wrong shape, `MissingCredentials` for absent/refused keys. Any other exception is a bug and
  is *not* turned into a fallback. Messages never contain credentials (`models.errors.redact`).
* **Backends do not retry, rate-limit, cache or fall back** — the router does, so that policy is
  in one place and configured once. API clients are created with their own retries switched off.
* **Streaming** (`TextGenerator.stream`, `VisionLanguage.stream`) yields text deltas. An error
  raised before the first delta may fall back to another backend; once a delta has been yielded
  the stream is committed to its backend and an error propagates to the caller.
* **Cost**: `estimate_usage(...)` predicts token usage before a call (the router multiplies by the
  configured price table to enforce budgets); `Generation.usage` reports what was really used.
  Local backends keep the zero default.
* **Network**: `network = True` marks backends that talk to a service. Offline mode
  (`settings.offline` / `VIDRAY_OFFLINE=1`) removes them before anything is sent.

Array conventions: audio is 16 kHz mono float32 in [-1, 1]; images are HxWx3 uint8 RGB;
embeddings are float32 (n, d) with unit L2 norm per row.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, ClassVar, Literal

import numpy as np

from models.errors import (
    AllBackendsFailed,
    BackendError,
    BudgetExceeded,
    MalformedOutput,
    MissingCredentials,
    RateLimited,
    TransientError,
)

if TYPE_CHECKING:
    from cluster.config import BackendConfig

__all__ = [
    "OCR",
    "AllBackendsFailed",
    "Availability",
    "Backend",
    "BackendError",
    "BudgetExceeded",
    "ChatMessage",
    "FrameTagger",
    "Generation",
    "Kind",
    "MalformedOutput",
    "MissingCredentials",
    "RateLimited",
    "Segment",
    "SpeechToText",
    "TextBox",
    "TextEmbedder",
    "TextGenerator",
    "TimedFrame",
    "Transcript",
    "TransientError",
    "Usage",
    "VisionLanguage",
]

SAMPLE_RATE = 16_000  # Hz: the one audio rate every speech backend accepts (Whisper's native rate)


class Kind(StrEnum):
    """What a backend does; a task's order only lists backends of the kind the task needs."""

    SPEECH_TO_TEXT = "speech_to_text"
    OCR = "ocr"
    TEXT_EMBEDDING = "text_embedding"
    TEXT_GENERATION = "text_generation"
    VISION_LANGUAGE = "vision_language"
    FRAME_TAGGING = "frame_tagging"


# ---------------------------------------------------------------- values


@dataclass(frozen=True)
class Availability:
    """Whether a backend can run here; `reason` says why not (or what it will use) in one line."""

    ok: bool
    reason: str = ""

    @classmethod
    def yes(cls, reason: str = "") -> Availability:
        return cls(True, reason)

    @classmethod
    def no(cls, reason: str) -> Availability:
        return cls(False, reason)


@dataclass(frozen=True)
class Word:
    """One recognised word with its own times (backends that align words fill these)."""

    start: float
    end: float
    text: str
    probability: float = 1.0


@dataclass(frozen=True)
class Segment:
    """A stretch of speech, times in seconds from the start of the audio; `confidence` in [0, 1].

    `words` is empty unless the backend aligns words; sentence-level evidence (QA, chapters) uses
    word times when present because segment boundaries fall mid-sentence.
    """

    start: float
    end: float
    text: str
    confidence: float = 1.0
    words: tuple[Word, ...] = ()


@dataclass(frozen=True)
class Transcript:
    """What a `SpeechToText` heard: the (detected or given) language and time-ordered segments."""

    language: str
    segments: list[Segment] = field(default_factory=list)

    @property
    def text(self) -> str:
        return " ".join(s.text.strip() for s in self.segments if s.text.strip())


@dataclass(frozen=True)
class TextBox:
    """A line or word of text found in an image: pixel box (x, y = top-left) and confidence in [0, 1]."""

    text: str
    x: int
    y: int
    w: int
    h: int
    confidence: float = 1.0


@dataclass(frozen=True)
class ChatMessage:
    """One chat turn, as in the OpenAI wire protocol."""

    role: Literal["system", "user", "assistant"]
    content: str


@dataclass(frozen=True)
class TimedFrame:
    """A video frame and its presentation time in seconds; backends tell the model this time."""

    t: float
    image: np.ndarray  # HxWx3 uint8 RGB


@dataclass(frozen=True)
class Usage:
    """Token counts of one call (prompt side includes image tokens where the provider reports them)."""

    input_tokens: int = 0
    output_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True)
class Generation:
    """Generated text plus what it cost; `model` is the provider's model id that answered."""

    text: str
    usage: Usage = field(default_factory=Usage)
    model: str = ""
    finish_reason: str = ""


# ---------------------------------------------------------------- backends


class Backend(ABC):
    """Common surface of every backend: identity, availability, cost estimate.

    `name` is the configured instance name (e.g. "openai" or "openai-mini"), set from the config
    entry; `type_name` is the registry key the class is registered under.
    """

    kind: ClassVar[Kind]
    #: All kinds this class serves (an API chat model is both a text generator and a VLM).
    kinds: ClassVar[tuple[Kind, ...]] = ()
    type_name: ClassVar[str] = ""
    #: True for backends that send requests to a service; offline mode excludes them.
    network: ClassVar[bool] = False

    def __init__(self, config: BackendConfig | None = None, *, name: str | None = None) -> None:
        from cluster.config import BackendConfig

        self.config = config or BackendConfig(type=self.type_name)
        self.name = name or self.config.type or self.type_name

    @classmethod
    def serves(cls) -> tuple[Kind, ...]:
        return cls.kinds or (cls.kind,)

    @property
    def provider(self) -> str:
        """The account rate limits and prices apply to (several configured variants can share one)."""
        return self.config.provider or self.config.type or self.name

    @property
    def model(self) -> str:
        return self.config.model

    @abstractmethod
    def availability(self) -> Availability:
        """Can this backend run here? No network traffic, no model loading; cheap enough to call per request."""

    def estimate_usage(
        self,
        messages: Sequence[ChatMessage] = (),
        frames: Sequence[TimedFrame] = (),
        max_tokens: int = 0,
    ) -> Usage:
        """Predict the tokens a generation call will use, for budget checks; local backends cost nothing."""
        return Usage()

    def close(self) -> None:  # noqa: B027 - optional hook, most backends hold nothing to release
        """Release clients, sessions or loaded models."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} model={self.model!r}>"


class SpeechToText(Backend):
    """Audio to timed text."""

    kind = Kind.SPEECH_TO_TEXT

    @abstractmethod
    def transcribe(self, audio: np.ndarray, *, language: str | None = None) -> Transcript:
        """Transcribe 16 kHz mono float32 audio. `language=None` detects it; segments are time-ordered."""


class OCR(Backend):
    """Image to text boxes."""

    kind = Kind.OCR

    @abstractmethod
    def read(self, image: np.ndarray) -> list[TextBox]:
        """Find text in an HxWx3 uint8 RGB image, in reading order (top to bottom, left to right)."""


class TextEmbedder(Backend):
    """Texts to unit vectors (cosine similarity = dot product)."""

    kind = Kind.TEXT_EMBEDDING

    @abstractmethod
    def embed(self, texts: list[str]) -> np.ndarray:
        """Return float32 (len(texts), d), each row L2-normalised; `d` is fixed per backend/model."""


class TextGenerator(Backend):
    """Chat messages to text."""

    kind = Kind.TEXT_GENERATION

    @abstractmethod
    def generate(
        self, messages: list[ChatMessage], *, max_tokens: int = 512, temperature: float = 0.0
    ) -> Generation:
        """Answer the conversation; raise `MalformedOutput` rather than return empty text silently."""

    def stream(
        self, messages: list[ChatMessage], *, max_tokens: int = 512, temperature: float = 0.0
    ) -> Iterator[str]:
        """Yield text deltas. Default: one delta with the whole answer (backends override to stream)."""
        yield self.generate(messages, max_tokens=max_tokens, temperature=temperature).text


class VisionLanguage(Backend):
    """Chat messages plus timed frames to text."""

    kind = Kind.VISION_LANGUAGE

    @abstractmethod
    def generate(
        self,
        messages: list[ChatMessage],
        frames: Sequence[TimedFrame] = (),
        *,
        max_tokens: int = 512,
        temperature: float = 0.0,
    ) -> Generation:
        """Answer about the frames; each frame is presented with its timestamp so answers can cite times."""

    def stream(
        self,
        messages: list[ChatMessage],
        frames: Sequence[TimedFrame] = (),
        *,
        max_tokens: int = 512,
        temperature: float = 0.0,
    ) -> Iterator[str]:
        """Yield text deltas. Default: one delta with the whole answer."""
        yield self.generate(messages, frames, max_tokens=max_tokens, temperature=temperature).text


class FrameTagger(Backend):
    """Image to labels."""

    kind = Kind.FRAME_TAGGING

    @abstractmethod
    def tag(self, image: np.ndarray) -> list[tuple[str, float]]:
        """Labels with scores in [0, 1] for an HxWx3 uint8 RGB image, highest score first."""
