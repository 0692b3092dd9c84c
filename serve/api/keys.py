"""API keys, hashed at rest, with ordered roles: viewer < analyst < trainer < admin.

Why sha256 and not bcrypt: keys are 32 random bytes (not passwords a person chose), so there is no
dictionary to slow down, and every request authenticates: a fast hash keeps auth off the latency
budget. The plaintext is returned once, when the key is made.
"""

from __future__ import annotations

import contextlib
import hashlib
import secrets
import time
from typing import Any

import sqlalchemy as sa

from cluster.errors import NotFoundError
from serve.db import api_keys
from serve.jobs.store import new_id

ROLES = ("viewer", "analyst", "trainer", "admin")
RANK = {r: i for i, r in enumerate(ROLES)}
KEY_PREFIX = "vk_"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


_CACHE_TTL_S = 5.0  # a revoked key stops working on other replicas within this long


class KeyStore:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        # hash -> (expires, record): every request authenticates, and under a burst the DB read is a
        # noticeable share of submit latency; a short TTL bounds how long a revocation takes to apply
        self._cache: dict[str, tuple[float, dict[str, Any] | None]] = {}

    def create(self, *, user: str, role: str, key: str | None = None) -> tuple[str, dict[str, Any]]:
        """Make a key for `user` with `role`; returns (plaintext, record). `key` imports a known key."""
        if role not in RANK:
            raise ValueError(f"role {role!r} is not one of {', '.join(ROLES)}")
        key = key or KEY_PREFIX + secrets.token_urlsafe(32)
        row = {
            "id": new_id("key"),
            "key_hash": hash_key(key),
            "user": user,
            "role": role,
            "created_at": time.time(),
        }
        with self.engine.begin() as c:
            c.execute(sa.insert(api_keys).values(**row))
        return key, _public(row)

    def ensure(self, key: str, *, user: str, role: str) -> None:
        """Register `key` (e.g. the first admin key from the environment) unless it already exists."""
        with self.engine.connect().execution_options(readonly=True) as c:
            found = c.execute(sa.select(api_keys.c.id).where(api_keys.c.key_hash == hash_key(key))).first()
        if not found:
            # IntegrityError: another replica registered it at the same moment
            with contextlib.suppress(sa.exc.IntegrityError):
                self.create(user=user, role=role, key=key)

    def cached(self, key: str) -> tuple[bool, dict[str, Any] | None]:
        """(True, record or None) when `key` was looked up in the last few seconds, else (False, None).

        Why: it never touches the database, so async routes can authenticate on the event loop and
        only a cache miss pays a thread hop for `lookup`.
        """
        hit = self._cache.get(hash_key(key))
        if hit is not None and hit[0] > time.monotonic():
            return True, hit[1]
        return False, None

    def lookup(self, key: str) -> dict[str, Any] | None:
        digest = hash_key(key)
        now = time.monotonic()
        hit = self._cache.get(digest)
        if hit is not None and hit[0] > now:
            return hit[1]
        with self.engine.connect().execution_options(readonly=True) as c:
            query = sa.select(api_keys).where(api_keys.c.key_hash == digest, api_keys.c.revoked_at.is_(None))
            row = c.execute(query).mappings().first()
        found = _public(dict(row)) if row else None
        if len(self._cache) > 10_000:  # unknown keys are cached too; bound what a key scan can fill
            self._cache.clear()
        self._cache[digest] = (now + _CACHE_TTL_S, found)
        return found

    def list(self) -> list[dict[str, Any]]:
        with self.engine.connect().execution_options(readonly=True) as c:
            return [
                _public(dict(r))
                for r in c.execute(sa.select(api_keys).order_by(api_keys.c.created_at)).mappings()
            ]

    def revoke(self, key_id: str) -> None:
        with self.engine.begin() as c:
            res = c.execute(sa.update(api_keys).where(api_keys.c.id == key_id).values(revoked_at=time.time()))
        self._cache.clear()
        if res.rowcount == 0:
            raise NotFoundError(f"API key {key_id} does not exist")


def _public(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k != "key_hash"}
