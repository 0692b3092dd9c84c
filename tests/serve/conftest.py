"""Fixtures for the serve tests: databases (SQLite file, PostgreSQL from VIDRAY_TEST_PG_URL) and a
real Ray Serve app on 127.0.0.1 that a test module starts once and may stop and start again."""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ADMIN_KEY = "vk_test_admin_" + uuid.uuid4().hex
os.environ["VIDRAY_ADMIN_KEY"] = ADMIN_KEY  # before Ray starts: replicas inherit the environment
os.environ["VIDRAY_WEBHOOK_SECRET"] = "test-webhook-secret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pg_url_or_skip() -> str:
    url = os.environ.get("VIDRAY_TEST_PG_URL")
    if not url:
        pytest.skip(
            "VIDRAY_TEST_PG_URL is not set; start one with: export VIDRAY_TEST_PG_URL=$(bash scripts/start_postgres.sh)"
        )
    return url


def fresh_pg_db(url: str) -> str:
    """A new empty database on the test server, so tests never see each other's rows."""
    import sqlalchemy as sa

    name = "vt_" + uuid.uuid4().hex[:12]
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return url.rsplit("/", 1)[0] + "/" + name


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'jobs.db'}"
    return fresh_pg_db(pg_url_or_skip())


class ServeApp:
    """A vidray Serve app on a local loopback Ray; `stop()` + `start()` simulates a restart."""

    def __init__(self, args: dict[str, Any]) -> None:
        self.args = args
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.running = False

    def start(self) -> None:
        import ray
        import ray.serve

        from cluster.ray_runtime import init_ray
        from serve.app import build_app

        for attempt in range(3):  # Ray gives its raylet a fixed 30 s to register: too short on a loaded box
            try:
                init_ray(num_cpus=2)
                break
            except Exception as e:
                if "timed out during startup" not in str(e) or attempt == 2:
                    raise
                ray.shutdown()
        ray.serve.start(http_options={"host": "127.0.0.1", "port": self.port})
        ray.serve.run(build_app(self.args), name="vidray", route_prefix="/")
        self.running = True
        deadline = time.monotonic() + 60
        import httpx

        while time.monotonic() < deadline:  # readiness: DB + every deployment answers
            try:
                if httpx.get(self.url + "/readyz", timeout=5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise RuntimeError("the app did not become ready in 60 s")

    def stop(self) -> None:
        import ray.serve

        if self.running:
            ray.serve.delete("vidray")
            self.running = False

    def close(self) -> None:
        import ray
        import ray.serve

        from cluster.ray_runtime import shutdown_ray

        if not ray.is_initialized():  # never let serve.shutdown() attach to someone else's Ray
            return
        try:
            ray.serve.shutdown()
        finally:
            shutdown_ray()


def serve_app(args: dict[str, Any]) -> Iterator[ServeApp]:
    app = ServeApp(args)
    try:
        app.start()
        yield app
    finally:
        app.close()
