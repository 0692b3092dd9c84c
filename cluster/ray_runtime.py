"""The one place that starts or joins Ray.

Why loopback: a local Ray binds its GCS, raylet, object manager and agents to the machine's
address unless told otherwise, which exposes an unauthenticated-by-default control plane to the
network. For the embedded default we pin the node IP to 127.0.0.1 and set
RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 *before* `ray` is imported (it is read at import time), which
makes every Ray port listen on 127.0.0.1 only (checked by tests/cluster/test_ray_runtime.py).
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

# Must happen before the first `import ray` anywhere in this process.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import ray

LOOPBACK = "127.0.0.1"
_START_ATTEMPTS = 3
log = logging.getLogger("cluster.ray_runtime")


def init_ray(
    address: str | None = None,
    *,
    num_cpus: int | None = None,
    runtime_env: dict[str, Any] | None = None,
    object_store_memory: int | None = None,
) -> str:
    """Join the cluster at `address` (or RAY_ADDRESS), or start a loopback-only local Ray.

    Returns "local" or the address joined. Idempotent: a second call in the same process returns
    without touching the running instance.
    """
    if ray.is_initialized():
        return "existing"
    address = address or os.environ.get("RAY_ADDRESS") or None
    common: dict[str, Any] = {"runtime_env": runtime_env, "log_to_driver": False, "configure_logging": False}
    if address:
        ray.init(address=address, **common)
        return address
    for attempt in range(1, _START_ATTEMPTS + 1):
        try:
            ray.init(
                # "local" always starts a new instance; without it ray.init() joins whatever Ray is
                # already running on this machine (another process's, another user's) and rejects num_cpus
                address="local",
                _node_ip_address=LOOPBACK,
                include_dashboard=False,  # the dashboard/jobs API is a cluster-mode concern (kuberay/)
                num_cpus=num_cpus,
                object_store_memory=object_store_memory,
                **common,
            )
            return "local"
        except Exception as e:
            # Ray gives its raylet a fixed 30 s to register; a busy 2-core machine can miss that.
            if "timed out during startup" not in str(e) or attempt == _START_ATTEMPTS:
                raise
            log.warning("local Ray did not start in time (attempt %d of %d); retrying", attempt, _START_ATTEMPTS)
            ray.shutdown()
            time.sleep(2.0 * attempt)
    return "local"


def shutdown_ray() -> None:
    """Stop the Ray instance this process started or joined (no-op when none)."""
    if ray.is_initialized():
        ray.shutdown()
