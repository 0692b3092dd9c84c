"""Process and socket helpers for the Ray runtime tests: what listens where, and clean teardown.

Why psutil rather than `ss`: it gives the listening sockets of exactly the processes a test
started (a process tree), so other Ray instances on a shared machine never confuse the result.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import signal
import socket
import time
from collections.abc import Iterable

import psutil


def is_loopback(ip: str) -> bool:
    """127.0.0.0/8 and ::1, including IPv4-mapped IPv6 (`::ffff:127.0.0.1`, as gcs_server binds)."""
    addr = ipaddress.ip_address(ip.split("%")[0])
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return addr.is_loopback


def tree(pid: int) -> set[int]:
    """`pid` and all its descendants that are still alive."""
    try:
        root = psutil.Process(pid)
        return {pid} | {c.pid for c in root.children(recursive=True)}
    except psutil.NoSuchProcess:
        return set()


def listening(pids: Iterable[int]) -> list[tuple[int, str, str, int]]:
    """(pid, process name, ip, port) of every TCP socket in LISTEN and every bound UDP socket of `pids`."""
    wanted = set(pids)
    out = []
    for c in psutil.net_connections(kind="inet"):
        if c.pid not in wanted or not c.laddr:
            continue
        if c.type == socket.SOCK_STREAM and c.status != psutil.CONN_LISTEN:
            continue
        try:
            name = psutil.Process(c.pid).name()
        except psutil.NoSuchProcess:
            continue
        out.append((c.pid, name, c.laddr.ip, c.laddr.port))
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def kill_group(pgid: int, grace_s: float = 5.0) -> None:
    """SIGTERM the process group this test started, then SIGKILL whatever is left after `grace_s`."""
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        alive = [
            p
            for p in psutil.process_iter(["pid"])
            if _pgid(p.pid) == pgid and p.status() != psutil.STATUS_ZOMBIE
        ]
        if not alive:
            return
        time.sleep(0.5)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except (ProcessLookupError, psutil.NoSuchProcess):
        return None


def kill_by_path(marker: str) -> list[int]:
    """SIGKILL every process whose command line contains `marker` (a temp dir unique to one test).

    Why: a Ray node that times out while starting raises before cluster_utils records it, so its
    raylet and agents are nobody's children; the unique temp dir in their arguments identifies them.
    """
    killed = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        if proc.pid == os.getpid():
            continue
        if any(marker in arg for arg in (proc.info.get("cmdline") or [])):
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
                killed.append(proc.pid)
    return killed
