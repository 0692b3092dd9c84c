"""vidray's one configuration system: pydantic models, a YAML file, environment, key=value overrides.

Precedence (later wins): defaults < YAML file (`--config` or VIDRAY_CONFIG) < environment
(VIDRAY_* and the few well-known variables below) < `key=value` overrides (dotted paths, values
parsed as YAML, e.g. `ingest.max_height=720`). Every model forbids unknown keys so a typo in a
config fails at load time with the key's name instead of being silently ignored.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cluster.errors import InputError


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class NormalizeSettings(_Model):
    """Optional re-encode of downloaded videos for storage (H.264/AAC in MP4)."""

    enabled: bool = Field(False, description="Re-encode each ingested video before it is cached.")
    max_height: int = Field(720, ge=64, le=4320, description="Scale down to at most this height.")
    video_bitrate: str = Field("2M", description="ffmpeg -b:v value, e.g. '2M'.")
    audio_bitrate: str = Field("128k", description="ffmpeg -b:a value.")
    crf: int | None = Field(None, ge=0, le=51, description="Constant quality instead of a bitrate.")


class IngestSettings(_Model):
    """How sources are fetched, and the safety limits applied while fetching."""

    allow_hosts: list[str] = Field(
        default_factory=list,
        description="Hosts or CIDRs allowed even though they are loopback/private (env VIDRAY_ALLOW_HOSTS).",
    )
    max_download_bytes: int = Field(2 * 1024**3, gt=0, description="Abort a download past this size.")
    max_duration_s: float = Field(4 * 3600.0, gt=0, description="Refuse videos longer than this.")
    max_height: int | None = Field(None, ge=64, description="Prefer formats at most this tall.")
    preferred_formats: list[str] = Field(
        default_factory=lambda: ["mp4", "webm"], description="Container preference for yt-dlp."
    )
    timeout_s: float = Field(60.0, gt=0, description="Socket timeout for each network request.")
    normalize: NormalizeSettings = Field(default_factory=NormalizeSettings)


class DecodeSettings(_Model):
    """Decoder defaults."""

    threads: int = Field(0, ge=0, description="FFmpeg decode threads; 0 picks one per CPU.")
    chunk_frames: int = Field(64, ge=1, le=4096, description="Frames decoded per batch (bounds memory).")
    max_side: int | None = Field(None, ge=16, description="Default resize: longest side in pixels.")


class AnalysisSettings(_Model):
    """How `vidray analyze` spends the machine."""

    workers: int | None = Field(
        None,
        ge=1,
        le=16,
        description="Shared pieces (speech, scenes, screen OCR, motion) computed side by side; "
        "None: one per core, at most 3. 1 computes them one after another (least memory).",
    )


class BackendConfig(_Model):
    """One configured model backend; several entries may share a `type` (e.g. two OpenAI models for A/B)."""

    type: str = Field("", description="Registry key of the implementation (models.registry); default: the entry's name.")
    provider: str = Field("", description="Account that rate limits apply to; default: `type`.")
    model: str = Field("", description="Provider model id or local model name/path.")
    base_url: str | None = Field(None, description="Endpoint override (OpenAI-compatible servers, Gemini proxy).")
    api_key_env: str | None = Field(None, description="Environment variable holding the API key (never the key itself).")
    api_key_file: Path | None = Field(None, description="File holding the API key (a mounted secret); used if the env var is unset.")
    timeout_s: float = Field(60.0, gt=0, description="Per-request timeout.")
    retries: int = Field(1, ge=0, le=10, description="Router retries on this backend for 429/5xx/timeouts before falling back.")
    enabled: bool = Field(True, description="False removes it from every task order.")
    options: dict[str, Any] = Field(default_factory=dict, description="Backend-specific settings (device, frames per request, ...).")


class PriceSettings(_Model):
    """Price of a model in USD per million tokens (check the provider's current price list)."""

    input_per_mtok: float = Field(0.0, ge=0)
    output_per_mtok: float = Field(0.0, ge=0)


class BudgetSettings(_Model):
    """Spending caps checked with each call's estimated cost before it is sent."""

    per_request_usd: float | None = Field(None, ge=0, description="Refuse/degrade a single call estimated above this.")
    per_day_usd: float | None = Field(None, ge=0, description="Refuse/degrade once today's (UTC) spend plus the estimate passes this.")
    on_exceed: Literal["refuse", "degrade"] = Field(
        "degrade", description="degrade: skip to the next (cheaper) backend in the order; refuse: fail the request."
    )


class RateLimitSettings(_Model):
    """Client-side limits per provider, so vidray stays under its quota instead of collecting 429s."""

    requests_per_minute: float | None = Field(None, gt=0)
    tokens_per_minute: float | None = Field(None, gt=0)
    max_wait_s: float = Field(5.0, ge=0, description="Wait at most this long for capacity, else fall back.")


class BreakerSettings(_Model):
    """Circuit breaker per backend: stop calling a backend that keeps failing, probe it again later."""

    failure_threshold: int = Field(5, ge=1, description="Consecutive failures that open the circuit.")
    cooldown_s: float = Field(30.0, ge=0, description="Time open before one half-open trial call.")


class RetrySettings(_Model):
    """Jittered exponential backoff between retries on the same backend."""

    base_delay_s: float = Field(0.5, ge=0)
    max_delay_s: float = Field(8.0, ge=0)
    max_retry_after_s: float = Field(30.0, ge=0, description="A Retry-After longer than this falls back instead of waiting.")


class ABSplit(_Model):
    """Split traffic for one entry of a task order between two configured backends."""

    variants: list[str] = Field(min_length=2, max_length=2, description="Two backend names: [a, b].")
    fraction_b: float = Field(0.5, ge=0, le=1, description="Share of requests sent to the second variant.")


class CacheSettings(_Model):
    """Response cache keyed by (video sha256, task, params, backend), under data_dir/models."""

    enabled: bool = True
    ttl_s: float | None = Field(None, gt=0, description="Entries older than this are ignored; None keeps them.")


def _default_backends() -> dict[str, BackendConfig]:
    return {
        "vllm": BackendConfig(type="vllm", api_key_env="VLLM_API_KEY", timeout_s=120.0),
        "openai": BackendConfig(type="openai", model="gpt-4o-mini", api_key_env="OPENAI_API_KEY"),
        "gemini": BackendConfig(type="gemini", model="gemini-2.5-flash", api_key_env="GEMINI_API_KEY"),
    }


def _default_tasks() -> dict[str, list[str]]:
    return {
        "transcribe": ["faster-whisper", "pocketsphinx"],
        "ocr": ["tesseract", "rapidocr"],
        "embed": ["minilm"],
        "tag": ["efficientnet"],
        "chat": ["vllm", "gemini", "openai", "smollm2"],
        "vision": ["vllm", "gemini", "openai", "local-hf"],
    }


def _default_prices() -> dict[str, PriceSettings]:
    # USD per 1M tokens, provider list prices as of late 2026; override in YAML when they change.
    return {
        "gpt-4o-mini": PriceSettings(input_per_mtok=0.15, output_per_mtok=0.60),
        "gpt-4o": PriceSettings(input_per_mtok=2.50, output_per_mtok=10.0),
        "gemini-2.5-flash": PriceSettings(input_per_mtok=0.30, output_per_mtok=2.50),
    }


class ModelsSettings(_Model):
    """Which backend answers each task, in what order, and the limits, prices and budgets around them."""

    backends: dict[str, BackendConfig] = Field(
        default_factory=_default_backends,
        description="Named backends; names used in `tasks` that are not here are registry keys with default config.",
    )
    tasks: dict[str, list[str]] = Field(
        default_factory=_default_tasks,
        description="Ordered fallback per task; other tasks use 'chat' (text) or 'vision' (with frames).",
    )
    prices: dict[str, PriceSettings] = Field(
        default_factory=_default_prices, description="Keyed by backend name or model id (backend name wins)."
    )
    budget: BudgetSettings = Field(default_factory=BudgetSettings)
    limits: dict[str, RateLimitSettings] = Field(default_factory=dict, description="Keyed by provider.")
    breaker: BreakerSettings = Field(default_factory=BreakerSettings)
    retry: RetrySettings = Field(default_factory=RetrySettings)
    ab: dict[str, ABSplit] = Field(default_factory=dict, description="Order entries that split between two backends.")
    cache: CacheSettings = Field(default_factory=CacheSettings)


class Settings(_Model):
    """Top-level settings; sections are owned by the package that uses them."""

    data_dir: Path = Field(
        default_factory=lambda: Path.home() / ".cache" / "vidray",
        description="Cache, job state and datasets live here (env VIDRAY_DATA_DIR).",
    )
    ray_address: str | None = Field(None, description="Ray cluster to join; None starts a local one (env RAY_ADDRESS).")
    offline: bool = Field(False, description="Never touch the network for models (env VIDRAY_OFFLINE=1).")
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    decode: DecodeSettings = Field(default_factory=DecodeSettings)
    analysis: AnalysisSettings = Field(default_factory=AnalysisSettings)
    models: ModelsSettings = Field(default_factory=ModelsSettings)

    @property
    def cache_dir(self) -> Path:
        return self.data_dir / "cache"


def _env_overrides(env: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if env.get("VIDRAY_DATA_DIR"):
        out["data_dir"] = env["VIDRAY_DATA_DIR"]
    if env.get("RAY_ADDRESS"):
        out["ray_address"] = env["RAY_ADDRESS"]
    if env.get("VIDRAY_OFFLINE"):
        out["offline"] = env["VIDRAY_OFFLINE"].strip().lower() in {"1", "true", "yes", "on"}
    if env.get("VIDRAY_ANALYZE_WORKERS", "").strip():
        out.setdefault("analysis", {})["workers"] = env["VIDRAY_ANALYZE_WORKERS"].strip()
    if env.get("VIDRAY_ALLOW_HOSTS"):
        hosts = [h.strip() for h in env["VIDRAY_ALLOW_HOSTS"].split(",") if h.strip()]
        out.setdefault("ingest", {})["allow_hosts"] = hosts
    return out


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """Turn `["a.b=1", "c=x"]` into nested dicts; values are parsed as YAML scalars/lists."""
    out: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise InputError(f"override {pair!r} is not key=value; write e.g. ingest.max_height=720")
        key, raw = pair.split("=", 1)
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = yaml.safe_load(raw) if raw != "" else ""
    return out


def load_settings(
    path: str | Path | None = None,
    overrides: list[str] | None = None,
    env: dict[str, str] | None = None,
) -> Settings:
    """Build `Settings` from defaults, a YAML file, the environment and overrides."""
    env = dict(os.environ) if env is None else env
    path = path or env.get("VIDRAY_CONFIG")
    doc: dict[str, Any] = {}
    if path:
        p = Path(path)
        if not p.is_file():
            raise InputError(f"config file {p} does not exist; pass an existing YAML file or unset VIDRAY_CONFIG")
        try:
            loaded = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as e:
            raise InputError(f"config file {p} is not valid YAML: {e}") from e
        if not isinstance(loaded, dict):
            raise InputError(f"config file {p} must hold a mapping at the top level")
        doc = loaded
    doc = _deep_merge(doc, _env_overrides(env))
    doc = _deep_merge(doc, parse_overrides(overrides or []))
    try:
        return Settings.model_validate(doc)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(x) for x in first["loc"])
        raise InputError(f"invalid setting {where}: {first['msg']} (config {path or 'defaults'})") from e
