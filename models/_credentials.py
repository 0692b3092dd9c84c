"""API keys come from the environment or a mounted secret file, never from config values or logs.

Why both: an env var is the usual local setup (OPENAI_API_KEY, GEMINI_API_KEY); Kubernetes mounts
secrets as files, so `api_key_file` reads one without putting the key in the process environment.
The config only ever names *where* a key is, so dumping settings cannot leak it.
"""

from __future__ import annotations

import os
from pathlib import Path

from cluster.config import BackendConfig


def api_key(config: BackendConfig, env: dict[str, str] | None = None) -> str | None:
    """The key for `config`: `$api_key_env` if set and non-empty, else the first line of `api_key_file`."""
    env = dict(os.environ) if env is None else env
    if config.api_key_env:
        value = env.get(config.api_key_env, "").strip()
        if value:
            return value
    if config.api_key_file:
        path = Path(config.api_key_file).expanduser()
        if path.is_file():
            lines = path.read_text().strip().splitlines()
            return lines[0].strip() if lines and lines[0].strip() else None
    return None


def where(config: BackendConfig) -> str:
    """A user-facing hint on how to provide the key, e.g. "set OPENAI_API_KEY"."""
    hints = []
    if config.api_key_env:
        hints.append(f"set {config.api_key_env}")
    if config.api_key_file:
        hints.append(f"write it to {config.api_key_file}")
    return " or ".join(hints) or "configure api_key_env or api_key_file for this backend"
