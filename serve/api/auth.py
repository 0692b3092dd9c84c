"""Who is calling and what they may do: API keys with roles, and video ownership/sharing.

Send the key as `Authorization: Bearer <key>` (what the OpenAI client does with its api_key) or
`X-API-Key: <key>`. 401 means no or an unknown key; 403 means a known key whose role or ownership
does not allow the call; both say which.
"""

# ruff: noqa: B008  (FastAPI's Depends/Query/Header defaults are evaluated once, by design)

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import Depends, Request

from cluster.errors import VidrayError
from serve.api.context import AppContext, current
from serve.api.keys import RANK


class AuthError(VidrayError):
    http_status = 401


class ForbiddenError(VidrayError):
    http_status = 403


@dataclass(frozen=True)
class Principal:
    user: str
    role: str
    key_id: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


# The dependencies are `async def` on purpose: FastAPI runs a plain `def` dependency in a worker thread,
# and under a burst of 150 requests those hops (each scanning every asyncio task to find the root
# task) cost more CPU than the handler itself. None of them blocks: a key is looked up in the
# database (in a thread) only when it is not in the KeyStore's 5-second cache.
async def get_ctx() -> AppContext:
    return current()


def _key_from(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip() or None
    return request.headers.get("x-api-key") or None


async def principal(request: Request, ctx: AppContext = Depends(get_ctx)) -> Principal:
    key = _key_from(request)
    if not key:
        raise AuthError("missing API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'")
    hit, found = ctx.keys.cached(key)
    if not hit:
        found = await asyncio.to_thread(ctx.keys.lookup, key)
    if found is None:
        raise AuthError("unknown or revoked API key; ask an admin for a key (POST /admin/keys)")
    return Principal(user=found["user"], role=found["role"], key_id=found["id"])


def role(minimum: str) -> Callable[..., Awaitable[Principal]]:
    """Dependency: a caller whose role is at least `minimum` (viewer < analyst < trainer < admin)."""

    async def check(who: Principal = Depends(principal)) -> Principal:
        if RANK[who.role] < RANK[minimum]:
            raise ForbiddenError(f"this call needs the {minimum!r} role or higher; your key has {who.role!r}")
        return who

    check.__name__ = f"role_{minimum}"
    return check


def can_see_video(who: Principal, video: dict[str, Any]) -> bool:
    return who.is_admin or video["owner"] == who.user or who.user in video.get("shared_with", [])


def check_video_read(who: Principal, video: dict[str, Any]) -> None:
    if not can_see_video(who, video):
        raise ForbiddenError(f"video {video['id']} belongs to another user and is not shared with you")


def check_video_owner(who: Principal, video: dict[str, Any]) -> None:
    if not (who.is_admin or video["owner"] == who.user):
        if can_see_video(who, video):
            raise ForbiddenError(f"video {video['id']} is shared with you, but only its owner can change it")
        raise ForbiddenError(f"video {video['id']} belongs to another user")


def check_job(who: Principal, job: dict[str, Any]) -> None:
    if not (who.is_admin or job["owner"] == who.user):
        raise ForbiddenError(f"job {job['id']} was submitted by another user")
