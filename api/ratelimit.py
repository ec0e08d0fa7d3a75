"""Requests per minute per caller, counted in PostgreSQL so the limit holds however many API
processes serve the caller (``civic api --workers N``).

Why in the database rather than each process's memory: a caller's keep-alive connection stays
with one worker, so dividing the limit between workers would refuse a caller at a fraction of
it, and counting per worker would let them through at N times it. The count is one short
statement per request (``civic_rate_hit``, migration 016: an upsert on an unlogged table), and
the database's clock decides the minute, so processes on several hosts agree.
"""

from __future__ import annotations

import time
from typing import Any

import psycopg

from api.problems import Problem

__all__ = ["RateLimiter"]

Conn = psycopg.Connection[dict[str, Any]]

SWEEP_EVERY_S = 60.0  # counts older than the last minute are dead weight; drop them this often


class RateLimiter:
    """At most ``per_minute`` requests per key over a sliding minute, in every process
    together; over it, a 429 with ``Retry-After``."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._next_sweep = 0.0

    def check(self, conn: Conn, key: str) -> None:
        row = conn.execute(
            "SELECT civic_rate_hit(%s, %s) AS wait", (key, self.per_minute)
        ).fetchone()
        self._sweep(conn)
        wait = int(row["wait"]) if row else 0
        if wait:
            raise Problem(
                429,
                f"more than {self.per_minute} requests a minute: retry in {wait} s",
                {"Retry-After": str(wait)},
            )

    def _sweep(self, conn: Conn) -> None:
        now = time.monotonic()
        if now < self._next_sweep:
            return
        self._next_sweep = now + SWEEP_EVERY_S
        conn.execute(
            "DELETE FROM api_rate_counts"
            " WHERE minute < floor(extract(epoch FROM clock_timestamp()) / 60) - 1"
        )
