"""The dispatcher: moves queued jobs from the database to worker replicas, at most `slots` at a time.

Why a pull loop over the DB instead of pushing requests straight into Serve: the database is the
queue, so a queued job survives any restart, can be cancelled before it starts, and counts toward
the 429 depth; Serve only ever sees as many requests as there are slots, so its own queues stay
short and autoscaling sees real load. Each dispatched job is one Serve request
(`handle.run_job.remote(job_id, token)`); if the replica dies the call raises, and the job is
released back to the queue (attempts+1). Leases are the backstop when the dispatcher itself dies:
a running job whose lease was not renewed is re-queued by whichever dispatcher notices first.

It runs as a thread pool in each ingress replica: it does no media work (a DB query and a remote
call per job), and several ingress replicas can run it side by side because claims are atomic.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from cluster import metric_names as mn
from serve.jobs.store import Claim, JobStore

log = logging.getLogger("serve.jobs.dispatcher")

_UNSTARTED_BACKOFF_S = 2.0  # wait before re-queueing a job whose worker was unreachable

RunFn = Callable[[Claim], str | None]  # blocks until the worker replica returns (or raises if it died)


class Dispatcher:
    def __init__(
        self,
        store: JobStore,
        runners: dict[str, RunFn],
        *,
        slots: int,
        lease_s: float,
        per_user_running: int,
        max_attempts: int,
        poll_s: float,
        on_tick: Callable[[], None] | None = None,
        name: str = "dispatcher",
    ) -> None:
        self.store, self.runners = store, runners
        self.slots, self.lease_s, self.per_user = slots, lease_s, per_user_running
        self.max_attempts, self.poll_s, self.on_tick, self.name = max_attempts, poll_s, on_tick, name
        self._free = threading.Semaphore(slots)
        self._pool = ThreadPoolExecutor(max_workers=slots, thread_name_prefix="dispatch")
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self.in_flight: dict[str, Claim] = {}

    def start(self) -> Dispatcher:
        self._thread.start()
        return self

    def wake(self) -> None:
        """A job was just queued: look now instead of at the next poll."""
        self._wake.set()

    def stop(self, release: bool = True) -> None:
        """Stop claiming; with `release`, give in-flight jobs' leases back so a restart re-runs them at once."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=5)
        if release:
            for claim in list(self.in_flight.values()):
                self.store.release(
                    claim.job_id, claim.token, max_attempts=self.max_attempts + 1, reason="dispatcher stopped"
                )
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _loop(self) -> None:
        last_sweep = 0.0
        while not self._stop.is_set():
            try:
                now = time.monotonic()
                if now - last_sweep > self.lease_s / 3:
                    last_sweep = now
                    held = [(c.job_id, c.token) for c in list(self.in_flight.values())]
                    self.store.renew(held, self.lease_s)
                    expired = self.store.expire_leases(max_attempts=self.max_attempts)
                    if expired:
                        log.warning("re-queued %d jobs whose lease expired", len(expired))
                    if self.on_tick:
                        self.on_tick()
                if self._free.acquire(timeout=self.poll_s):
                    claim = self.store.claim(
                        worker=self.name,
                        lease_s=self.lease_s,
                        per_user_running=self.per_user,
                        kinds=tuple(self.runners),
                    )
                    if claim is None:
                        self._free.release()
                        self._wake.wait(self.poll_s)
                        self._wake.clear()
                        continue
                    mn.get(mn.QUEUE_WAIT_SECONDS).observe(max(0.0, time.time() - claim.created_at))
                    self.in_flight[claim.job_id] = claim
                    self._pool.submit(self._run, claim)
            except Exception:  # the DB went away for a moment: keep the loop alive
                log.exception("dispatch loop error")
                time.sleep(min(2.0, self.poll_s * 10))

    def _run(self, claim: Claim) -> None:
        try:
            status = self.runners[claim.kind](claim)
            if status == "succeeded":
                mn.get(mn.JOBS_SUCCEEDED).labels(task=claim.kind, backend="serve").inc()
                mn.get(mn.JOB_SECONDS).labels(task=claim.kind).observe(
                    max(0.0, time.time() - claim.created_at)
                )
            elif status == "failed":
                mn.get(mn.JOBS_FAILED).labels(task=claim.kind, backend="serve", error="job").inc()
        except Exception as e:  # the replica died or the call could not be delivered
            if self._stop.is_set():
                return  # stop() releases it
            # The call never reached a live worker when the job did not move past 'claimed' (a dead
            # replica still in the routing table while Serve replaces it): back off, and do not count
            # the attempt, so a replica restart cannot use up max_attempts in a few fast failures.
            try:
                started = self.store.get(claim.job_id).get("stage") not in (None, "claimed")
            except Exception:
                started = True
            if not started:
                self._stop.wait(_UNSTARTED_BACKOFF_S)
            status = self.store.release(
                claim.job_id,
                claim.token,
                max_attempts=self.max_attempts,
                reason=f"worker failed: {type(e).__name__}: {e}"[:500],
                count=started,
            )
            log.warning("job %s worker failed (%s); now %s", claim.job_id, type(e).__name__, status)
        finally:
            self.in_flight.pop(claim.job_id, None)
            self._free.release()
            self._wake.set()
