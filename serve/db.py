"""The one SQL database behind the app: tables and engine (SQLite file by default, PostgreSQL by URL).

Why SQL and not Ray's object store or an in-memory queue: jobs must outlive every replica and the
app itself (restart -> every accepted job still completes), and several replicas must be able to
claim work without two of them running the same job. A row per job plus a status transition inside
a transaction gives both, on SQLite for one machine and PostgreSQL for a cluster, through the same
SQLAlchemy Core statements. Times are float epoch seconds so comparisons are portable.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

metadata = sa.MetaData()

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    # sha256 of the key: keys are 32 random bytes, so a fast hash is as safe as a slow one and keeps
    # per-request auth cheap; the plaintext is shown once, at creation, and never stored.
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("user", sa.String(200), nullable=False),
    sa.Column("role", sa.String(20), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("revoked_at", sa.Float),
)

videos = sa.Table(
    "videos",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("owner", sa.String(200), nullable=False, index=True),
    sa.Column("status", sa.String(20), nullable=False),  # pending | ready | failed
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("path", sa.Text),
    sa.Column("sha256", sa.String(64)),
    sa.Column("meta", sa.JSON),
    sa.Column("error", sa.Text),
    sa.Column("created_at", sa.Float, nullable=False),
)

shares = sa.Table(
    "shares",
    metadata,
    sa.Column("video_id", sa.String(40), sa.ForeignKey("videos.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("user", sa.String(200), primary_key=True),
)

jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("kind", sa.String(20), nullable=False),  # ingest | analyze | train
    sa.Column("owner", sa.String(200), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),  # queued | running | succeeded | failed | cancelled
    sa.Column("video_id", sa.String(40)),
    sa.Column("params", sa.JSON, nullable=False),
    sa.Column("cache_key", sa.String(64)),
    sa.Column("idempotency_key", sa.String(200)),
    sa.Column("progress", sa.Float, nullable=False, default=0.0),
    sa.Column("stage", sa.String(100)),
    sa.Column("result", sa.JSON),
    sa.Column("error", sa.Text),
    sa.Column("error_status", sa.Integer),
    sa.Column("lease_token", sa.String(40)),
    sa.Column("lease_until", sa.Float),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("cancel_requested", sa.Boolean, nullable=False, default=False),
    sa.Column("callback_url", sa.Text),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("started_at", sa.Float),
    sa.Column("finished_at", sa.Float),
    sa.UniqueConstraint("owner", "idempotency_key", name="uq_jobs_owner_idem"),
    sa.Index("ix_jobs_status_created", "status", "created_at"),
)

job_events = sa.Table(
    "job_events",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("job_id", sa.String(40), nullable=False, index=True),
    sa.Column("ts", sa.Float, nullable=False),
    sa.Column("stage", sa.String(100), nullable=False),
    sa.Column("percent", sa.Float, nullable=False),
    sa.Column("data", sa.JSON),
)

results = sa.Table(
    "results",
    metadata,
    sa.Column("cache_key", sa.String(64), primary_key=True),
    sa.Column("result", sa.JSON, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
)

webhooks = sa.Table(
    "webhooks",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("job_id", sa.String(40), nullable=False),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("status", sa.String(20), nullable=False),  # pending | delivered | failed
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("next_at", sa.Float, nullable=False),
    sa.Column("lease_until", sa.Float),
    sa.Column("last_error", sa.Text),
)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # WAL lets readers (GET /jobs, SSE) run beside the one writer; busy_timeout makes concurrent
    # writers from several replica processes wait instead of failing with "database is locked".
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def make_engine(url: str) -> sa.Engine:
    """Engine for `url` with the tables created (idempotent; safe from several processes at once)."""
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        # pysqlite's own transaction handling defers BEGIN until the first write, which lets two
        # processes read the same 'queued' row; BEGIN IMMEDIATE takes the write lock up front.
        # Read-only connections (`readonly=True` execution option) begin deferred so WAL readers never
        # wait for the write lock.
        sa.event.listen(
            engine,
            "begin",
            lambda conn: conn.exec_driver_sql(
                "BEGIN" if conn.get_execution_options().get("readonly") else "BEGIN IMMEDIATE"
            ),
        )

        @sa.event.listens_for(engine, "connect")
        def _no_autobegin(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None
    else:
        # a handful of connections per replica process; pre_ping survives a restarted PostgreSQL
        engine = sa.create_engine(url, pool_size=5, max_overflow=10, pool_pre_ping=True)
    try:
        metadata.create_all(engine, checkfirst=True)
    except sa.exc.IntegrityError:
        pass  # another process created the tables between our check and create (PostgreSQL catalog race)
    except sa.exc.ProgrammingError:
        metadata.create_all(engine, checkfirst=True)
    return engine
