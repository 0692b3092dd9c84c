"""vidray's model layer: contracts (`models.base`), a backend registry, and a router with fallback,
limits, budgets, A/B splits and a response cache. See docs/models.md.

Heavy backends (torch models, API clients, vLLM) are imported only when a backend is built.
"""

from models.base import (
    OCR,
    Availability,
    Backend,
    ChatMessage,
    FrameTagger,
    Generation,
    Kind,
    Segment,
    SpeechToText,
    TextBox,
    TextEmbedder,
    TextGenerator,
    TimedFrame,
    Transcript,
    Usage,
    VisionLanguage,
)
from models.errors import (
    AllBackendsFailed,
    BackendError,
    BudgetExceeded,
    MalformedOutput,
    MissingCredentials,
    RateLimited,
    TransientError,
)

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
