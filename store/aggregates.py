"""Refreshing TimescaleDB's hourly aggregate by hand, as its refresh policy would.

History written in one go (an import, a demo, a test's fixture) lands in hours the policy
(every 15 minutes, migration 011) has not reached yet. Native partitioning keeps its
rollup with triggers, so there is nothing to refresh there.
"""

from __future__ import annotations

import time
from typing import Any

import psycopg
from psycopg.rows import tuple_row

__all__ = ["HOURLY_ROLLUP", "refresh_hourly_rollup"]

HOURLY_ROLLUP = "readings_rollup_hourly"
REFRESH_ATTEMPTS = 20
REFRESH_WAIT_S = 0.5  # a policy's own refresh of a small window takes well under a second


def refresh_hourly_rollup(conn: psycopg.Connection[Any], *, until_sql: str = "NULL") -> None:
    """Refresh the rollup up to ``until_sql`` (an SQL expression; NULL: everything), waiting
    for a refresh the policy is running at the same moment (TimescaleDB refuses a concurrent
    one with ``LockNotAvailable``) rather than failing. ``conn`` must be in autocommit mode."""
    with conn.cursor(row_factory=tuple_row) as cur:
        mode = cur.execute("SELECT mode FROM civic_schema_migrations LIMIT 1").fetchone()
    if mode is None or mode[0] != "timescaledb":
        return
    call = f"CALL refresh_continuous_aggregate('{HOURLY_ROLLUP}', NULL, {until_sql})"
    for attempt in range(REFRESH_ATTEMPTS):
        try:
            conn.execute(call)
            return
        except psycopg.errors.LockNotAvailable:
            if attempt == REFRESH_ATTEMPTS - 1:
                raise
            time.sleep(REFRESH_WAIT_S)
