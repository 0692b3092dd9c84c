"""`vidray serve`: run the HTTP API (Ray Serve app) on 127.0.0.1 until Ctrl-C.

    VIDRAY_ADMIN_KEY=vk_... vidray serve --port 8000      # then: curl -H "Authorization: Bearer $VIDRAY_ADMIN_KEY" ...
    vidray serve --arg max_queue_depth=128 --arg db_url=postgresql+psycopg://...
    vidray serve --port 8000 --direct-ingress             # experimental: no Serve proxy hop per request

The first admin key comes from VIDRAY_ADMIN_KEY (registered, hashed, on start); without it a key is
made and printed once. `--config`/`--set` are vidray's global settings flags (ingest limits, data dir).
`--direct-ingress` (local Ray only) lets the ingress replica answer on --port itself instead of behind
Ray Serve's HTTP proxy: about a third less CPU per request (see serve/direct_ingress.py for limits).
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import time


def _serve(args: argparse.Namespace) -> int:
    from cluster.config import parse_overrides

    app_args = parse_overrides(args.app_args)
    if args.config:
        app_args.setdefault("config", args.config)
    if args.overrides:
        app_args.setdefault("overrides", list(args.overrides))
    from serve.settings import parse_serve_settings

    settings = parse_serve_settings(app_args)  # fail on a bad --arg before Ray starts
    if not os.environ.get(settings.admin_key_env):
        key = "vk_" + secrets.token_urlsafe(32)
        os.environ[settings.admin_key_env] = key
        print(
            f"vidray serve: no ${settings.admin_key_env} set; admin API key for this run: {key}",
            file=sys.stderr,
        )

    proxy_port = args.port
    if args.direct_ingress:
        if os.environ.get("RAY_ADDRESS"):
            print(
                "vidray serve: --direct-ingress starts its own local Ray, but RAY_ADDRESS is set; unset "
                "RAY_ADDRESS, or drop --direct-ingress to join that cluster",
                file=sys.stderr,
            )
            return 2
        from serve import direct_ingress

        direct_ingress.apply_env(args.port)  # before Ray starts: its controller and replicas read it
        proxy_port = _free_port(args.host)  # Ray still starts an (idle) proxy; keep it off --port

    from cluster.ray_runtime import init_ray, shutdown_ray  # before ray: loopback-only local Ray

    # isort: split
    import ray.serve

    init_ray()
    try:
        from serve.app import build_app

        ray.serve.start(http_options={"host": args.host, "port": proxy_port})
        ray.serve.run(build_app(app_args), name="vidray", route_prefix="/", blocking=False)
        print(
            f"vidray serve: http://{args.host}:{args.port}  (OpenAPI: /docs; Ctrl-C stops)", file=sys.stderr
        )
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        return 0
    finally:
        try:
            ray.serve.shutdown()
        finally:
            shutdown_ray()


def _free_port(host: str) -> int:
    import socket

    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="run the HTTP API (Ray Serve) on 127.0.0.1",
        description=(__doc__ or "").split("\n\n")[0],
    )
    p.add_argument("--port", type=int, default=8000, help="HTTP port (default 8000)")
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="bind address (default loopback; anything else exposes the API to the network)",
    )
    p.add_argument(
        "--direct-ingress",
        action="store_true",
        help="experimental: the ingress replica serves --port itself, without Ray Serve's HTTP proxy "
        "(local Ray only; one ingress replica)",
    )
    p.add_argument(
        "--arg",
        dest="app_args",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="Serve app setting (serve.settings.ServeSettings), e.g. --arg max_queue_depth=128",
    )
    p.set_defaults(func=_serve)
