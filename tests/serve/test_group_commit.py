"""Group commit (`JobStore.submit_many` + `GroupCommit`), on SQLite and PostgreSQL, without Ray:
one transaction per batch keeps every job, answers each request with its own outcome (queue full,
idempotent repeat, cache hit), retries alone after a unique-key race, and reports a failed batch to
every request in it."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import sqlalchemy as sa

import serve.jobs.store as store_mod
from serve.db import job_events, jobs, results
from serve.jobs.group_commit import GroupCommit
from serve.jobs.store import JobStore, QueueFullError, SubmitRequest, cache_key


def _req(i: int, owner: str = "u", **kw: Any) -> SubmitRequest:
    return SubmitRequest(kind="analyze", owner=owner, params={"i": i}, **kw)


def _count(store: JobStore, table: sa.Table) -> int:
    with store.engine.connect() as c:
        return int(c.execute(sa.select(sa.func.count()).select_from(table)).scalar() or 0)


def test_one_batch_keeps_every_job_in_order(db_url: str) -> None:
    store = JobStore(db_url)
    out = store.submit_many([_req(i, owner=f"u{i % 3}") for i in range(40)])
    assert all(isinstance(o, tuple) and o[1] for o in out)
    ids = [o[0]["id"] for o in out if isinstance(o, tuple)]
    assert len(set(ids)) == 40
    assert [store.get(j)["params"] for j in ids] == [{"i": i} for i in range(40)]
    assert _count(store, jobs) == 40 and _count(store, job_events) == 40  # one 'queued' event each
    assert store.counts() == {"queued": 40}


def test_queue_depth_is_counted_within_the_batch(db_url: str) -> None:
    store = JobStore(db_url)
    store.submit(kind="analyze", owner="u", params={})  # one already queued
    out = store.submit_many([_req(i, max_queue_depth=4) for i in range(6)])
    created = [o for o in out if isinstance(o, tuple)]
    refused = [o for o in out if isinstance(o, QueueFullError)]
    assert len(created) == 3 and len(refused) == 3  # 1 + 3 = depth 4; the rest are that request's 429
    assert out[:3] == created and all(r.retry_after >= 1 for r in refused)
    assert "max_queue_depth=4" in str(refused[0])
    assert store.counts() == {"queued": 4}


def test_idempotency_and_cache_hits_inside_a_batch(db_url: str) -> None:
    store = JobStore(db_url)
    key = cache_key("a" * 64, {"tasks": ["summary"]})
    with store.engine.begin() as c:
        c.execute(sa.insert(results).values(cache_key=key, result={"summary": "s"}, created_at=0.0))
    out = store.submit_many(
        [
            _req(0, owner="v", idempotency_key="k1"),
            _req(1, owner="v", idempotency_key="k1"),  # same user, same key: the first job again
            _req(2, owner="w", idempotency_key="k1"),  # keys are per user
            _req(3, key=key, max_queue_depth=1),  # a stored result answers it even at depth
            _req(4, max_queue_depth=3),
        ]
    )
    (a, ca), (b, cb), (w, cw), (hit, ch), (plain, cp) = out  # type: ignore[misc]
    assert ca and not cb and a["id"] == b["id"] and cw and w["id"] != a["id"]
    assert ch and hit["status"] == "succeeded" and hit["result"] == {"summary": "s"}
    assert cp and plain["status"] == "queued"
    assert store.get(hit["id"])["stage"] == "cached"
    assert store.get(plain["id"])["result"] is None and store.get(plain["id"])["stage"] is None
    assert _count(store, jobs) == 4
    again = store.submit_many([_req(9, owner="v", idempotency_key="k1")])[0]
    assert isinstance(again, tuple) and again == (store.get(a["id"]), False)


def test_unique_key_race_retries_each_request_alone(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another replica inserts the same idempotency key between our check and our insert (PostgreSQL
    READ COMMITTED): the batch's INSERT fails, and only that request answers with the winner's job."""
    store = JobStore(db_url)
    winner, _ = store.submit(kind="analyze", owner="v", params={"winner": True}, idempotency_key="race")
    real = store_mod._by_idempotency_key

    def blind_inside_writes(c: sa.Connection, owner: str, key: str) -> Any:
        return real(c, owner, key) if c.get_execution_options().get("readonly") else None

    monkeypatch.setattr(store_mod, "_by_idempotency_key", blind_inside_writes)
    out = store.submit_many([_req(0), _req(1, owner="v", idempotency_key="race"), _req(2)])
    assert isinstance(out[0], tuple) and out[0][1] and isinstance(out[2], tuple) and out[2][1]
    assert out[1] == (store.get(winner["id"]), False)
    assert _count(store, jobs) == 3


def test_group_commit_batches_concurrent_submits(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    store = JobStore(db_url)
    first_batch_taken, release = threading.Event(), threading.Event()
    real = store.submit_many

    def slow_first(requests: Any) -> Any:
        if not first_batch_taken.is_set():
            first_batch_taken.set()
            release.wait(10)
        return real(requests)

    monkeypatch.setattr(store, "submit_many", slow_first)
    group = GroupCommit(store)
    try:
        futures = [group.submit_future(_req(0))]
        assert first_batch_taken.wait(10)
        with ThreadPoolExecutor(8) as pool:  # 40 submits from 8 threads while the writer is busy
            futures += list(
                pool.map(lambda i: group.submit_future(_req(i + 1, max_queue_depth=30)), range(40))
            )
        release.set()
        outcomes = [f.exception(10) or f.result() for f in futures]
    finally:
        group.close()
    assert group.batches == 2 and group.submitted == 41  # the 40 queued meanwhile shared one transaction
    created = [o for o in outcomes if isinstance(o, tuple)]
    refused = [o for o in outcomes if isinstance(o, QueueFullError)]
    assert len(created) == 30 and len(refused) == 11  # depth 30 counted across the shared batch
    assert sorted(j["id"] for j, _ in created) == sorted(r["id"] for r in store.list_jobs(limit=100))


def test_a_failed_batch_fails_each_of_its_requests_and_the_writer_goes_on(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = JobStore(db_url)
    group = GroupCommit(store)
    try:

        def broken(requests: Any) -> Any:
            raise sa.exc.OperationalError("INSERT", {}, Exception("disk I/O error"))

        with monkeypatch.context() as m:
            m.setattr(store, "submit_many", broken)
            futures = [group.submit_future(_req(i)) for i in range(3)]
            for f in futures:
                with pytest.raises(sa.exc.OperationalError):
                    f.result(10)
        job, created = group.submit_future(_req(9)).result(10)  # the next batch is written
    finally:
        group.close()
    assert created and store.counts() == {"queued": 1} and store.get(job["id"])["params"] == {"i": 9}


def test_cancelled_before_its_batch_is_not_written_and_close_drains(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = JobStore(db_url)
    taken, gate = threading.Event(), threading.Event()
    real = store.submit_many

    def gated(requests: Any) -> Any:
        taken.set()
        gate.wait(10)
        return real(requests)

    monkeypatch.setattr(store, "submit_many", gated)
    group = GroupCommit(store)
    busy = group.submit_future(_req(0))  # the writer takes it and waits at the gate
    assert taken.wait(10)
    gone = group.submit_future(_req(1))
    kept = group.submit_future(_req(2))
    assert gone.cancel()  # e.g. the client disconnected while its submit was queued
    gate.set()
    group.close()  # writes what is still queued before returning
    assert busy.result(10)[1] and kept.result(10)[1] and gone.cancelled()
    assert {j["params"]["i"] for j in store.list_jobs()} == {0, 2}
    with pytest.raises(RuntimeError, match="closed"):
        group.submit_future(_req(3))


def test_async_submit_from_an_event_loop(db_url: str) -> None:
    store = JobStore(db_url)
    group = GroupCommit(store)

    async def burst() -> list[Any]:
        return await asyncio.gather(
            *(group.submit(_req(i, max_queue_depth=20)) for i in range(25)), return_exceptions=True
        )

    try:
        outcomes = asyncio.run(burst())
    finally:
        group.close()
    assert sum(isinstance(o, tuple) for o in outcomes) == 20
    assert sum(isinstance(o, QueueFullError) for o in outcomes) == 5
