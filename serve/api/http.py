"""The FastAPI application: routers, one error shape for every failure, request ids and metrics.

Errors always look like OpenAI's, so the `openai` client and plain HTTP callers parse them alike:
    {"error": {"type": "...", "message": "what was wrong and how to fix it"}}
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cluster import metric_names as mn
from cluster.errors import VidrayError
from cluster.log import log_context
from serve.jobs.store import QueueFullError

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    422: "invalid_request_error",
    429: "rate_limit_error",
    503: "service_unavailable",
}


def _unwrap(exc: BaseException) -> BaseException:
    """The user's exception inside a Ray task error (its str() would carry a remote traceback)."""
    cause = getattr(exc, "cause", None)
    return cause if isinstance(cause, BaseException) else exc


def error_doc(status: int, message: str, **extra: Any) -> dict[str, Any]:
    return {
        "error": {"type": _TYPES.get(status, "server_error"), "message": message, "code": status, **extra}
    }


class RequestIds:
    """Every request gets an id (the caller's X-Request-Id, else a new one) in its log lines and its
    response headers, and is counted and timed in the HTTP metrics.

    Why a plain ASGI middleware and not `@app.middleware("http")`: Starlette's BaseHTTPMiddleware runs
    the rest of the app in a second task and pipes the response through memory streams, a per-request
    cost that shows under a burst of submits; this one only watches the messages go by. Latency is
    measured to the response headers, so a long SSE stream counts as the time it took to start.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((v for k, v in scope["headers"] if k == b"x-request-id"), b"")
        rid = given.decode("latin-1") or uuid.uuid4().hex[:16]
        started = time.perf_counter()
        answered = False

        def observe(status: int) -> None:
            path = getattr(scope.get("route"), "path", "unmatched")
            mn.get(mn.HTTP_REQUESTS).labels(scope["method"], path, str(status)).inc()
            mn.get(mn.HTTP_SECONDS).labels(scope["method"], path).observe(time.perf_counter() - started)

        async def send_with_id(message: Message) -> None:
            nonlocal answered
            if message["type"] == "http.response.start" and not answered:
                answered = True
                observe(int(message["status"]))
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"x-request-id"]
                message = {**message, "headers": [*headers, (b"x-request-id", rid.encode("latin-1"))]}
            await send(message)

        try:
            with log_context(request_id=rid):
                await self.app(scope, receive, send_with_id)
        except BaseException:
            if not answered:  # the outer error handler answers 500; count it as that
                observe(500)
            raise


def create_api() -> FastAPI:
    from serve.api import routes_openai, routes_ops, routes_videos

    api = FastAPI(
        title="vidray",
        version="0.1.0",
        description="Videos from URLs into metadata, transcripts, answers, summaries, code and training data. "
        "Authenticate with `Authorization: Bearer <API key>`. Jobs answer 202 at once; follow them with "
        "GET /jobs/{id} or the SSE stream GET /jobs/{id}/events.",
    )
    api.include_router(routes_videos.router)
    api.include_router(routes_openai.router)
    api.include_router(routes_ops.router)

    @api.exception_handler(VidrayError)
    async def vidray_error(_request: Request, exc: VidrayError) -> JSONResponse:
        inner = _unwrap(exc)
        status = int(getattr(inner, "http_status", 500))
        message = str(inner.args[0]) if inner.args else str(inner)
        headers = {}
        if isinstance(inner, QueueFullError):
            headers["Retry-After"] = str(inner.retry_after)
            mn.get(mn.QUEUE_FULL).inc()
        return JSONResponse(status_code=status, content=error_doc(status, message), headers=headers)

    @api.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errs = exc.errors()
        first: dict[str, Any] = dict(errs[0]) if errs else {"loc": ("body",), "msg": "invalid request"}
        where = ".".join(str(x) for x in first.get("loc", ()) if x != "body") or "body"
        msg = first.get("msg", "invalid request")
        if first.get("type") == "json_invalid":
            msg = f"the body is not valid JSON ({first.get('ctx', {}).get('error', 'parse error')})"
        elif first.get("type") == "extra_forbidden":
            msg = f"unknown field {where!r}; check the spelling against /docs"
        else:
            msg = f"{where}: {msg}"
        details = [{"loc": list(e.get("loc", ())), "msg": e.get("msg"), "type": e.get("type")} for e in errs]
        return JSONResponse(status_code=422, content=error_doc(422, msg, details=details))

    @api.exception_handler(Exception)
    async def crashed(_request: Request, exc: Exception) -> JSONResponse:
        inner = _unwrap(exc)
        if isinstance(inner, VidrayError):
            return await vidray_error(_request, inner)
        import logging

        logging.getLogger("serve.api").exception("unhandled error", exc_info=exc)
        return JSONResponse(
            status_code=500,
            content=error_doc(
                500, f"internal error ({type(inner).__name__}); see the server log for the request id"
            ),
        )

    api.add_middleware(RequestIds)
    return api


# module-level app: Ray Serve's @ingress needs the object at import time; the ingress replica installs
# its context with serve.api.context.set_current.
api = create_api()
