"""Optional heavy dependencies, in one place.

Why: vidray's default install is CPU-only and small; serving, training, packaged models, API
clients and vLLM each live in an extra. Code imports such a package only where it is used, through
`require`, so a missing extra fails with the exact `pip install` line instead of an ImportError
deep in a stack.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from cluster.errors import UnavailableError

# import name -> extra that installs it
EXTRAS: dict[str, str] = {
    "fastapi": "serve",
    "sqlalchemy": "serve",
    "psycopg": "serve",
    "prometheus_client": "serve",
    "deepspeed": "train",
    "peft": "train",
    "lance": "train",
    "boto3": "train",
    "transformers": "models",
    "faster_whisper": "models",
    "pytesseract": "models",
    "rapidocr": "models",
    "onnxruntime": "models",
    "sentence_transformers": "models",
    "gguf": "models",
    "openai": "api",
    "google.genai": "api",
    "vllm": "gpu",
}


def available(module: str) -> bool:
    """Whether `module` can be imported here, without importing it."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def require(module: str, extra: str | None = None) -> ModuleType:
    """Import `module` or raise an `UnavailableError` naming the extra that provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        name = extra or EXTRAS.get(module, "")
        hint = f"pip install 'vidray[{name}]'" if name else f"pip install {module}"
        raise UnavailableError(f"{module} is not installed ({e}); install it with: {hint}") from e
