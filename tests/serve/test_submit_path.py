"""The submit path in one process, without Ray: the FastAPI app with async auth, the group commit
and the request-id middleware under a concurrent burst (every 202 stored, 429 + Retry-After past the
depth, 401/403, idempotent repeats, request ids and HTTP metrics)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from cluster import metric_names as mn
from serve.api import context
from serve.api.context import AppContext, build_context
from serve.api.http import api
from serve.settings import parse_serve_settings
from tests.serve.conftest import ADMIN_KEY

DEPTH = 20


@pytest.fixture
def ctx(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[AppContext]:
    settings = parse_serve_settings(
        {
            "db_url": f"sqlite:///{tmp_path / 'serve.db'}",
            "overrides": [f"data_dir={tmp_path / 'data'}", "ingest.allow_hosts=[127.0.0.1]"],
            "max_queue_depth": DEPTH,
        }
    )
    built = build_context(settings)  # no dispatcher: submitted jobs stay queued
    monkeypatch.setattr(context, "_current", built)
    yield built
    built.submits.close()


async def _burst(n: int, key: str = ADMIN_KEY, **headers: str) -> list[httpx.Response]:
    transport = httpx.ASGITransport(app=api)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://vidray", headers={"Authorization": f"Bearer {key}", **headers}
    ) as c:
        return list(
            await asyncio.gather(
                *(
                    c.post(
                        "/video/analyze",
                        json={
                            "url": "http://127.0.0.1:9/v.mp4",
                            "tasks": ["summary"],
                            "questions": [f"q{i}"],
                        },
                    )
                    for i in range(n)
                )
            )
        )


def _counted(status: str) -> float:
    sample: Any = mn.get(mn.HTTP_REQUESTS).labels("POST", "/video/analyze", status)
    return float(sample._value.get())


def test_a_burst_stores_every_accepted_job_and_refuses_past_the_depth(ctx: AppContext) -> None:
    before = _counted("202"), _counted("429")
    responses = asyncio.run(_burst(DEPTH + 10))
    accepted = [r for r in responses if r.status_code == 202]
    refused = [r for r in responses if r.status_code == 429]
    assert len(accepted) == DEPTH and len(refused) == 10, {r.status_code for r in responses}
    assert all(int(r.headers["retry-after"]) >= 1 for r in refused)
    assert "max_queue_depth=20" in refused[0].json()["error"]["message"]
    stored = {j["id"]: j for j in ctx.store.list_jobs(limit=100)}
    assert {r.json()["job_id"] for r in accepted} == set(stored)  # a 202 means the row is committed
    assert all(j["status"] == "queued" for j in stored.values())
    assert all(len(r.headers["x-request-id"]) == 16 for r in responses)
    assert (_counted("202") - before[0], _counted("429") - before[1]) == (DEPTH, 10)


def test_auth_and_idempotency_on_the_async_path(ctx: AppContext) -> None:
    viewer, _ = ctx.keys.create(user="bob", role="viewer")
    assert asyncio.run(_burst(1, key="vk_unknown"))[0].status_code == 401
    forbidden = asyncio.run(_burst(1, key=viewer))[0]
    assert forbidden.status_code == 403 and "'analyst' role" in forbidden.json()["error"]["message"]
    first, *repeats = asyncio.run(_burst(3, **{"Idempotency-Key": "once", "X-Request-Id": "req-abc"}))
    assert {first.status_code, *(r.status_code for r in repeats)} == {200, 202}  # one created, two repeats
    ids = {r.json()["job_id"] for r in (first, *repeats)}
    assert len(ids) == 1 and len(ctx.store.list_jobs()) == 1
    assert all(r.headers["x-request-id"] == "req-abc" for r in (first, *repeats))
