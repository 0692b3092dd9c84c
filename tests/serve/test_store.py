"""The job store's promises, on SQLite and PostgreSQL: atomic claims, lease fencing, bounded queue,
idempotency, cancel, per-user limits, result cache, restart safety - without Ray."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from serve.jobs.dispatcher import Dispatcher
from serve.jobs.store import Claim, JobCancelledError, JobStore, LeaseLostError, QueueFullError, cache_key
from serve.jobs.webhooks import sign, verify

KINDS = ("analyze",)


def _submit(store: JobStore, owner: str = "u", **kw: object) -> str:
    job, _ = store.submit(kind="analyze", owner=owner, params={"tasks": ["summary"]}, **kw)  # type: ignore[arg-type]
    return str(job["id"])


def test_claims_are_exclusive_under_concurrency(db_url: str) -> None:
    store = JobStore(db_url)
    ids = {_submit(store, owner=f"u{i % 5}") for i in range(40)}
    claimed: list[str] = []
    lock = threading.Lock()

    def grab() -> None:
        while True:
            c = store.claim(worker="w", lease_s=30, per_user_running=100, kinds=KINDS)
            if c is None:
                return
            with lock:
                claimed.append(c.job_id)

    with ThreadPoolExecutor(6) as pool:
        for _ in range(6):
            pool.submit(grab)
    assert sorted(claimed) == sorted(ids)  # every job once, none twice


def test_lease_fencing_and_terminal_once(db_url: str) -> None:
    store = JobStore(db_url)
    jid = _submit(store)
    first = store.claim(worker="a", lease_s=0.01, per_user_running=4, kinds=KINDS)
    assert first is not None and first.job_id == jid
    time.sleep(0.05)
    assert store.expire_leases(max_attempts=3) == [jid]
    second = store.claim(worker="b", lease_s=30, per_user_running=4, kinds=KINDS)
    assert second is not None and second.attempts == 2
    with pytest.raises(LeaseLostError):
        store.report(jid, first.token, stage="x", percent=10)
    assert not store.finish(jid, first.token, status="succeeded", result={"stale": True})
    assert store.finish(jid, second.token, status="succeeded", result={"ok": True})
    assert not store.finish(jid, second.token, status="succeeded", result={"again": True})
    job = store.get(jid)
    assert job["status"] == "succeeded" and job["result"] == {"ok": True}
    assert [e["stage"] for e in store.events(jid)].count("succeeded") == 1


def test_max_attempts_fails_a_job_that_keeps_killing_workers(db_url: str) -> None:
    store = JobStore(db_url)
    jid = _submit(store)
    for _ in range(2):
        c = store.claim(worker="w", lease_s=30, per_user_running=4, kinds=KINDS)
        assert c is not None
        store.release(c.job_id, c.token, max_attempts=2, reason="replica died")
    job = store.get(jid)
    assert job["status"] == "failed" and "gave up after 2 attempts" in job["error"]


def test_unreachable_worker_does_not_use_up_attempts(db_url: str) -> None:
    store = JobStore(db_url)
    jid = _submit(store)
    for _ in range(5):  # a dead replica still routed to: the job never started, attempts are given back
        c = store.claim(worker="w", lease_s=30, per_user_running=4, kinds=KINDS)
        assert c is not None
        assert (
            store.release(c.job_id, c.token, max_attempts=2, reason="ActorDiedError", count=False) == "queued"
        )
    assert store.get(jid)["attempts"] == 0


def test_dispatcher_renewal_keeps_a_waiting_job(db_url: str) -> None:
    store = JobStore(db_url)
    jid = _submit(store)
    c = store.claim(worker="w", lease_s=0.01, per_user_running=4, kinds=KINDS)
    assert c is not None
    store.renew([(c.job_id, c.token)], 30.0)  # still waiting on a replica: the dispatcher vouches for it
    time.sleep(0.05)
    assert store.expire_leases(max_attempts=3) == [] and store.get(jid)["status"] == "running"


def test_bounded_queue_idempotency_and_cache(db_url: str) -> None:
    store = JobStore(db_url)
    for i in range(3):
        store.submit(kind="analyze", owner="u", params={"i": i}, max_queue_depth=3)
    with pytest.raises(QueueFullError) as err:
        store.submit(kind="analyze", owner="u", params={"i": 9}, max_queue_depth=3)
    assert err.value.retry_after >= 1 and err.value.http_status == 429
    a, created_a = store.submit(kind="analyze", owner="v", params={}, idempotency_key="k1")
    b, created_b = store.submit(kind="analyze", owner="v", params={}, idempotency_key="k1")
    assert created_a and not created_b and a["id"] == b["id"]
    other, created = store.submit(kind="analyze", owner="w", params={}, idempotency_key="k1")
    assert created and other["id"] != a["id"]  # keys are per user
    # a finished job's result answers a repeat at once, even past the queue depth
    key = cache_key("f" * 64, {"tasks": ["summary"]})
    jid = store.submit(kind="analyze", owner="c", params={}, key=key)[0]["id"]
    with store.engine.begin() as c:  # make it claimable ahead of the others
        import sqlalchemy as sa

        from serve.db import jobs

        c.execute(sa.update(jobs).where(jobs.c.id == jid).values(created_at=0))
    claim = store.claim(worker="w", lease_s=30, per_user_running=4, kinds=KINDS)
    assert claim is not None and claim.job_id == jid
    store.finish(jid, claim.token, status="succeeded", result={"summary": "s"})
    again, _ = store.submit(kind="analyze", owner="c", params={}, key=key, max_queue_depth=1)
    assert again["status"] == "succeeded" and again["result"] == {"summary": "s"}


def test_cancel_queued_and_running(db_url: str) -> None:
    store = JobStore(db_url)
    queued = _submit(store)
    assert store.cancel(queued) == "cancelled"
    running = _submit(store)
    c = store.claim(worker="w", lease_s=30, per_user_running=4, kinds=KINDS)
    assert c is not None and c.job_id == running
    assert store.cancel(running) == "running"
    with pytest.raises(JobCancelledError):
        store.report(running, c.token, stage="x", percent=50)
    assert store.finish(running, c.token, status="cancelled")
    assert store.get(running)["status"] == "cancelled"
    assert store.claim(worker="w", lease_s=30, per_user_running=4, kinds=KINDS) is None


def test_per_user_running_limit(db_url: str) -> None:
    store = JobStore(db_url)
    for _ in range(3):
        _submit(store, owner="busy")
    _submit(store, owner="other")
    got = [store.claim(worker="w", lease_s=30, per_user_running=2, kinds=KINDS) for _ in range(4)]
    owners = [store.get(c.job_id)["owner"] for c in got if c is not None]
    assert sorted(owners) == ["busy", "busy", "other"]  # the third 'busy' job waits its turn


def _run_dispatcher(store: JobStore, runner: object, n_slots: int = 4) -> Dispatcher:
    return Dispatcher(
        store,
        {"analyze": runner},
        slots=n_slots,
        lease_s=2.0,
        per_user_running=50,  # type: ignore[dict-item]
        max_attempts=3,
        poll_s=0.02,
    ).start()


def _wait_all_terminal(store: JobStore, ids: list[str], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(store.get(i)["status"] in ("succeeded", "failed", "cancelled") for i in ids):
            return
        time.sleep(0.05)
    raise AssertionError({i: store.get(i)["status"] for i in ids})


def test_dispatcher_requeues_when_a_worker_dies_and_survives_restart(db_url: str) -> None:
    store = JobStore(db_url)
    ids = [_submit(store) for _ in range(12)]
    runs: dict[str, int] = {}
    lock = threading.Lock()
    died: set[str] = set()

    def runner(claim: Claim) -> str:
        with lock:
            runs[claim.job_id] = runs.get(claim.job_id, 0) + 1
            die = claim.job_id == ids[3] and claim.job_id not in died
            died.add(claim.job_id)
        if die:
            store.report(claim.job_id, claim.token, stage="ingest", percent=1.0)  # it had started
            raise RuntimeError("ActorDiedError: replica killed")  # what a handle raises for a dead replica
        time.sleep(0.05)
        store.finish(claim.job_id, claim.token, status="succeeded", result={"n": 1})
        return "succeeded"

    first = _run_dispatcher(store, runner)
    time.sleep(0.2)
    first.stop(release=True)  # the app goes down with jobs queued and running
    second = _run_dispatcher(store, runner)
    try:
        _wait_all_terminal(store, ids)
    finally:
        second.stop()
    assert all(store.get(i)["status"] == "succeeded" for i in ids)
    for i in ids:  # exactly one terminal transition per job
        assert [e["stage"] for e in store.events(i)].count("succeeded") == 1
    assert store.get(ids[3])["attempts"] >= 2


def test_webhook_signature_roundtrip() -> None:
    sig = sign("s3cret", "1700000000", b'{"a":1}')
    assert sig.startswith("sha256=") and verify("s3cret", "1700000000", b'{"a":1}', sig)
    assert not verify("other", "1700000000", b'{"a":1}', sig)


def test_webhook_retries_with_backoff_until_delivered(tmp_path: object) -> None:
    import http.server
    import threading as th

    from serve.jobs.webhooks import deliver_due, deliveries

    hits: list[int] = []

    class Flaky(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length", 0)))
            hits.append(1)
            self.send_response(503 if len(hits) < 3 else 200)  # fails twice, then accepts
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Flaky)
    th.Thread(target=server.serve_forever, daemon=True).start()
    try:
        store = JobStore(f"sqlite:///{tmp_path}/hooks.db")
        url = f"http://127.0.0.1:{server.server_address[1]}/hook"
        job, _ = store.submit(kind="analyze", owner="u", params={}, callback_url=url)
        claim = store.claim(worker="w", lease_s=30, per_user_running=4, kinds=KINDS)
        assert claim is not None
        store.finish(job["id"], claim.token, status="succeeded", result={"ok": 1})
        kw = {"secret": "s", "allow_hosts": ["127.0.0.1"], "max_attempts": 5, "backoff_s": 0.1}
        deadline = time.monotonic() + 10
        while deliveries(store, job["id"])[0]["status"] == "pending" and time.monotonic() < deadline:
            deliver_due(store, **kw)  # type: ignore[arg-type]
            time.sleep(0.05)
        row = deliveries(store, job["id"])[0]
        assert row["status"] == "delivered" and row["attempts"] == 3 and len(hits) == 3
        # a refused (SSRF) callback is never contacted and fails after its attempts
        job2, _ = store.submit(kind="analyze", owner="u", params={}, callback_url="http://169.254.169.254/x")
        store.cancel(job2["id"])
        for _ in range(5):
            deliver_due(store, **{**kw, "backoff_s": 0.0001})  # type: ignore[arg-type]
            time.sleep(0.01)
        assert deliveries(store, job2["id"])[0]["status"] == "failed"
    finally:
        server.shutdown()
        server.server_close()
