"""Requests per minute per caller, counted in PostgreSQL so the limit holds however many API
processes serve the caller (``civic api --workers N``).

Why in the database rather than each process's memory: a caller's keep-alive connection stays
with one worker, so dividing the limit between workers would refuse a caller at a fraction of
it, and counting per worker would let them through at N times it. The database's clock decides
the minute, so processes on several hosts agree.

Why in takes (:data:`TAKE_FRACTION`): a round trip per request would cost every request a
database call and a thread. Each process takes a twentieth of a caller's allowance at a time
(``civic_rate_take``, migration 016) and spends it in memory; what it has not spent when the
take expires (:data:`TAKE_S`, or the minute's end) goes back with the next take. So the limit
holds across processes, and a caller may be refused early by at most the unspent part of
another process's take (a twentieth of the limit per other process, for at most a second).
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool
from starlette.concurrency import run_in_threadpool

from api.problems import Problem

__all__ = ["RateLimiter"]

Conn = psycopg.Connection[dict[str, Any]]

TAKE_FRACTION = 20  # a take is this fraction of the limit (at least one request)
TAKE_S = 1.0  # unspent requests of a take go back after this long
SWEEP_EVERY_S = 60.0  # counts older than the last minute are dead weight; drop them this often

_TAKE = "SELECT * FROM civic_rate_take(%s, %s, %s, %s, %s)"


@dataclass(slots=True)
class _Take:
    minute: int
    left: int
    until: float  # time.monotonic()


class RateLimiter:
    """At most ``per_minute`` requests per key over a sliding minute, in every process
    together; over it, a 429 with ``Retry-After``."""

    def __init__(self, per_minute: int, pool: ConnectionPool[Conn]) -> None:
        self.per_minute = per_minute
        self.take_size = max(1, per_minute // TAKE_FRACTION)
        self._pool = pool
        self._takes: dict[str, _Take] = {}
        self._renewing: dict[str, asyncio.Lock] = {}
        self._next_sweep = 0.0

    async def check(self, key: str) -> None:
        """Count one request of ``key``: from this process's take in memory, or, when that is
        spent, from a new take (in a worker thread: it asks the database)."""
        if self._spend(key):
            return
        async with self._renewing.setdefault(key, asyncio.Lock()):
            if self._spend(key):  # another request renewed it meanwhile
                return
            wait = await run_in_threadpool(self._renew, key)
        if wait:
            self._refuse(wait)

    def check_now(self, conn: Conn, key: str) -> None:
        """Count one request of ``key`` straight in the database (for rare requests, such as
        logins, where a take would only be wasted)."""
        row = conn.execute(_TAKE, (key, self.per_minute, 1, 0, None)).fetchone()
        if row is None or row["granted"] == 0:
            self._refuse(_wait(row))

    def _spend(self, key: str) -> bool:
        take = self._takes.get(key)
        if take is None or take.left <= 0 or time.monotonic() >= take.until:
            return False
        take.left -= 1
        return True

    def _renew(self, key: str) -> int:
        """A new take for ``key`` with one request spent from it: 0, or the seconds to wait
        when none is left. Hands back what the expired take did not spend."""
        old = self._takes.pop(key, None)
        back = (max(old.left, 0), old.minute) if old else (0, None)
        with self._pool.connection() as conn:
            row = conn.execute(_TAKE, (key, self.per_minute, self.take_size, *back)).fetchone()
            self._sweep(conn)
        if row is None or row["granted"] == 0:
            return _wait(row)
        until = time.monotonic() + min(TAKE_S, row["seconds_left"])
        self._takes[key] = _Take(row["taken_minute"], row["granted"] - 1, until)
        return 0

    def _refuse(self, wait: int) -> None:
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
        # Takes long expired were counted in minutes now dropped: nothing to hand back.
        for key, take in list(self._takes.items()):
            if now - take.until > SWEEP_EVERY_S:
                self._takes.pop(key, None)


def _wait(row: dict[str, Any] | None) -> int:
    return max(1, math.ceil(row["seconds_left"])) if row else 60
