"""cluster.ray_runtime keeps Ray off the network; cluster mode refuses clients without the token.

1. `init_ray()` (the embedded default): every socket any Ray process listens on is loopback.
2. Cluster mode (`ray start --head`, what kuberay/ and cluster/autoscaler.yaml run) with
   RAY_AUTH_MODE=token and the token in a file: the jobs API answers 401 without the token and 200
   with it, and still nothing listens beyond 127.0.0.1 when the node IP is 127.0.0.1.
Ray is started in child processes (never in the pytest process) and torn down by process group.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster import _procs

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.integration, pytest.mark.slow]

_DRIVER = """
import sys
from cluster.ray_runtime import init_ray, shutdown_ray
import ray
assert init_ray(num_cpus=1) == "local"
# A task forces a worker process (and its gRPC server) to exist before sockets are inspected.
assert ray.get(ray.remote(lambda: 42).remote()) == 42
print("ready", flush=True)
sys.stdin.readline()
shutdown_ray()
"""


def test_loopback_checker_catches_a_wildcard_socket() -> None:
    """The checker itself can fail: a socket on 0.0.0.0 is reported as not loopback."""
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        s.listen()
        found = [ip for pid, _, ip, _ in _procs.listening([os.getpid()])]
    assert "0.0.0.0" in found and not _procs.is_loopback("0.0.0.0")
    assert _procs.is_loopback("::ffff:127.0.0.1") and _procs.is_loopback("127.0.0.1")


def test_init_ray_listens_on_loopback_only(tmp_path: Path) -> None:
    env = {**os.environ, "HOME": str(tmp_path), "PYTHONPATH": str(ROOT)}
    env.pop("RAY_ADDRESS", None)
    proc = subprocess.Popen(
        [sys.executable, "-c", _DRIVER],
        cwd=ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        sockets = _procs.listening(_procs.tree(proc.pid))
        names = {name for _, name, _, _ in sockets}
        # GCS, raylet, the driver's core worker and the task worker all serve gRPC.
        assert {"gcs_server", "raylet"} <= names, sockets
        assert len(sockets) >= 4, sockets
        exposed = [s for s in sockets if not _procs.is_loopback(s[2])]
        assert not exposed, f"Ray listens beyond loopback: {exposed}"
        # Ray 2.60 turns token auth on for local instances too and keeps the token in ~/.ray.
        token = tmp_path / ".ray" / "auth_token"
        assert token.is_file() and token.read_text().strip(), "no ~/.ray/auth_token written"
    finally:
        if proc.stdin:
            proc.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=60)
        _procs.kill_group(proc.pid)


@pytest.fixture(scope="module")
def token_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """`ray start --head --block` with token auth, every port chosen here, on 127.0.0.1."""
    tmp_path = tmp_path_factory.mktemp("ray-token")
    token = secrets.token_hex(32)
    token_file = tmp_path / "auth_token"
    token_file.write_text(token)
    token_file.chmod(0o600)
    # Unix socket paths must stay under ~107 bytes: a short temp dir of our own.
    temp_dir = Path(f"/tmp/vr-{os.getpid()}-{secrets.token_hex(3)}")
    ports = {k: _procs.free_port() for k in ("gcs", "dashboard", "client", "agent")}
    env = {
        **os.environ,
        "HOME": str(tmp_path),
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN_PATH": str(token_file),
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    env.pop("RAY_AUTH_TOKEN", None)
    env.pop("RAY_ADDRESS", None)
    cmd = [
        str(Path(sys.executable).parent / "ray"),
        "start",
        "--head",
        "--block",
        "--disable-usage-stats",
        "--node-ip-address",
        "127.0.0.1",
        "--port",
        str(ports["gcs"]),
        "--include-dashboard",
        "true",
        "--dashboard-host",
        "127.0.0.1",
        "--dashboard-port",
        str(ports["dashboard"]),
        "--ray-client-server-port",
        str(ports["client"]),
        "--dashboard-agent-listen-port",
        str(ports["agent"]),
        "--min-worker-port",
        "0",
        "--max-worker-port",
        "0",
        "--num-cpus",
        "1",
        "--temp-dir",
        str(temp_dir),
    ]
    log = (tmp_path / "ray-start.log").open("w")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{ports['dashboard']}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                pytest.fail(
                    f"ray start exited {proc.returncode}: {(tmp_path / 'ray-start.log').read_text()[-2000:]}"
                )
            try:
                urllib.request.urlopen(f"{url}/api/version", timeout=2)
                break
            except urllib.error.HTTPError:
                break  # up, and answering (possibly 401)
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("the dashboard did not come up in 90 s")
                time.sleep(1)
        yield {
            "url": url,
            "token": token,
            "pid": str(proc.pid),
            **{f"port_{k}": str(v) for k, v in ports.items()},
        }
    finally:
        _procs.kill_group(proc.pid)
        proc.wait(timeout=30)
        log.close()
        subprocess.run(["rm", "-rf", str(temp_dir)], check=False)


def _status(url: str, token: str | None) -> int:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as e:
        return int(e.code)


def test_cluster_mode_jobs_api_needs_the_token(token_cluster: dict[str, str]) -> None:
    jobs = f"{token_cluster['url']}/api/jobs/"
    assert _status(jobs, None) == 401
    assert _status(jobs, "not-the-token") in (401, 403)
    assert _status(jobs, token_cluster["token"]) == 200


def test_cluster_mode_listens_on_loopback_only(token_cluster: dict[str, str]) -> None:
    chosen = {int(v) for k, v in token_cluster.items() if k.startswith("port_")}
    deadline = time.monotonic() + 120  # generous: a loaded 2-core CI box starts agents slowly
    while True:  # agents and the client server come up after the dashboard answers
        sockets = _procs.listening(_procs.tree(int(token_cluster["pid"])))
        if chosen <= {port for _, _, _, port in sockets} or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert chosen <= {port for _, _, _, port in sockets}, (chosen, sockets)
    exposed = [s for s in sockets if not _procs.is_loopback(s[2])]
    assert not exposed, f"Ray listens beyond loopback: {exposed}"


def test_cluster_mode_cli_uses_the_token_from_the_environment(
    token_cluster: dict[str, str], tmp_path: Path
) -> None:
    """docs/deploy.md's flow: `ray job list` works with RAY_AUTH_TOKEN set and fails without it."""
    ray_cli = str(Path(sys.executable).parent / "ray")
    base = {**os.environ, "HOME": str(tmp_path), "RAY_AUTH_MODE": "token"}
    for key in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_ADDRESS"):
        base.pop(key, None)
    cmd = [ray_cli, "job", "list", "--address", token_cluster["url"]]
    with_token = subprocess.run(
        cmd,
        env={**base, "RAY_AUTH_TOKEN": token_cluster["token"]},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert with_token.returncode == 0, with_token.stderr[-2000:]
    without = subprocess.run(cmd, env=base, capture_output=True, text=True, timeout=120)
    assert without.returncode != 0
