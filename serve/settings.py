"""Settings of the Serve application (the `args:` of a Serve config's application).

Why a separate model from `cluster.config.Settings`: these knobs (database URL, queue depth, leases,
auth) only exist for the online app, and Ray Serve hands them to `build_app` as a dict from the
config file's `args:` (or `serve run serve.app:build_app key=value`). Unknown keys fail at build
time with the key's name, like every vidray config.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cluster.config import Settings, load_settings
from cluster.errors import InputError


class ServeSettings(BaseModel):
    """Everything the app needs besides the deployment options (those live in `deployments:`)."""

    model_config = ConfigDict(extra="forbid")

    db_url: str | None = Field(
        None,
        description="SQLAlchemy URL of the job/video/key database; default: SQLite file <data_dir>/serve.db "
        "(env VIDRAY_DB_URL). Use postgresql+psycopg://... when replicas run on several nodes.",
    )
    config: str | None = Field(
        None, description="vidray settings YAML for ingest/decode (default $VIDRAY_CONFIG)."
    )
    overrides: list[str] = Field(default_factory=list, description="key=value overrides of vidray settings.")
    max_queue_depth: int = Field(
        64,
        ge=1,
        description="Queued jobs past this answer 429 + Retry-After instead of growing without bound.",
    )
    per_user_running: int = Field(
        4, ge=1, description="At most this many jobs of one user run at once; the rest wait their turn."
    )
    lease_s: float = Field(
        30.0,
        gt=0.5,
        description="A running job's lease; a replica that dies stops renewing it and the job is re-run.",
    )
    max_attempts: int = Field(3, ge=1, description="A job whose worker died this many times fails.")
    dispatch_slots: int = Field(
        8, ge=1, description="Jobs in flight to analyzer replicas at once (the rest stay queued in the DB)."
    )
    poll_s: float = Field(0.1, gt=0, description="How often the dispatcher looks for queued jobs when idle.")
    max_upload_bytes: int = Field(512 * 1024**2, gt=0, description="Larger multipart uploads answer 413.")
    admin_key_env: str = Field("VIDRAY_ADMIN_KEY", description="Env var holding the first admin API key.")
    webhook_secret_env: str = Field(
        "VIDRAY_WEBHOOK_SECRET",
        description="Env var with the HMAC key for webhooks (default: derived per install).",
    )
    webhook_max_attempts: int = Field(
        6, ge=1, description="Webhook deliveries retried with backoff this many times."
    )
    webhook_backoff_s: float = Field(
        1.0, gt=0, description="First webhook retry delay; doubles each attempt."
    )
    train_jobs_address: str | None = Field(
        None,
        description="Ray dashboard/Jobs API address for POST /video/train (env RAY_JOBS_ADDRESS); "
        "without one the trainer runs as a local subprocess.",
    )
    chat_offline_llm: bool = Field(
        False,
        description="Let the chat endpoint answer with a small offline LLM (SmolLM2) when it is the only one "
        "available; off by default: it loads slowly on CPU and answers poorly, so the extractive answer is used.",
    )
    worker_nice: int = Field(
        10,
        ge=0,
        le=19,
        description="Nice value of the analyzer and ingest replicas' threads: on a shared machine the proxy "
        "and ingress get the CPU first, so submits stay fast while jobs run (0: leave them alone).",
    )
    debug_stage_delay_s: float = Field(
        0.0,
        ge=0,
        description="Testing knob: sleep this long per analysis stage so a job can be observed mid-run.",
    )

    def vidray_settings(self) -> Settings:
        return load_settings(self.config, self.overrides)

    def resolved_db_url(self, data_dir: Path) -> str:
        import os

        url = self.db_url or os.environ.get("VIDRAY_DB_URL")
        if url:
            return url
        data_dir.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{data_dir / 'serve.db'}"


def parse_serve_settings(args: dict[str, Any] | None) -> ServeSettings:
    """Validate the application args; the message names the bad key."""
    try:
        return ServeSettings.model_validate(args or {})
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(x) for x in first["loc"])
        raise InputError(f"invalid serve app arg {where}: {first['msg']}") from e
