"""Jobs, their progress events and the result cache, as status transitions in SQL transactions.

The life of a job, and the one rule that keeps "none run twice":

    queued --claim (atomic UPDATE ... WHERE status='queued')--> running(lease_token, lease_until)
    running --complete/fail/cancel (UPDATE ... WHERE lease_token=<mine>)--> succeeded|failed|cancelled
    running --lease expired (worker died) / worker released--> queued (attempts+1) ... or failed

Every write a worker makes names its lease token, so a worker that lost its lease (it was presumed
dead and the job re-queued) can no longer finish, fail or report progress on that job: exactly one
attempt can move a job to a terminal state. Claims honour the per-user running limit.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from cluster.errors import NotFoundError, VidrayError
from serve.db import job_events, jobs, make_engine, results, webhooks

TERMINAL = frozenset({"succeeded", "failed", "cancelled"})
ANALYSIS_VERSION = "1"  # bump when run_analysis output changes, so cached results are not reused


class QueueFullError(VidrayError):
    """The queue is at its depth; the client should retry after `retry_after` seconds."""

    http_status = 429

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class LeaseLostError(Exception):
    """This worker no longer holds the job (re-queued after a presumed death, or finished elsewhere)."""


class JobCancelledError(Exception):
    """The job's owner asked to cancel it; the worker stops at the next progress report."""


@dataclass(frozen=True)
class SubmitRequest:
    """One job to queue: the arguments of `JobStore.submit`, so that many can share a transaction."""

    kind: str
    owner: str
    params: dict[str, Any]
    video_id: str | None = None
    idempotency_key: str | None = None
    callback_url: str | None = None
    max_queue_depth: int | None = None
    key: str | None = None  # result-cache key (content hash + params): a hit succeeds the job at once
    created_at: float = field(default_factory=time.time)  # arrival time: claims run jobs in this order


SubmitOutcome = tuple[dict[str, Any], bool] | Exception  # (job, created) or this request's error


@dataclass(frozen=True)
class Claim:
    job_id: str
    token: str
    kind: str
    attempts: int
    created_at: float = 0.0


def cache_key(content_sha256: str, params: dict[str, Any]) -> str:
    """Key of a result: the video's content hash plus the request parameters that change the output."""
    doc = json.dumps({"v": ANALYSIS_VERSION, "sha": content_sha256, "p": params}, sort_keys=True, default=str)
    return hashlib.sha256(doc.encode()).hexdigest()


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:20]}"


class JobStore:
    """All job state; one instance per process, safe to share between threads."""

    def __init__(self, url_or_engine: str | sa.Engine) -> None:
        self.engine = make_engine(url_or_engine) if isinstance(url_or_engine, str) else url_or_engine

    def _read(self) -> sa.Connection:
        return self.engine.connect().execution_options(readonly=True)

    # ----------------------------------------------------------------- submit
    def submit(
        self,
        *,
        kind: str,
        owner: str,
        params: dict[str, Any],
        video_id: str | None = None,
        idempotency_key: str | None = None,
        callback_url: str | None = None,
        max_queue_depth: int | None = None,
        key: str | None = None,
    ) -> tuple[dict[str, Any], bool]:
        """Queue a job; returns (job, created). A repeat idempotency key returns the first job.

        A known result for `key` (content hash + params) makes the job succeed at once.
        Raises `QueueFullError` when `max_queue_depth` jobs are already queued.
        """
        request = SubmitRequest(
            kind=kind,
            owner=owner,
            params=params,
            video_id=video_id,
            idempotency_key=idempotency_key,
            callback_url=callback_url,
            max_queue_depth=max_queue_depth,
            key=key,
        )
        outcome = self.submit_many([request])[0]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def submit_many(self, requests: Sequence[SubmitRequest]) -> list[SubmitOutcome]:
        """Queue several jobs in one transaction (group commit); one outcome per request, in order.

        Why: under a burst, one transaction per submit makes every request pay its own BEGIN/COMMIT
        and, on SQLite, wait for the single write lock in turn; one transaction for all the submits
        that arrived together costs about as much as one. Each request keeps its own answer: a full
        queue is that request's `QueueFullError`, a repeated idempotency key its first job (also
        within the batch). Nothing is returned before the commit, so a returned job is stored. If
        the batch fails on a unique key (another replica inserted the same idempotency key between
        our check and our insert, PostgreSQL), every request is retried in its own transaction, so
        one conflict cannot fail its neighbours. Any other database error is every request's outcome.
        """
        if not requests:
            return []
        try:
            with self.engine.begin() as c:
                return self._insert_batch(c, requests)
        except sa.exc.IntegrityError:
            return [self._submit_alone(r) for r in requests]

    def _submit_alone(self, request: SubmitRequest) -> SubmitOutcome:
        try:
            with self.engine.begin() as c:
                return self._insert_batch(c, [request])[0]
        except sa.exc.IntegrityError as e:
            if request.idempotency_key:  # lost the race for this key: answer with the winner's job
                with self._read() as c:
                    found = _by_idempotency_key(c, request.owner, request.idempotency_key)
                if found:
                    return dict(found), False
            return e
        except Exception as e:  # this request's own failure; the caller answers it alone
            return e

    def _insert_batch(self, c: sa.Connection, requests: Sequence[SubmitRequest]) -> list[SubmitOutcome]:
        outcomes: list[SubmitOutcome] = []
        job_rows: list[dict[str, Any]] = []
        event_rows: list[dict[str, Any]] = []
        hook_rows: list[dict[str, Any]] = []
        earlier: dict[tuple[str, str], dict[str, Any]] = {}  # idempotency keys seen in this batch
        stored_depth: int | None = None  # queued jobs before this batch, read once when first needed
        queued_here = 0
        for r in requests:
            if r.idempotency_key:
                found = earlier.get((r.owner, r.idempotency_key)) or _by_idempotency_key(
                    c, r.owner, r.idempotency_key
                )
                if found:
                    outcomes.append((dict(found), False))
                    continue
            cached = None
            if r.key:
                cached = c.execute(sa.select(results.c.result).where(results.c.cache_key == r.key)).scalar()
            if cached is None and r.max_queue_depth is not None:
                if stored_depth is None:
                    stored_depth = int(
                        c.execute(
                            sa.select(sa.func.count()).select_from(jobs).where(jobs.c.status == "queued")
                        ).scalar()
                        or 0
                    )
                depth = stored_depth + queued_here
                if depth >= r.max_queue_depth:
                    outcomes.append(
                        QueueFullError(
                            f"the job queue is full ({depth} queued, max_queue_depth={r.max_queue_depth}); "
                            "retry later",
                            retry_after=max(1, min(60, depth // 16)),
                        )
                    )
                    continue
            now = r.created_at
            row: dict[str, Any] = {
                "id": new_id("job"),
                "kind": r.kind,
                "owner": r.owner,
                "status": "queued",
                "video_id": r.video_id,
                "params": r.params,
                "cache_key": r.key,
                "idempotency_key": r.idempotency_key,
                "progress": 0.0,
                "attempts": 0,
                "cancel_requested": False,
                "callback_url": r.callback_url,
                "created_at": now,
            }
            if cached is not None:
                row.update(status="succeeded", progress=100.0, stage="cached", result=cached, finished_at=now)
            else:
                queued_here += 1
            if r.idempotency_key:
                earlier[(r.owner, r.idempotency_key)] = row
            job_rows.append(row)
            event_rows.append(
                {
                    "job_id": row["id"],
                    "ts": now,
                    "stage": row["status"],
                    "percent": row["progress"],
                    "data": {"cached": True} if cached is not None else None,
                }
            )
            if cached is not None and r.callback_url:
                hook_rows.append(_webhook_row(row["id"], r.callback_url, now))
            outcomes.append((row, True))
        # one multi-row INSERT per table; rows are grouped by their columns because a cached job sets
        # three more than a queued one, and a column left out must stay SQL NULL (not JSON null)
        by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for row in job_rows:
            by_columns.setdefault(tuple(row), []).append(row)
        for rows in by_columns.values():
            c.execute(sa.insert(jobs), rows)
        if event_rows:
            c.execute(sa.insert(job_events), event_rows)
        if hook_rows:
            c.execute(sa.insert(webhooks), hook_rows)
        return outcomes

    # ------------------------------------------------------------------ claim
    def claim(
        self, *, worker: str, lease_s: float, per_user_running: int, kinds: tuple[str, ...]
    ) -> Claim | None:
        """Take the oldest queued job whose owner is under the running limit, or None."""
        now = time.time()
        busy = (
            sa.select(jobs.c.owner)
            .where(jobs.c.status == "running")
            .group_by(jobs.c.owner)
            .having(sa.func.count() >= per_user_running)
        )
        # An idle dispatcher polls every poll_s: look with a plain read first, so an empty queue
        # never takes the write lock (on SQLite, BEGIN IMMEDIATE would make concurrent submits wait).
        with self._read() as c:
            waiting = c.execute(
                sa.select(jobs.c.id).where(jobs.c.status == "queued", jobs.c.kind.in_(kinds)).limit(1)
            ).first()
        if waiting is None:
            return None
        with self.engine.begin() as c:
            for _ in range(3):  # lost a race to another dispatcher: look again
                row = c.execute(
                    sa.select(jobs.c.id, jobs.c.kind, jobs.c.attempts, jobs.c.created_at)
                    .where(jobs.c.status == "queued", jobs.c.kind.in_(kinds), jobs.c.owner.not_in(busy))
                    .order_by(jobs.c.created_at, jobs.c.id)
                    .limit(1)
                ).first()
                if row is None:
                    return None
                token = uuid.uuid4().hex
                res = c.execute(
                    sa.update(jobs)
                    .where(jobs.c.id == row.id, jobs.c.status == "queued")
                    .values(
                        status="running",
                        lease_token=token,
                        lease_until=now + lease_s,
                        attempts=jobs.c.attempts + 1,
                        started_at=now,
                        stage="claimed",
                    )
                )
                if res.rowcount == 1:
                    c.execute(
                        sa.insert(job_events).values(
                            job_id=row.id,
                            ts=now,
                            stage="running",
                            percent=0.0,
                            data={"attempt": row.attempts + 1, "worker": worker},
                        )
                    )
                    return Claim(row.id, token, row.kind, row.attempts + 1, float(row.created_at))
        return None

    def report(
        self,
        job_id: str,
        token: str,
        *,
        stage: str,
        percent: float,
        data: Any = None,
        lease_s: float | None = None,
    ) -> None:
        """Record progress (and renew the lease); raises if the lease is lost or cancel was asked."""
        now = time.time()
        values: dict[str, Any] = {"stage": stage[:100], "progress": max(0.0, min(100.0, percent))}
        if lease_s is not None:
            values["lease_until"] = now + lease_s
        with self.engine.begin() as c:
            res = c.execute(
                sa.update(jobs)
                .where(jobs.c.id == job_id, jobs.c.lease_token == token, jobs.c.status == "running")
                .values(**values)
                .returning(jobs.c.cancel_requested)
            ).first()
            if res is None:
                raise LeaseLostError(job_id)
            if stage != "heartbeat":
                c.execute(
                    sa.insert(job_events).values(
                        job_id=job_id, ts=now, stage=stage[:100], percent=values["progress"], data=data
                    )
                )
        if res.cancel_requested:
            raise JobCancelledError(job_id)

    def finish(
        self,
        job_id: str,
        token: str,
        *,
        status: str,
        result: Any = None,
        error: str | None = None,
        error_status: int | None = None,
    ) -> bool:
        """Move a running job to a terminal status; False when this worker no longer holds it."""
        assert status in TERMINAL
        now = time.time()
        with self.engine.begin() as c:
            res = c.execute(
                sa.update(jobs)
                .where(jobs.c.id == job_id, jobs.c.lease_token == token, jobs.c.status == "running")
                .values(
                    status=status,
                    result=result,
                    error=error,
                    error_status=error_status,
                    finished_at=now,
                    progress=100.0 if status == "succeeded" else jobs.c.progress,
                    lease_token=None,
                    lease_until=None,
                    stage=status,
                )
                .returning(jobs.c.cache_key, jobs.c.callback_url)
            ).first()
            if res is None:
                return False
            c.execute(
                sa.insert(job_events).values(
                    job_id=job_id,
                    ts=now,
                    stage=status,
                    percent=100.0 if status == "succeeded" else 0.0,
                    data={"error": error} if error else None,
                )
            )
            if status == "succeeded" and res.cache_key and result is not None:
                exists = c.execute(
                    sa.select(results.c.cache_key).where(results.c.cache_key == res.cache_key)
                ).first()
                if not exists:
                    c.execute(
                        sa.insert(results).values(cache_key=res.cache_key, result=result, created_at=now)
                    )
            if res.callback_url:
                self._queue_webhook(c, job_id, res.callback_url, now)
        return True

    def release(
        self, job_id: str, token: str, *, max_attempts: int, reason: str, count: bool = True
    ) -> str | None:
        """Give a running job back to the queue (its worker died or is shutting down).

        Returns the new status, or None if this token no longer holds the job. A job that has used
        up `max_attempts` fails instead, so a job that kills every replica cannot loop forever.
        `count=False` (the call never reached a live worker: the job had not started) gives the
        attempt back, so a replica restart does not use up a job's attempts.
        """
        now = time.time()
        with self.engine.begin() as c:
            row = c.execute(
                sa.select(jobs.c.attempts).where(
                    jobs.c.id == job_id, jobs.c.lease_token == token, jobs.c.status == "running"
                )
            ).first()
            if row is None:
                return None
            if not count:
                c.execute(sa.update(jobs).where(jobs.c.id == job_id).values(attempts=jobs.c.attempts - 1))
                return self._requeue(c, job_id, 0, max_attempts, reason, now)
            return self._requeue(c, job_id, row.attempts, max_attempts, reason, now)

    def _requeue(
        self, c: sa.Connection, job_id: str, attempts: int, max_attempts: int, reason: str, now: float
    ) -> str:
        if attempts >= max_attempts:
            status, values = (
                "failed",
                {
                    "error": f"gave up after {attempts} attempts: {reason}",
                    "error_status": 500,
                    "finished_at": now,
                },
            )
        else:
            status, values = "queued", {}
        c.execute(
            sa.update(jobs)
            .where(jobs.c.id == job_id, jobs.c.status == "running")
            .values(status=status, lease_token=None, lease_until=None, stage=status, **values)
        )
        c.execute(
            sa.insert(job_events).values(
                job_id=job_id,
                ts=now,
                stage=status,
                percent=0.0,
                data={"requeued": status == "queued", "reason": reason},
            )
        )
        return status

    def renew(self, held: list[tuple[str, str]], lease_s: float) -> None:
        """Extend the leases of jobs (job_id, token) a live dispatcher still has in flight.

        Why: a dispatched job can wait in a Serve queue for a replica (one is restarting) before its
        worker starts heartbeating; the dispatcher that is waiting on it proves it is not abandoned.
        """
        if not held:
            return
        until = time.time() + lease_s
        with self.engine.begin() as c:
            for job_id, token in held:
                c.execute(
                    sa.update(jobs)
                    .where(jobs.c.id == job_id, jobs.c.lease_token == token, jobs.c.status == "running")
                    .values(
                        lease_until=sa.func.max(jobs.c.lease_until, until)
                        if self.engine.dialect.name == "sqlite"
                        else sa.func.greatest(jobs.c.lease_until, until)
                    )
                )

    def expire_leases(self, *, max_attempts: int) -> list[str]:
        """Re-queue running jobs whose lease ran out (their worker stopped renewing it)."""
        now = time.time()
        out = []
        with self.engine.begin() as c:
            rows = c.execute(
                sa.select(jobs.c.id, jobs.c.attempts).where(
                    jobs.c.status == "running", jobs.c.lease_until < now
                )
            ).all()
            for row in rows:
                self._requeue(c, row.id, row.attempts, max_attempts, "lease expired (worker stopped)", now)
                out.append(row.id)
        return out

    # ----------------------------------------------------------------- cancel
    def cancel(self, job_id: str) -> str:
        """Cancel a queued job at once, or ask a running one to stop; returns the status now."""
        now = time.time()
        with self.engine.begin() as c:
            row = c.execute(sa.select(jobs.c.status, jobs.c.callback_url).where(jobs.c.id == job_id)).first()
            if row is None:
                raise NotFoundError(f"job {job_id} does not exist")
            if row.status == "queued":
                c.execute(
                    sa.update(jobs)
                    .where(jobs.c.id == job_id, jobs.c.status == "queued")
                    .values(status="cancelled", finished_at=now, stage="cancelled")
                )
                c.execute(sa.insert(job_events).values(job_id=job_id, ts=now, stage="cancelled", percent=0.0))
                if row.callback_url:
                    self._queue_webhook(c, job_id, row.callback_url, now)
                return "cancelled"
            if row.status == "running":
                c.execute(sa.update(jobs).where(jobs.c.id == job_id).values(cancel_requested=True))
            return str(row.status)

    # ------------------------------------------------------------------ reads
    def get(self, job_id: str) -> dict[str, Any]:
        with self._read() as c:
            row = c.execute(sa.select(jobs).where(jobs.c.id == job_id)).mappings().first()
        if row is None:
            raise NotFoundError(f"job {job_id} does not exist; check the id returned by the submit call")
        return dict(row)

    def events(self, job_id: str, after: int = 0, limit: int = 500) -> list[dict[str, Any]]:
        with self._read() as c:
            rows = (
                c.execute(
                    sa.select(job_events)
                    .where(job_events.c.job_id == job_id, job_events.c.seq > after)
                    .order_by(job_events.c.seq)
                    .limit(limit)
                )
                .mappings()
                .all()
            )
        return [dict(r) for r in rows]

    def counts(self) -> dict[str, int]:
        with self._read() as c:
            rows = c.execute(sa.select(jobs.c.status, sa.func.count()).group_by(jobs.c.status)).all()
        return {str(s): int(n) for s, n in rows}

    def list_jobs(self, owner: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        q = sa.select(jobs).order_by(jobs.c.created_at.desc()).limit(limit)
        if owner is not None:
            q = q.where(jobs.c.owner == owner)
        with self._read() as c:
            return [dict(r) for r in c.execute(q).mappings().all()]

    def cached_result(self, key: str) -> Any | None:
        with self._read() as c:
            return c.execute(sa.select(results.c.result).where(results.c.cache_key == key)).scalar()

    def set_cache_key(self, job_id: str, token: str, key: str) -> None:
        with self.engine.begin() as c:
            c.execute(
                sa.update(jobs).where(jobs.c.id == job_id, jobs.c.lease_token == token).values(cache_key=key)
            )

    def ping(self) -> None:
        with self._read() as c:
            c.execute(sa.text("SELECT 1"))

    # --------------------------------------------------------------- webhooks
    def _queue_webhook(self, c: sa.Connection, job_id: str, url: str, now: float) -> None:
        c.execute(sa.insert(webhooks).values(**_webhook_row(job_id, url, now)))


def _by_idempotency_key(c: sa.Connection, owner: str, idempotency_key: str) -> Any:
    query = sa.select(jobs).where(jobs.c.owner == owner, jobs.c.idempotency_key == idempotency_key)
    return c.execute(query).mappings().first()


def _webhook_row(job_id: str, url: str, now: float) -> dict[str, Any]:
    return {"job_id": job_id, "url": url, "body": "", "status": "pending", "attempts": 0, "next_at": now}
