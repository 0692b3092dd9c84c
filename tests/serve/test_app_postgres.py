"""The same app on PostgreSQL (the cluster's database): upload, analyze, cached repeat, and a restart
with jobs queued that completes every job exactly once. Skips without VIDRAY_TEST_PG_URL
(scripts/test.sh starts one with scripts/start_postgres.sh)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.serve._http import sse, wait_job
from tests.serve.conftest import ADMIN_KEY, ServeApp, fresh_pg_db, pg_url_or_skip, serve_app
from vidray import samples

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def src(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    d = tmp_path_factory.mktemp("pg-media")
    samples.make_video(d / "c.mp4", duration=2, size=(160, 120))
    with samples.serve_directory(d) as url:
        yield url


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeApp]:
    db = fresh_pg_db(pg_url_or_skip())
    d: Path = tmp_path_factory.mktemp("pg-app")
    yield from serve_app(
        {
            "db_url": db,
            "overrides": [f"data_dir={d / 'data'}", "ingest.allow_hosts=[127.0.0.1]"],
            "lease_s": 4.0,
            "poll_s": 0.05,
            "per_user_running": 2,
            "debug_stage_delay_s": 0.2,
        }
    )


def test_postgres_app_restart_completes_each_job_once(app: ServeApp, src: str) -> None:
    c = httpx.Client(base_url=app.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=120)
    with c:
        r = c.post("/video/upload?wait=true", json={"url": f"{src}/c.mp4"})
        assert r.status_code == 201, r.text
        vid = r.json()["video_id"]
        first = c.post("/video/analyze", json={"video_id": vid, "tasks": ["summary"]}).json()
        assert wait_job(c, first["job_id"])["status"] == "succeeded"
        assert c.post("/video/analyze", json={"video_id": vid, "tasks": ["summary"]}).json()["cached"] is True
        ids = [
            c.post(
                "/video/analyze", json={"video_id": vid, "tasks": ["summary"], "questions": [f"q{i}"]}
            ).json()["job_id"]
            for i in range(6)
        ]
    app.stop()
    app.start()
    with httpx.Client(base_url=app.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=120) as c:
        assert [wait_job(c, i, timeout=240)["status"] for i in ids] == ["succeeded"] * len(ids)
        for job_id in ids:
            with c.stream("GET", f"/jobs/{job_id}/events") as resp:
                stages = [d.get("stage") for k, d in sse(resp.iter_lines()) if k != "end"]
            assert stages.count("succeeded") == 1, (job_id, stages)
