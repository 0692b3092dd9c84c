"""Cost ledger: what each model call cost (tokens x configured price), and today's total for budgets.

Why SQLite under data_dir: the per-day budget must hold across processes (CLI runs, Ray Serve
replicas on one node) and restarts; SQLite gives that with no server. With no data_dir the ledger
lives in memory (tests, one-off runs). Days are UTC.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

from cluster.config import ModelsSettings, PriceSettings
from models.base import Usage

_SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
    ts REAL NOT NULL, day TEXT NOT NULL, task TEXT, backend TEXT, model TEXT, variant TEXT,
    input_tokens INTEGER, output_tokens INTEGER, cost_usd REAL, request_id TEXT
);
CREATE INDEX IF NOT EXISTS calls_day ON calls(day);
"""


def price_for(models: ModelsSettings, backend: str, model: str) -> PriceSettings | None:
    """Price by backend name first (lets two variants of one model differ), then by model id."""
    return models.prices.get(backend) or models.prices.get(model)


def cost_of(usage: Usage, price: PriceSettings | None) -> float:
    if price is None:
        return 0.0
    return (usage.input_tokens * price.input_per_mtok + usage.output_tokens * price.output_per_mtok) / 1e6


def _utc_day(ts: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(ts))


class Ledger:
    """Append-only record of calls; `spent(day)` sums them."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path) if path else ":memory:", check_same_thread=False, timeout=30)
        self._db.executescript(_SCHEMA)

    def record(
        self,
        *,
        task: str,
        backend: str,
        model: str,
        usage: Usage,
        cost_usd: float,
        variant: str = "",
        request_id: str = "",
    ) -> None:
        now = time.time()
        with self._lock, self._db:
            self._db.execute(
                "INSERT INTO calls VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    now,
                    _utc_day(now),
                    task,
                    backend,
                    model,
                    variant,
                    usage.input_tokens,
                    usage.output_tokens,
                    cost_usd,
                    request_id,
                ),
            )

    def spent(self, day: str | None = None) -> float:
        """USD spent on `day` (UTC, default today)."""
        day = day or _utc_day(time.time())
        with self._lock:
            row = self._db.execute(
                "SELECT COALESCE(SUM(cost_usd), 0) FROM calls WHERE day = ?", (day,)
            ).fetchone()
        return float(row[0])

    def by_backend(self, day: str | None = None) -> dict[str, tuple[int, float]]:
        """Calls and USD per backend on `day`."""
        day = day or _utc_day(time.time())
        with self._lock:
            rows = self._db.execute(
                "SELECT backend, COUNT(*), COALESCE(SUM(cost_usd), 0) FROM calls WHERE day = ? GROUP BY backend",
                (day,),
            ).fetchall()
        return {str(b): (int(n), float(c)) for b, n, c in rows}

    def close(self) -> None:
        self._db.close()
