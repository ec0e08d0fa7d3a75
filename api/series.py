"""The SQL for one device's series at a chosen resolution.

Hourly and daily buckets come from ``readings_rollup_hourly`` (hourly sums and counts per
device, migration 011: kept by triggers on native partitioning, a continuous aggregate on
TimescaleDB) for the whole hours of the window, and from raw readings for the part hours at
its edges, so the figures are the same as averaging the raw readings, without reading a
month of them. Raw and 15-minute series read the readings themselves.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from firmware_contracts import METRICS

__all__ = ["ORIGIN", "rfc3339_sql", "series_query"]

ORIGIN = datetime(2000, 1, 3, tzinfo=UTC)
"""Where ``date_bin`` buckets start (a Monday midnight UTC): hours and days on the clock."""
HOUR = timedelta(hours=1)


def rfc3339_sql(column: str) -> str:
    """A timestamp column as the API writes times everywhere: RFC 3339 in UTC with a 'Z'."""
    return f"""to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')"""


def hour_floor(t: datetime) -> datetime:
    return ORIGIN + (t - ORIGIN) // HOUR * HOUR


def hour_ceil(t: datetime) -> datetime:
    floor = hour_floor(t)
    return floor if floor == t else floor + HOUR


def series_query(
    device_id: str,
    width: timedelta | None,
    since: datetime,
    until: datetime | None,
    limit: int,
) -> tuple[str, dict[str, Any]]:
    """SQL and parameters for rows ``(ts, count, <metric>...)`` in time order."""
    params: dict[str, Any] = {"device": device_id, "since": since, "until": until}
    params.update(limit=limit, width=width, origin=ORIGIN)
    if width is None:
        sql = (
            f"SELECT {rfc3339_sql('ts')} AS ts, 1 AS count, {', '.join(METRICS)} FROM readings"
            f" WHERE {_raw_window(until)} ORDER BY readings.ts LIMIT %(limit)s"
        )
        return sql, params
    params.update(lo=hour_ceil(since), hi=hour_floor(until) if until is not None else None)
    if width % HOUR or (until is not None and params["lo"] >= params["hi"]):
        parts = _raw_parts(_raw_window(until))
    else:
        parts = " UNION ALL ".join(_rollup_parts(until is not None))
    averages = ", ".join(
        f"round((sum({m}_sum) / nullif(sum({m}_n), 0))::numeric, 3)::float8 AS {m}" for m in METRICS
    )
    sql = (
        f"SELECT {rfc3339_sql('b')} AS ts, n AS count, {', '.join(METRICS)} FROM ("
        f" SELECT date_bin(%(width)s, t, %(origin)s) AS b, sum(n) AS n, {averages}"
        f" FROM ({parts}) parts GROUP BY 1 ORDER BY 1 LIMIT %(limit)s) buckets"
    )
    return sql, params


def _raw_window(bounded: datetime | None) -> str:
    return "device_id = %(device)s AND ts >= %(since)s" + (
        " AND ts < %(until)s" if bounded is not None else ""
    )


def _raw_parts(where: str) -> str:
    """Raw readings shaped as rollup rows (one reading, its values as sums of one)."""
    columns = ", ".join(
        f"coalesce({m}, 0) AS {m}_sum, ({m} IS NOT NULL)::int AS {m}_n" for m in METRICS
    )
    return f"SELECT ts AS t, 1 AS n, {columns} FROM readings WHERE {where}"


def _rollup_parts(bounded: bool) -> list[str]:
    """The whole hours ``[lo, hi)`` from the rollup, and the part hours either side raw."""
    sums = ", ".join(f"{m}_sum, {m}_n" for m in METRICS)
    whole = (
        f"SELECT bucket AS t, n, {sums} FROM readings_rollup_hourly"
        " WHERE device_id = %(device)s AND bucket >= %(lo)s"
    )
    head = _raw_parts("device_id = %(device)s AND ts >= %(since)s AND ts < %(lo)s")
    if not bounded:
        return [whole, head]
    tail = _raw_parts("device_id = %(device)s AND ts >= %(hi)s AND ts < %(until)s")
    return [whole + " AND bucket < %(hi)s", head, tail]
