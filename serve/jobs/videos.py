"""Video records: who owns a video, who it is shared with, and where its ingested file lives.

Why our own id (`vid_...`) instead of the ingest cache's: an upload answers with an id at once,
before the (possibly slow) download has produced a content hash, and two users who upload the same
bytes still own separate records (the file itself is shared through the content-hash cache).
"""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa

from cluster.errors import NotFoundError
from serve.db import shares, videos
from serve.jobs.store import new_id


class VideoStore:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def create(self, *, owner: str, source: str) -> dict[str, Any]:
        row = {
            "id": new_id("vid"),
            "owner": owner,
            "status": "pending",
            "source": source,
            "created_at": time.time(),
        }
        with self.engine.begin() as c:
            c.execute(sa.insert(videos).values(**row))
        return row

    def get(self, video_id: str) -> dict[str, Any]:
        with self.engine.connect().execution_options(readonly=True) as c:
            row = c.execute(sa.select(videos).where(videos.c.id == video_id)).mappings().first()
            if row is None:
                raise NotFoundError(f"video {video_id} does not exist; list yours with GET /videos")
            users = c.execute(sa.select(shares.c.user).where(shares.c.video_id == video_id)).scalars().all()
        return {**dict(row), "shared_with": sorted(users)}

    def list_for(self, user: str, *, everyone: bool = False, limit: int = 200) -> list[dict[str, Any]]:
        q = sa.select(videos).order_by(videos.c.created_at.desc()).limit(limit)
        if not everyone:
            shared = sa.select(shares.c.video_id).where(shares.c.user == user)
            q = q.where(sa.or_(videos.c.owner == user, videos.c.id.in_(shared)))
        with self.engine.connect().execution_options(readonly=True) as c:
            return [dict(r) for r in c.execute(q).mappings().all()]

    def set_ready(self, video_id: str, *, path: str, sha256: str, meta: dict[str, Any]) -> None:
        with self.engine.begin() as c:
            c.execute(
                sa.update(videos)
                .where(videos.c.id == video_id)
                .values(status="ready", path=path, sha256=sha256, meta=meta, error=None)
            )

    def set_failed(self, video_id: str, error: str) -> None:
        with self.engine.begin() as c:
            c.execute(
                sa.update(videos)
                .where(videos.c.id == video_id, videos.c.status != "ready")
                .values(status="failed", error=error)
            )

    def delete(self, video_id: str) -> None:
        with self.engine.begin() as c:
            c.execute(sa.delete(shares).where(shares.c.video_id == video_id))
            c.execute(sa.delete(videos).where(videos.c.id == video_id))

    def share(self, video_id: str, user: str) -> None:
        with self.engine.begin() as c:
            exists = c.execute(
                sa.select(shares.c.user).where(shares.c.video_id == video_id, shares.c.user == user)
            ).first()
            if not exists:
                c.execute(sa.insert(shares).values(video_id=video_id, user=user))

    def unshare(self, video_id: str, user: str) -> None:
        with self.engine.begin() as c:
            c.execute(sa.delete(shares).where(shares.c.video_id == video_id, shares.c.user == user))
