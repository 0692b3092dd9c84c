"""Group commit: one writer thread turns the submits that arrive together into one transaction.

Start here: a route calls `await group.submit(request)`; the request waits in a queue; the writer
thread takes everything queued (up to `max_batch`), calls `JobStore.submit_many` once, and answers
each waiting route with its own outcome (its job, or its own error such as `QueueFullError`) only
after the commit, so a 202 still means the job is stored.

Why a writer thread and not a transaction per request on a thread pool: under a burst (150 submits
at once) per-request transactions make every request pay BEGIN + COMMIT, and on SQLite they queue
for the one write lock through sqlite's busy handler, which sleeps 1, 2, 5, 10 ... ms between tries
even when the lock has just been freed. One writer holds the lock once per batch, and the event
loop never blocks: it only awaits a future. There is no batching delay: a batch is whatever queued
while the previous one was committing, so a lone submit goes straight through.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from concurrent.futures import Future
from typing import Any

from serve.jobs.store import JobStore, SubmitRequest

log = logging.getLogger("serve.jobs.group_commit")

_MAX_BATCH = 256  # bounds one transaction's length (and so its lock hold) under a very long queue
_Result = tuple[dict[str, Any], bool]  # (job, created), as JobStore.submit returns it
_Item = tuple[SubmitRequest, Future[_Result]]


class GroupCommit:
    """Submits from any thread or event loop, written by one thread in shared transactions."""

    def __init__(self, store: JobStore, *, max_batch: int = _MAX_BATCH, name: str = "group-commit") -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        self.store, self.max_batch = store, max_batch
        self.batches = 0  # transactions written (batch sizes are submitted / batches)
        self.submitted = 0
        self._q: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._closed = False
        self._closing = threading.Lock()  # no submit slips in after close() queued its stop marker
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def submit_future(self, request: SubmitRequest) -> Future[_Result]:
        """Queue `request`; the future holds (job, created) after the commit, or the request's error."""
        fut: Future[_Result] = Future()
        with self._closing:
            if self._closed:
                raise RuntimeError("this GroupCommit is closed; the replica is shutting down")
            self._q.put((request, fut))
        return fut

    async def submit(self, request: SubmitRequest) -> _Result:
        """Queue `request` and wait for its commit without blocking the event loop.

        A caller cancelled before its batch is taken (the client went away) is not written.
        """
        return await asyncio.wrap_future(self.submit_future(request))

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued, then stop the writer thread."""
        with self._closing:
            if self._closed:
                return
            self._closed = True
            self._q.put(None)
        self._thread.join(timeout)

    def _loop(self) -> None:
        stopping = False  # close() was called: write what is queued, then return
        while True:
            if stopping:
                try:
                    first = self._q.get_nowait()
                except queue.Empty:
                    return
            else:
                first = self._q.get()
            batch: list[_Item] = []
            for item in self._drain(first):
                if item is None:
                    stopping = True
                else:
                    batch.append(item)
            if batch:
                self._write(batch)

    def _drain(self, first: _Item | None) -> list[_Item | None]:
        """`first` and whatever else is queued now, up to max_batch submits."""
        items = [first]
        n = 0 if first is None else 1
        while n < self.max_batch:
            try:
                item = self._q.get_nowait()
            except queue.Empty:
                break
            items.append(item)
            n += item is not None
        return items

    def _write(self, batch: list[_Item]) -> None:
        live = [(r, f) for r, f in batch if f.set_running_or_notify_cancel()]
        if not live:
            return
        try:
            outcomes = self.store.submit_many([r for r, _ in live])
        except Exception as e:  # the database failed the whole batch: each request answers with it
            log.warning("group commit of %d submits failed: %s: %s", len(live), type(e).__name__, e)
            outcomes = [e] * len(live)
        self.batches += 1
        self.submitted += len(live)
        for (_, fut), outcome in zip(live, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                fut.set_exception(outcome)
            else:
                fut.set_result(outcome)
