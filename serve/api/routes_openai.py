"""OpenAI-compatible chat: POST /v1/chat/completions (with `video_url`/`image_url` parts, `stream`)
and GET /v1/models, so the official `openai` client works against vidray with base_url=.../v1.

The ingress only validates and checks each URL with the SSRF guard; the analyzer deployment
ingests the videos and asks the model router, and its text deltas come back through a streaming
Serve handle.
"""

# ruff: noqa: B008  (FastAPI's Depends/Query/Header defaults are evaluated once, by design)

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import StreamingResponse

from cluster.errors import InputError, UnavailableError
from serve.api.auth import Principal, get_ctx, role
from serve.api.context import AppContext
from serve.api.schemas import ChatBody

router = APIRouter()


def _check_parts(ctx: AppContext, body: ChatBody) -> None:
    from data_pipeline.net_guard import check_url

    for msg in body.messages:
        if isinstance(msg.content, str):
            continue
        for part in msg.content:
            url = None
            if part.type == "video_url" and part.video_url:
                url = part.video_url.url
            elif part.type == "image_url" and part.image_url and not part.image_url.url.startswith("data:"):
                url = part.image_url.url
            if url is not None:
                check_url(url, ctx.allow_hosts)


@router.get("/v1/models", tags=["openai"], summary="Models this server answers with (OpenAI format)")
async def list_models(who: Principal = Depends(role("viewer")), ctx: AppContext = Depends(get_ctx)) -> Any:
    if ctx.models is None:
        raise UnavailableError("no model deployment in this app")
    names: list[dict[str, Any]] = await ctx.models.list_models.remote()
    return {
        "object": "list",
        "data": [
            {"id": m["id"], "object": "model", "created": 0, "owned_by": m.get("owned_by", "vidray")}
            for m in names
        ],
    }


@router.post(
    "/v1/chat/completions",
    tags=["openai"],
    summary="Chat about videos and images (OpenAI format; video_url/image_url parts; stream=true for SSE)",
)
async def chat_completions(
    body: ChatBody, who: Principal = Depends(role("analyst")), ctx: AppContext = Depends(get_ctx)
) -> Any:
    import asyncio

    await asyncio.to_thread(_check_parts, ctx, body)
    if ctx.analyzer is None:
        raise UnavailableError("no analyzer deployment in this app")
    request = body.model_dump(mode="json", exclude_none=True)
    request["user"] = who.user
    cid = f"chatcmpl-{uuid.uuid4().hex[:24]}"
    created = int(time.time())
    gen = ctx.analyzer.options(stream=True).chat.remote(request)
    if body.stream:
        # pull the first delta before answering so errors before any text become a proper 4xx/5xx
        first = await _first(gen)
        return StreamingResponse(_sse(cid, created, body.model, first, gen), media_type="text/event-stream")
    parts: list[str] = []
    model = body.model
    async for item in gen:
        if item.get("model"):
            model = item["model"]
        parts.append(item.get("delta", ""))
    text = "".join(parts)
    return {
        "id": cid,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {
            "prompt_tokens": 0,
            "completion_tokens": len(text.split()),
            "total_tokens": len(text.split()),
        },
    }


async def _first(gen: Any) -> dict[str, Any] | None:
    try:
        item: dict[str, Any] = await gen.__anext__()
        return item
    except StopAsyncIteration:
        return None


def _chunk(cid: str, created: int, model: str, delta: dict[str, Any], finish: str | None = None) -> str:
    doc = {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return f"data: {json.dumps(doc)}\n\n"


async def _sse(
    cid: str, created: int, model: str, first: dict[str, Any] | None, gen: Any
) -> AsyncIterator[str]:
    yield _chunk(cid, created, model, {"role": "assistant", "content": ""})
    try:
        if first is not None:
            yield _chunk(cid, created, first.get("model") or model, {"content": first.get("delta", "")})
            async for item in gen:
                yield _chunk(cid, created, item.get("model") or model, {"content": item.get("delta", "")})
    except Exception as e:  # the stream is committed: report the error in-band, as OpenAI does
        yield f"data: {json.dumps({'error': {'message': str(e), 'type': 'server_error'}})}\n\n"
    yield _chunk(cid, created, model, {}, "stop")
    yield "data: [DONE]\n\n"


__all__ = ["InputError", "router"]
