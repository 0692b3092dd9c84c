"""Load on the Serve app: N concurrent analyze submits, then a burst past the queue depth.

Question: does the app accept a burst of jobs quickly (p99 submit < 1 s), lose none, answer no 5xx,
and refuse overload with 429 + Retry-After instead of queueing without bound?

    .venv/bin/python benchmarks/serve_load.py                      # 150 jobs, SQLite, 2-core defaults
    .venv/bin/python benchmarks/serve_load.py --jobs 50 --burst 20 # quicker
    .venv/bin/python benchmarks/serve_load.py --db-url "$(bash scripts/start_postgres.sh)"
    .venv/bin/python benchmarks/serve_load.py --direct-ingress     # clients talk to the ingress replica

Phase 1 submits --jobs analyze jobs at once (distinct questions over --videos short generated clips
served from 127.0.0.1, so no result cache hits); phase 2, while those are still queued, fires
--burst more to show the 429 path past --depth. Then it waits for every accepted job. Prints a
table and one JSON line. Peak memory is the summed RSS of this process and every process below it
(Ray's GCS, raylet, Serve controller, proxy and replicas); "CPU per submit" splits phase 1's CPU time
by process (client = this script), which shows where a submit's time goes on a CPU-bound machine.
`--direct-ingress` starts Ray with Serve's experimental direct ingress (serve/direct_ingress.py): the
same app, but the load goes straight to the ingress replica's own HTTP port instead of the proxy.
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
from collections.abc import Iterator
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


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


async def submit_all(
    base: str, key: str, bodies: list[dict[str, Any]], client: str = "aiohttp"
) -> list[tuple[int, float, dict[str, Any], dict[str, str]]]:
    """POST every body to /video/analyze at once; (status, seconds, json, headers) per request.

    aiohttp by default rather than httpx (used everywhere else): the load generator shares the 2
    cores with the server, and httpx's AsyncClient measured ~6 ms of CPU per request here against
    aiohttp's ~1 ms, a difference that was charged to the server's submit latency. aiohttp ships
    with ray[serve]; `--client httpx` reproduces the earlier measurements.
    """
    if client == "httpx":
        return await _submit_all_httpx(base, key, bodies)
    import aiohttp

    connector = aiohttp.TCPConnector(limit=len(bodies) + 10)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(
        base, connector=connector, timeout=timeout, headers={"Authorization": f"Bearer {key}"}
    ) as c:

        async def one(body: dict[str, Any]) -> tuple[int, float, dict[str, Any], dict[str, str]]:
            t0 = time.perf_counter()
            async with c.post("/video/analyze", json=body) as r:
                doc = await r.json(content_type=None)
                return r.status, time.perf_counter() - t0, doc, {k.lower(): v for k, v in r.headers.items()}

        return list(await asyncio.gather(*(one(b) for b in bodies)))


async def _submit_all_httpx(
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


@contextlib.contextmanager
def fresh_database(url: str | None, work: Path) -> Iterator[str]:
    """A new, empty job database for this run: a SQLite file under `work`, or a new database on the
    PostgreSQL server of `url` (dropped afterwards). Why: a reused database answers jobs from results
    an earlier run cached (same generated clips, same questions), which makes end-to-end look fast."""
    if not url or url.startswith("sqlite"):
        yield url or f"sqlite:///{work / 'serve.db'}"
        return
    import sqlalchemy as sa

    name = "vidray_load_" + uuid.uuid4().hex[:10]
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as c:
            c.execute(sa.text(f'CREATE DATABASE "{name}"'))
        try:
            yield url.rsplit("/", 1)[0] + "/" + name
        finally:
            with admin.connect() as c:
                c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


_ROLES = ("Ingress", "ProxyActor", "IngestWorker", "Analyzer", "ModelRouter", "ServeController")


def cpu_by_role() -> dict[str, float]:
    """CPU seconds used so far by this process ("client") and each Serve role below it ("ray" = the rest)."""
    import psutil

    me = psutil.Process()
    out: dict[str, float] = {}
    for proc in [me, *me.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            cmd = " ".join(proc.cmdline())
            role = "client" if proc.pid == me.pid else next((r for r in _ROLES if r in cmd), "ray")
            t = proc.cpu_times()
            out[role] = out.get(role, 0.0) + t.user + t.system
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--jobs", type=int, default=150)
    ap.add_argument("--burst", type=int, default=60, help="extra submits while phase 1 is queued (429 path)")
    ap.add_argument("--depth", type=int, default=160, help="max_queue_depth of the app")
    ap.add_argument("--videos", type=int, default=5)
    ap.add_argument("--tasks", default="summary", help="comma-separated analysis tasks per job")
    ap.add_argument("--db-url", default=None)
    ap.add_argument("--timeout", type=float, default=1800)
    ap.add_argument(
        "--client", choices=("aiohttp", "httpx"), default="aiohttp", help="load generator (see submit_all)"
    )
    ap.add_argument(
        "--direct-ingress",
        action="store_true",
        help="Ray Serve direct ingress: submits go to the ingress replica's own port, not the proxy",
    )
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="another app arg (serve.settings.ServeSettings), e.g. --set worker_nice=0; VALUE is JSON or text",
    )
    args = ap.parse_args(argv)

    port = 18000 + os.getpid() % 1000
    proxy_port = port
    if args.direct_ingress:
        from serve import direct_ingress

        direct_ingress.apply_env(port)  # before Ray starts: the controller and replicas read it
        proxy_port = _free_port()  # the (idle) proxy still starts; it must not take the API's port

    # cluster.ray_runtime first: it sets the loopback-only Ray environment before `ray` is imported
    from cluster.ray_runtime import init_ray, shutdown_ray

    # isort: split
    import httpx
    import ray.serve

    from vidray import samples

    work = Path(tempfile.mkdtemp(prefix="vidray-serve-load-"))
    media = work / "media"
    media.mkdir()
    for i in range(args.videos):
        samples.make_video(media / f"v{i}.mp4", duration=1.0 + 0.5 * (i % 3), size=(160, 120), fps=25)
    cleanup = contextlib.ExitStack()
    db_url = cleanup.enter_context(fresh_database(args.db_url, work))
    app_args = {
        "db_url": db_url,
        "overrides": [f"data_dir={work / 'data'}", "ingest.allow_hosts=[127.0.0.1]"],
        "max_queue_depth": args.depth,
        "per_user_running": 8,
        "dispatch_slots": 6,
        "poll_s": 0.05,
    }
    for item in args.set:
        k, sep, v = item.partition("=")
        if not sep:
            ap.error(f"--set {item!r}: write KEY=VALUE, e.g. --set worker_nice=0")
        try:
            app_args[k] = json.loads(v)
        except json.JSONDecodeError:
            app_args[k] = v
    tasks = [t for t in args.tasks.split(",") if t]
    base = f"http://127.0.0.1:{port}"
    with cleanup, samples.serve_directory(media) as src, PeakMemory() as mem:
        t_boot = time.perf_counter()
        init_ray(num_cpus=2)
        try:
            from serve.app import build_app

            ray.serve.start(http_options={"host": "127.0.0.1", "port": proxy_port})
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
            load_at_start = os.getloadavg()[0]
            cpu0 = cpu_by_role()
            t0 = time.perf_counter()
            res1 = asyncio.run(submit_all(base, ADMIN_KEY, phase1, args.client))
            submit_wall = time.perf_counter() - t0
            cpu1 = cpu_by_role()
            # where phase 1's CPU went, per submit (processes that started meanwhile count from 0)
            cpu_ms = {
                role: round((cpu1[role] - cpu0.get(role, 0.0)) / args.jobs * 1e3, 2)
                for role in sorted(cpu1, key=lambda r: cpu0.get(r, 0.0) - cpu1[r])
                if cpu1[role] - cpu0.get(role, 0.0) > 0.005
            }
            res2 = asyncio.run(submit_all(base, ADMIN_KEY, phase2, args.client)) if phase2 else []
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
        "client": args.client,
        "direct_ingress": args.direct_ingress,
        "app_args_set": args.set,
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
        "cpu_ms_per_submit": cpu_ms,
        "cpus": os.cpu_count(),
        "load_avg_1m_start": round(load_at_start, 1),
        "load_avg_1m": round(os.getloadavg()[0], 1),
    }
    rows = [
        ("HTTP path", "direct ingress (no proxy)" if args.direct_ingress else "Serve proxy"),
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
        ("phase-1 CPU per submit (ms)", ", ".join(f"{k} {v}" for k, v in cpu_ms.items())),
        ("load average (1 min) at start / end", f"{out['load_avg_1m_start']} / {out['load_avg_1m']}"),
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
