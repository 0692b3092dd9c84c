"""Ray Serve's experimental direct ingress for vidray: the ingress replica answers HTTP itself.

Why: on a small node the Serve HTTP proxy is a third of the CPU a submit costs (parse the request,
route it, an actor call to the ingress replica, a second call back from the replica to fetch the
body). With `RAY_SERVE_ENABLE_DIRECT_INGRESS=1` the ingress replica runs its own uvicorn server and
clients talk to it directly; the proxy still starts on the head node but carries no traffic.

How Ray 2.60 does it, and why the settings below:

* The flag is read when Ray Serve's modules are imported, by the controller and every replica, so it
  must be in the environment *before Ray starts* (workers inherit the raylet's environment);
  setting it afterwards does nothing. `apply_env` refuses to run once Ray is up.
* Each ingress replica binds a port from `RAY_SERVE_DIRECT_INGRESS_{MIN,MAX}_HTTP_PORT` (default
  30000-31000) on `http_options.host`, so `host=127.0.0.1` keeps it on loopback. We give the range
  exactly one port, the one the user asked for, so the API keeps a fixed address; the price is one
  ingress replica per node (`build_app` pins it, there is no proxy to balance between two).
* A released port is quarantined for 150 s by default (for HAProxy, which vidray does not run), and a
  stopping ingress holds its port for a 30 s drain (for external load balancers to deregister it).
  With a single port either would keep a restarted or replaced ingress from binding for minutes, so
  both are shortened for this local, proxy-less setup.

Limits: experimental in Ray; single-node/local deployments (the cluster configs keep the proxy);
one ingress replica; the replicas' inter-deployment gRPC servers still bind `[::]` (as in the
default mode; hard-coded in Ray 2.60).
"""

from __future__ import annotations

import os

ENV_FLAG = "RAY_SERVE_ENABLE_DIRECT_INGRESS"
_DRAIN_S = 2.0


def direct_ingress_env(port: int) -> dict[str, str]:
    """The environment that makes the ingress replica listen on `port` itself (no proxy hop).

    Args:
        port: the API's HTTP port; the Serve proxy must be given a different one.
    """
    if not 1 <= port <= 65534:
        raise ValueError(f"direct ingress port {port} is out of range; pick a TCP port in 1-65534")
    return {
        ENV_FLAG: "1",
        "RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT": str(port),
        "RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT": str(port + 1),  # exclusive: exactly `port`
        "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S": str(_DRAIN_S),
        "RAY_SERVE_PORT_QUARANTINE_S": "0",
    }


def apply_env(port: int) -> None:
    """Put `direct_ingress_env(port)` into this process's environment, before Ray starts.

    Raises:
        RuntimeError: Ray is already running in this process (its controller and replicas would
            never see the flag).
    """
    import sys

    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        raise RuntimeError(
            "direct ingress must be enabled before Ray starts (the controller and replicas read "
            f"{ENV_FLAG} at import); call serve.direct_ingress.apply_env() before init_ray(), or "
            f"export {ENV_FLAG}=1 before `ray start`"
        )
    os.environ.update(direct_ingress_env(port))


def enabled() -> bool:
    """Whether this process (and so the Ray it starts or was started by) runs in direct-ingress mode."""
    return os.environ.get(ENV_FLAG, "0") == "1"
