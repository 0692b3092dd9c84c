"""What every route needs, built once per ingress replica: stores, deployment handles, settings."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from typing import Any

from cluster.config import Settings
from serve.api.keys import KeyStore
from serve.jobs.dispatcher import Dispatcher
from serve.jobs.group_commit import GroupCommit
from serve.jobs.store import JobStore
from serve.jobs.videos import VideoStore
from serve.settings import ServeSettings


@dataclass
class AppContext:
    settings: ServeSettings
    vidray: Settings
    store: JobStore
    videos: VideoStore
    keys: KeyStore
    submits: GroupCommit  # job submits from the routes: one transaction per burst, not per request
    ingest: Any = None  # DeploymentHandle of the ingest deployment
    analyzer: Any = None  # DeploymentHandle of the analyzer deployment
    models: Any = None  # DeploymentHandle of the model router deployment
    dispatcher: Dispatcher | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def webhook_secret(self) -> str:
        """HMAC key for webhooks: the configured secret, else one derived from the admin key."""
        secret = os.environ.get(self.settings.webhook_secret_env)
        if secret:
            return secret
        seed = os.environ.get(self.settings.admin_key_env, "") + str(self.vidray.data_dir)
        return hashlib.sha256(b"vidray-webhook:" + seed.encode()).hexdigest()

    @property
    def allow_hosts(self) -> list[str]:
        return list(self.vidray.ingest.allow_hosts)


_current: AppContext | None = None


def set_current(ctx: AppContext) -> None:
    """Install the replica's context. Why a module global: Ray Serve serves a copy of the FastAPI app,
    so `app.state` set in the ingress constructor is not the one requests see; one ingress runs per
    replica process, so a process-wide context is exact."""
    global _current
    _current = ctx


def current() -> AppContext:
    if _current is None:
        from cluster.errors import UnavailableError

        raise UnavailableError("the app is still starting; retry in a moment")
    return _current


def build_context(settings: ServeSettings) -> AppContext:
    vidray = settings.vidray_settings()
    store = JobStore(settings.resolved_db_url(vidray.data_dir))
    ctx = AppContext(
        settings=settings,
        vidray=vidray,
        store=store,
        videos=VideoStore(store.engine),
        keys=KeyStore(store.engine),
        submits=GroupCommit(store),
    )
    admin = os.environ.get(settings.admin_key_env)
    if admin:
        ctx.keys.ensure(admin, user="admin", role="admin")
    return ctx
