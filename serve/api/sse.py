"""Server-sent events for job progress: one `progress` event per stage, a `result` event per finished
task (its partial result), and a final `end` event with the job's status (and result).

Why poll the database: the events are rows written by whichever replica runs the job, so any
ingress replica can stream any job, a client can reconnect with `Last-Event-ID` and miss nothing,
and no pub/sub service is needed. 0.2 s polling is far below a stage's duration.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from serve.jobs.store import TERMINAL, JobStore

_POLL_S = 0.2
_KEEPALIVE_S = 15.0


def _event(kind: str, data: Any, seq: int | None = None) -> str:
    head = f"id: {seq}\n" if seq is not None else ""
    return f"{head}event: {kind}\ndata: {json.dumps(data, default=str)}\n\n"


async def job_events(
    store: JobStore, job_id: str, *, after: int = 0, results_only: bool = False
) -> AsyncIterator[str]:
    last_sent = time.monotonic()
    while True:
        job = await asyncio.to_thread(store.get, job_id)
        rows = await asyncio.to_thread(store.events, job_id, after)
        for row in rows:
            after = row["seq"]
            data = row["data"] or {}
            is_result = isinstance(data, dict) and ("result" in data or "error" in data) and "task" in data
            if results_only and not is_result:
                continue
            payload = {"job_id": job_id, "stage": row["stage"], "percent": row["percent"], "ts": row["ts"]}
            if data:
                payload.update(data if isinstance(data, dict) else {"data": data})
            yield _event("result" if is_result else "progress", payload, row["seq"])
            last_sent = time.monotonic()
        if job["status"] in TERMINAL and not rows:
            yield _event(
                "end",
                {
                    "job_id": job_id,
                    "status": job["status"],
                    "error": job["error"],
                    "result": job["result"] if job["status"] == "succeeded" else None,
                },
            )
            return
        if time.monotonic() - last_sent > _KEEPALIVE_S:
            yield ": keepalive\n\n"
            last_sent = time.monotonic()
        await asyncio.sleep(_POLL_S)
