"""Backend registry: a name -> factory dict, so choosing a backend never grows an if/elif chain.

Factories are "module:Class" strings resolved on first use, which keeps `import models.registry`
free of heavy imports (torch, openai, google-genai, vllm): only the backend that is actually built
imports its module. A factory is called as `factory(config, name=...)` with the entry's
`cluster.config.BackendConfig`; backend classes satisfy that with `Backend.__init__`.

Registry keys are what `models.backends.<name>.type` (or a bare name in `models.tasks`) refers
to. Offline/local backends live in models/offline/ and models/local_hf.py; their class must sit at
the path listed here (or be added with `register`).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING

from cluster.errors import InputError, UnavailableError

if TYPE_CHECKING:
    from cluster.config import BackendConfig, ModelsSettings
    from models.base import Backend

Factory = Callable[..., "Backend"]

_REGISTRY: dict[str, str | Factory] = {
    # network backends (this package)
    "openai": "models.openai_backend:OpenAIBackend",
    "gemini": "models.gemini_backend:GeminiBackend",
    "vllm": "models.vllm_backend:VLLMBackend",
    # offline backends whose weights ship in pip packages (models/offline/)
    "faster-whisper": "models.offline.whisper:FasterWhisperSTT",
    "pocketsphinx": "models.offline.pocketsphinx:PocketSphinxSTT",
    "tesseract": "models.offline.ocr_tesseract:TesseractOCR",
    "rapidocr": "models.offline.ocr_rapid:RapidOCRBackend",
    "minilm": "models.offline.embed:MiniLMEmbedder",
    "smollm2": "models.offline.llm:SmolLM2Generator",
    "efficientnet": "models.offline.tags:EfficientNetTagger",
    # a user's transformers model directory (models/local_hf.py)
    "local-hf": "models.local_hf:LocalHFVisionLanguage",
    "local-hf-text": "models.local_hf:LocalHFTextGenerator",
    "local-hf-whisper": "models.local_hf:LocalHFSpeechToText",
}


def register(type_name: str, factory: str | Factory, *, replace: bool = False) -> None:
    """Add a backend type (tests, plugins). `factory` is a callable or a "module:attr" string."""
    if type_name in _REGISTRY and not replace:
        raise InputError(
            f"backend type {type_name!r} is already registered; pass replace=True to override it"
        )
    _REGISTRY[type_name] = factory


def unregister(type_name: str) -> None:
    _REGISTRY.pop(type_name, None)


def names() -> list[str]:
    """Every registered backend type."""
    return sorted(_REGISTRY)


def resolve(type_name: str) -> Factory:
    """The factory for `type_name`, importing its module now. Raises `UnavailableError` if it cannot be imported."""
    try:
        target = _REGISTRY[type_name]
    except KeyError:
        raise InputError(
            f"unknown model backend type {type_name!r}; known types: {', '.join(names())}"
        ) from None
    if not isinstance(target, str):
        return target
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise UnavailableError(f"backend {type_name!r} cannot be imported here ({module_name}: {e})") from e
    try:
        factory: Factory = getattr(module, attr)
    except AttributeError:
        raise UnavailableError(f"backend {type_name!r}: {module_name} has no {attr}") from None
    _REGISTRY[type_name] = factory
    return factory


def config_for(name: str, models: ModelsSettings) -> BackendConfig:
    """The configuration of backend `name`: its entry in `models.backends`, or defaults if it is a bare type."""
    from cluster.config import BackendConfig

    cfg = models.backends.get(name)
    if cfg is None:
        if name not in _REGISTRY:
            raise InputError(
                f"model backend {name!r} is neither configured under models.backends nor a known type "
                f"({', '.join(names())})"
            )
        return BackendConfig(type=name)
    if not cfg.type:
        cfg = cfg.model_copy(update={"type": name})
    return cfg


def create(name: str, models: ModelsSettings) -> Backend:
    """Build backend `name` (a configured entry or a bare registry type). Construction loads nothing heavy."""
    cfg = config_for(name, models)
    return resolve(cfg.type)(cfg, name=name)
