"""`vidray serve --direct-ingress`: the app answers on its port from the ingress replica itself.

Over HTTP on 127.0.0.1: a submit that completes, its SSE stream, a 401 and a 422, the streaming
OpenAI-compatible chat; the API port belongs to the ingress replica (not the Serve proxy), and
the HTTP sockets listen on loopback only.

Why a child process: the flag must be in the environment before Ray starts, and it would leak into
every later test's Ray if set in the pytest process. The child is `vidray serve`, so the CLI path
(flag -> environment -> local Ray) is what is tested; it is torn down by process group.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from tests.serve._http import sse, wait_job
from tests.serve.conftest import ADMIN_KEY, free_port
from vidray import samples

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _loopback(ip: str) -> bool:
    addr = ipaddress.ip_address(ip.split("%")[0])
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return addr.is_loopback


def _listening(root: int) -> list[tuple[str, str, int]]:
    """(process name, ip, port) of every TCP socket in LISTEN of `root` and its descendants."""
    proc = psutil.Process(root)
    pids = {root} | {c.pid for c in proc.children(recursive=True)}
    out = []
    for c in psutil.net_connections(kind="tcp"):
        if c.pid in pids and c.status == psutil.CONN_LISTEN and c.laddr:
            with contextlib.suppress(psutil.NoSuchProcess):
                out.append((psutil.Process(c.pid).name(), c.laddr.ip, c.laddr.port))
    return out


def _stop(proc: subprocess.Popen[str]) -> None:
    """Ctrl-C (the command shuts Serve and Ray down), then SIGKILL the group if it lingers."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGINT)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=60)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


@pytest.fixture(scope="module")
def src(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    d = tmp_path_factory.mktemp("di-media")
    samples.make_video(d / "a.mp4", duration=2, size=(160, 120))
    with samples.serve_directory(d) as url:
        yield url


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    d = tmp_path_factory.mktemp("di-app")
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "VIDRAY_ADMIN_KEY": ADMIN_KEY}
    env.pop("RAY_ADDRESS", None)
    cmd = [
        sys.executable,
        "-m",
        "vidray",
        "--set",
        f"data_dir={d / 'data'}",
        "--set",
        "ingest.allow_hosts=[127.0.0.1]",
        "serve",
        "--port",
        str(port),
        "--direct-ingress",
        "--arg",
        f"db_url=sqlite:///{d / 'serve.db'}",
        "--arg",
        "poll_s=0.05",
        "--arg",
        "max_queue_depth=8",
    ]
    log = (d / "serve.log").open("w")
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180  # Ray + four deployments on a busy 2-core box
        while True:
            if proc.poll() is not None:
                raise AssertionError(
                    f"vidray serve exited {proc.returncode}: {(d / 'serve.log').read_text()[-3000:]}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url + "/readyz", timeout=5).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise AssertionError(f"not ready in 180 s: {(d / 'serve.log').read_text()[-3000:]}")
            time.sleep(0.5)
        yield url, proc
    finally:
        _stop(proc)
        log.close()


def test_api_port_is_the_ingress_replica_on_loopback(server: tuple[str, subprocess.Popen[str]]) -> None:
    url, proc = server
    port = int(url.rsplit(":", 1)[1])
    sockets = _listening(proc.pid)
    owners = {name for name, _, p in sockets if p == port}
    assert owners and all("Ingress" in n for n in owners), (
        f"port {port} is not the ingress replica's: {sockets}"
    )
    http = [(n, ip, p) for n, ip, p in sockets if p == port or n.startswith("ray::ProxyActor")]
    assert any(n.startswith("ray::ProxyActor") for n, _, _ in http), sockets  # started, but idle
    assert all(_loopback(ip) for _, ip, _ in http), f"HTTP listens beyond loopback: {http}"
    # Everything else of this Ray stays on loopback too, except what Ray 2.60 hard-codes: each Serve
    # replica's inter-deployment gRPC server binds [::] (same in the default proxy mode).
    exposed = [(n, ip, p) for n, ip, p in sockets if not _loopback(ip)]
    assert all(n.startswith("ray::ServeReplica") and ip == "::" for n, ip, _ in exposed), exposed
    # 127.0.0.1 only: the port is not reachable on this machine's other addresses
    others = [
        a.address for addrs in psutil.net_if_addrs().values() for a in addrs if a.family == socket.AF_INET
    ]
    for ip in others:
        if not _loopback(ip):
            with socket.socket() as s, pytest.raises(OSError):
                s.settimeout(2)
                s.connect((ip, port))


def test_submit_completes_with_events_and_4xx(server: tuple[str, subprocess.Popen[str]], src: str) -> None:
    url, _ = server
    assert httpx.post(url + "/video/analyze", json={"url": f"{src}/a.mp4"}).status_code == 401
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=120) as c:
        bad = c.post("/video/analyze", json={"url": f"{src}/a.mp4", "nope": 1})
        assert bad.status_code == 422, bad.text
        r = c.post("/video/analyze", json={"url": f"{src}/a.mp4", "tasks": ["summary"]})
        assert r.status_code == 202, r.text
        assert r.headers.get("x-request-id")
        job = wait_job(c, r.json()["job_id"], timeout=240)
        assert job["status"] == "succeeded", job
        with c.stream("GET", f"/jobs/{job['id']}/events") as resp:
            assert resp.headers["content-type"].startswith("text/event-stream")
            events = list(sse(resp.iter_lines()))
        assert [d.get("stage") for k, d in events if k != "end"].count("succeeded") == 1, events
        assert events[-1][0] == "end" and events[-1][1]["status"] == "succeeded"


def test_chat_streams(server: tuple[str, subprocess.Popen[str]], src: str) -> None:
    url, _ = server
    body = {
        "model": "vidray",
        "stream": True,
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what happens in the video?"},
                    {"type": "video_url", "video_url": {"url": f"{src}/a.mp4"}},
                ],
            }
        ],
    }
    with (
        httpx.Client(base_url=url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=240) as c,
        c.stream("POST", "/v1/chat/completions", json=body) as resp,
    ):
        assert resp.status_code == 200
        chunks = list(sse(resp.iter_lines()))
    assert chunks[-1][1] == {"done": True}
    text = "".join(d["choices"][0]["delta"].get("content", "") for _, d in chunks[:-1])
    assert text.strip(), chunks


def test_queue_full_answers_429_with_retry_after(server: tuple[str, subprocess.Popen[str]], src: str) -> None:
    url, _ = server
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=120) as c:
        codes: list[int] = []
        accepted: list[str] = []
        for i in range(20):  # max_queue_depth=8; the dispatcher starts some meanwhile
            r = c.post("/video/analyze", json={"url": f"{src}/a.mp4", "questions": [f"q{i}"]})
            codes.append(r.status_code)
            if r.status_code == 202:
                accepted.append(r.json()["job_id"])
            elif r.status_code == 429:
                assert r.headers.get("retry-after"), r.headers
        assert 429 in codes and set(codes) <= {202, 429}, codes
        for job_id in accepted:  # leave nothing running behind
            c.post(f"/jobs/{job_id}/cancel")
