"""Job webhooks: an HMAC-signed POST to the job's callback URL when it ends, retried with backoff.

Deliveries are rows in the `webhooks` table (queued in the same transaction that ends the job), so
a restart neither loses nor forgets one. The receiver verifies

    X-Vidray-Signature: sha256=hex(HMAC_SHA256(secret, f"{X-Vidray-Timestamp}.{body}"))

and may reject old timestamps to stop replays. The URL passed the SSRF guard at submit time and
is checked again before each attempt (DNS may have changed since).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from typing import Any

import sqlalchemy as sa

from serve.db import jobs, webhooks
from serve.jobs.store import JobStore

log = logging.getLogger("serve.jobs.webhooks")
_CLAIM_S = 30.0  # a delivery in progress is hidden from other dispatchers this long


def sign(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={mac}"


def verify(secret: str, timestamp: str, body: bytes, signature: str) -> bool:
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


def payload(job: dict[str, Any]) -> dict[str, Any]:
    return {
        "job_id": job["id"],
        "kind": job["kind"],
        "status": job["status"],
        "video_id": job["video_id"],
        "result": job["result"] if job["status"] == "succeeded" else None,
        "error": job["error"],
        "finished_at": job["finished_at"],
    }


def deliver_due(
    store: JobStore,
    *,
    secret: str,
    allow_hosts: list[str],
    max_attempts: int,
    backoff_s: float,
    limit: int = 20,
    timeout_s: float = 10.0,
) -> int:
    """Attempt every delivery that is due; returns how many were delivered now."""
    import httpx

    from data_pipeline.net_guard import check_url

    now = time.time()
    # Polled twice a second by every ingress replica: look with a plain read first, so the usual
    # "nothing due" never takes the write lock (on SQLite it would stall concurrent job submits).
    with store.engine.connect().execution_options(readonly=True) as c:
        pending = c.execute(
            sa.select(webhooks.c.id).where(webhooks.c.status == "pending", webhooks.c.next_at <= now).limit(1)
        ).first()
    if pending is None:
        return 0
    with store.engine.begin() as c:
        due = (
            c.execute(
                sa.select(webhooks)
                .where(webhooks.c.status == "pending", webhooks.c.next_at <= now)
                .order_by(webhooks.c.next_at)
                .limit(limit)
            )
            .mappings()
            .all()
        )
        claimed: list[dict[str, Any]] = []
        for due_row in due:  # hide it from other dispatchers while we try
            res = c.execute(
                sa.update(webhooks)
                .where(webhooks.c.id == due_row["id"], webhooks.c.next_at == due_row["next_at"])
                .values(next_at=now + _CLAIM_S)
            )
            if res.rowcount == 1:
                claimed.append(dict(due_row))
    delivered = 0
    for row in claimed:
        job = store.get(row["job_id"])
        body = json.dumps(payload(job), default=str).encode()
        ts = str(int(time.time()))
        error = None
        try:
            check_url(row["url"], allow_hosts)
            resp = httpx.post(
                row["url"],
                content=body,
                timeout=timeout_s,
                follow_redirects=False,
                headers={
                    "Content-Type": "application/json",
                    "X-Vidray-Event": f"job.{job['status']}",
                    "X-Vidray-Timestamp": ts,
                    "X-Vidray-Signature": sign(secret, ts, body),
                },
            )
            if not 200 <= resp.status_code < 300:
                error = f"HTTP {resp.status_code}"
        except Exception as e:  # network errors, SSRF refusal: all retried until attempts run out
            error = f"{type(e).__name__}: {e}"
        attempts = row["attempts"] + 1
        if error is None:
            values: dict[str, Any] = {
                "status": "delivered",
                "attempts": attempts,
                "last_error": None,
                "body": body.decode(),
            }
            delivered += 1
        elif attempts >= max_attempts:
            values = {"status": "failed", "attempts": attempts, "last_error": error}
            log.warning("webhook for %s failed for good: %s", row["job_id"], error)
        else:
            # exponential backoff: 1 s, 2 s, 4 s, ... capped at 10 minutes
            values = {
                "attempts": attempts,
                "last_error": error,
                "next_at": time.time() + min(600.0, backoff_s * 2 ** (attempts - 1)),
            }
        with store.engine.begin() as c:
            c.execute(sa.update(webhooks).where(webhooks.c.id == row["id"]).values(**values))
    return delivered


def deliveries(store: JobStore, job_id: str) -> list[dict[str, Any]]:
    with store.engine.connect().execution_options(readonly=True) as c:
        rows = c.execute(
            sa.select(webhooks).where(webhooks.c.job_id == job_id).order_by(webhooks.c.id)
        ).mappings()
        return [dict(r) for r in rows]


__all__ = ["deliver_due", "deliveries", "jobs", "payload", "sign", "verify"]
