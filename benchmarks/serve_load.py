"""Load on the Serve app: N concurrent analyze submits, then a burst past the queue depth.

Question: does the app accept a burst of jobs quickly (p99 submit < 1 s), lose none, answer no 5xx,
and refuse overload with 429 + Retry-After instead of queueing without bound?

    .venv/bin/python benchmarks/serve_load.py                      # 150 jobs, SQLite, 2-core defaults
    .venv/bin/python benchmarks/serve_load.py --jobs 50 --burst 20 # quicker
    .venv/bin/python benchmarks/serve_load.py --db-url "$(bash scripts/start_postgres.sh)"

Phase 1 submits --jobs analyze jobs at once (distinct questions over --videos short generated clips
served from 127.0.0.1, so no result cache hits); phase 2, while those are still queued, fires
--burst more to show the 429 path past --depth. Then it waits for every accepted job. Prints a
table and one JSON line. Peak memory is the summed RSS of this process and every process below it
(Ray's GCS, raylet, Serve controller, proxy and replicas).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

ADMIN_KEY = "vk_bench_" + uuid.uuid4().hex
os.environ["VIDRAY_ADMIN_KEY"] = ADMIN_KEY
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _tree_rss() -> int:
    import psutil

    me = psutil.Process()
    total = me.memory_info().rss
    for child in me.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            total += child.memory_info().rss
    return total


class PeakMemory:
    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            self.peak = max(self.peak, _tree_rss())

    def __enter__(self) -> PeakMemory:
        self._t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join()


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


async def submit_all(
    base: str, key: str, bodies: list[dict[str, Any]]
) -> list[tuple[int, float, dict[str, Any], dict[str, str]]]:
    import httpx

    limits = httpx.Limits(max_connections=len(bodies) + 10, max_keepalive_connections=len(bodies) + 10)
    async with httpx.AsyncClient(
        base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=60, limits=limits
    ) as c:

        async def one(body: dict[str, Any]) -> tuple[int, float, dict[str, Any], dict[str, str]]:
            t0 = time.perf_counter()
            r = await c.post("/video/analyze", json=body)
            return r.status_code, time.perf_counter() - t0, r.json(), dict(r.headers)

        return list(await asyncio.gather(*(one(b) for b in bodies)))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--jobs", type=int, default=150)
    ap.add_argument("--burst", type=int, default=60, help="extra submits while phase 1 is queued (429 path)")
    ap.add_argument("--depth", type=int, default=160, help="max_queue_depth of the app")
    ap.add_argument("--videos", type=int, default=5)
    ap.add_argument("--tasks", default="summary", help="comma-separated analysis tasks per job")
    ap.add_argument("--db-url", default=None)
    ap.add_argument("--timeout", type=float, default=1800)
    args = ap.parse_args(argv)

    import httpx
    import ray.serve

    from cluster.ray_runtime import init_ray, shutdown_ray
    from vidray import samples

    work = Path(tempfile.mkdtemp(prefix="vidray-serve-load-"))
    media = work / "media"
    media.mkdir()
    for i in range(args.videos):
        samples.make_video(media / f"v{i}.mp4", duration=1.0 + 0.5 * (i % 3), size=(160, 120), fps=25)
    app_args = {
        "db_url": args.db_url or f"sqlite:///{work / 'serve.db'}",
        "overrides": [f"data_dir={work / 'data'}", "ingest.allow_hosts=[127.0.0.1]"],
        "max_queue_depth": args.depth,
        "per_user_running": 8,
        "dispatch_slots": 6,
        "poll_s": 0.05,
    }
    tasks = [t for t in args.tasks.split(",") if t]
    port = 18000 + os.getpid() % 1000
    base = f"http://127.0.0.1:{port}"
    with samples.serve_directory(media) as src, PeakMemory() as mem:
        t_boot = time.perf_counter()
        init_ray(num_cpus=2)
        try:
            from serve.app import build_app

            ray.serve.start(http_options={"host": "127.0.0.1", "port": port})
            ray.serve.run(build_app(app_args), name="vidray", route_prefix="/")
            boot_s = time.perf_counter() - t_boot
            phase1 = [
                {"url": f"{src}/v{i % args.videos}.mp4", "tasks": tasks, "questions": [f"load {i}"]}
                for i in range(args.jobs)
            ]
            phase2 = [
                {"url": f"{src}/v{i % args.videos}.mp4", "tasks": tasks, "questions": [f"burst {i}"]}
                for i in range(args.burst)
            ]
            t0 = time.perf_counter()
            res1 = asyncio.run(submit_all(base, ADMIN_KEY, phase1))
            submit_wall = time.perf_counter() - t0
            res2 = asyncio.run(submit_all(base, ADMIN_KEY, phase2)) if phase2 else []
            accepted = [doc["job_id"] for code, _, doc, _ in res1 + res2 if code in (200, 202)]
            refused = [(code, h.get("retry-after")) for code, _, _, h in res1 + res2 if code == 429]
            five_xx = sum(1 for code, *_ in res1 + res2 if code >= 500)
            # wait for every accepted job
            done: dict[str, str] = {}
            wanted = set(accepted)
            with httpx.Client(
                base_url=base, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=60
            ) as c:
                deadline = time.monotonic() + args.timeout
                while len(done) < len(accepted) and time.monotonic() < deadline:
                    rows = c.get("/jobs", params={"limit": 500}).json()["jobs"]
                    for row in rows:  # only this run's jobs (a reused database may hold others)
                        if row["id"] in wanted and row["status"] in ("succeeded", "failed", "cancelled"):
                            done[row["id"]] = row["status"]
                    time.sleep(0.5)
                e2e = time.perf_counter() - t0
                attempts = [c.get(f"/jobs/{j}").json()["attempts"] for j in accepted]
                metrics_ok = c.get("/metrics").status_code == 200
        finally:
            ray.serve.shutdown()
            shutdown_ray()
    lat1 = [lat for _, lat, _, _ in res1]
    out = {
        "jobs": args.jobs,
        "burst": args.burst,
        "depth": args.depth,
        "tasks": tasks,
        "db": app_args["db_url"].split(":")[0],
        "accepted": len(accepted),
        "refused_429": len(refused),
        "retry_after": sorted({r for _, r in refused if r}),
        "five_xx": five_xx,
        "succeeded": sum(1 for s in done.values() if s == "succeeded"),
        "failed": sum(1 for s in done.values() if s == "failed"),
        "lost": len(set(accepted) - set(done)),
        "max_attempts": max(attempts or [0]),
        "submit_p50_s": round(statistics.median(lat1), 4),
        "submit_p99_s": round(pct(lat1, 0.99), 4),
        "submit_max_s": round(max(lat1), 4),
        "submit_wall_s": round(submit_wall, 3),
        "end_to_end_s": round(e2e, 2),
        "jobs_per_s": round(len(done) / e2e, 2) if e2e else None,
        "boot_s": round(boot_s, 1),
        "peak_rss_mib": round(mem.peak / 2**20),
        "metrics_ok": metrics_ok,
        "cpus": os.cpu_count(),
        "load_avg_1m": round(os.getloadavg()[0], 1),
    }
    rows = [
        ("phase-1 submits accepted", f"{sum(1 for c, *_ in res1 if c == 202)}/{args.jobs}"),
        (
            "submit latency p50 / p99 / max",
            f"{out['submit_p50_s']} / {out['submit_p99_s']} / {out['submit_max_s']} s",
        ),
        (f"burst past depth {args.depth}: 429s", f"{len(refused)} (Retry-After {out['retry_after']})"),
        (
            "accepted / succeeded / failed / lost",
            f"{out['accepted']} / {out['succeeded']} / {out['failed']} / {out['lost']}",
        ),
        ("5xx responses", str(five_xx)),
        (
            "end-to-end (first submit -> last job done)",
            f"{out['end_to_end_s']} s ({out['jobs_per_s']} jobs/s)",
        ),
        ("peak RSS (driver + Ray + replicas)", f"{out['peak_rss_mib']} MiB"),
        ("app boot", f"{out['boot_s']} s"),
    ]
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    print(json.dumps(out))
    ok = out["lost"] == 0 and five_xx == 0 and out["failed"] == 0 and (args.burst == 0 or refused)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
