"""Readings: the estate's latest, one device's series at a chosen resolution, and the
time-based extract (paged, CSV or JSON, streamed).

Which devices a caller may read is decided in SQL: housing officers the sensors of homes in
their patches, waste crews bins, engineers and admins every device.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Hashable, Iterator
from datetime import datetime, timedelta
from functools import partial
from typing import Annotated, Any, Literal

from fastapi import APIRouter, BackgroundTasks, Query, Request
from fastapi.responses import Response, StreamingResponse
from psycopg_pool import ConnectionPool
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from api.cache import BriefCache
from api.deps import Caller, Conn, Db, audit
from api.problems import PROBLEM_RESPONSES, Problem, query_time
from api.security import Principal
from api.series import series_query
from firmware_contracts import METRICS, SENML_CONTENT_TYPE
from store.extract import extract_chunks

router = APIRouter(prefix="/api/v1", tags=["readings"], responses=PROBLEM_RESPONSES)

BUCKETS: dict[str, timedelta | None] = {
    "raw": None,
    "15m": timedelta(minutes=15),
    "1h": timedelta(hours=1),
    "1d": timedelta(days=1),
}
MAX_SERIES_POINTS = 50_000
MAX_EXTRACT_PAGE = 100_000
_METRIC_COLUMNS = ", ".join(f"r.{m}" for m in METRICS)


class Reading(BaseModel):
    device_id: str
    ts: datetime
    fill_pct: float | None = None
    temp_c: float | None = None
    battery_v: float | None = None
    rh_pct: float | None = None
    co2_ppm: float | None = None
    tilt_deg: float | None = None
    rssi_dbm: float | None = None


class SeriesPoint(BaseModel):
    ts: datetime
    """Start of the bucket (or the reading's time for ``raw``)."""
    count: int
    fill_pct: float | None = None
    temp_c: float | None = None
    battery_v: float | None = None
    rh_pct: float | None = None
    co2_ppm: float | None = None
    tilt_deg: float | None = None
    rssi_dbm: float | None = None


def device_kinds(principal: Principal) -> list[str]:
    return ["env" if kind == "home" else "bin" for kind in principal.subject_kinds]


def visible(principal: Principal) -> dict[str, Any]:
    """Query parameters for the ``_VISIBLE`` condition on ``devices d``."""
    return {"kinds": device_kinds(principal), "patches": principal.patch_filter}


_VISIBLE = "d.kind = ANY(%(kinds)s) AND (%(patches)s::text[] IS NULL OR d.patch = ANY(%(patches)s))"
VISIBLE = _VISIBLE
"""The devices (``devices d``) a caller may read, for other queries over them."""


def _json_response(conn: Db, sql: str, params: dict[str, Any], order: str) -> Response:
    """Rows of ``sql`` as a JSON array built by PostgreSQL: for the large lists screens poll,
    so the API process does not build and serialise thousands of objects per request."""
    row = conn.execute(
        f"SELECT coalesce(json_agg(t ORDER BY t.{order}), '[]'::json)::text AS body FROM ({sql}) t",
        params,
    ).fetchone()
    return Response(row["body"] if row else "[]", media_type="application/json")


@router.get("/readings/latest", response_model=list[Reading])
async def latest(
    request: Request,
    conn: Db,
    principal: Annotated[Principal, Caller("readings:read")],
    background: BackgroundTasks,
    kind: Literal["bin", "env"] | None = None,
) -> Response:
    """The latest reading of every device the caller may see (about
    ``CIVIC_API_LATEST_CACHE_S`` old at most: callers with the same scope share one query a
    moment, and an older body is served while it is remade)."""
    params = {**visible(principal), "kind": kind}
    patches = params["patches"]
    scope = (tuple(params["kinds"]), None if patches is None else tuple(sorted(patches)), kind)
    cache: BriefCache[bytes] = request.app.state.latest_cache
    kept = cache.fresh(scope)
    if kept is None:
        kept = cache.stale(scope)
        if kept is None:  # the first of this scope: the query runs in a worker thread
            kept = await run_in_threadpool(cache.get, scope, partial(_latest_body, conn, params))
        elif cache.claim(scope):  # remade after this response, on a connection of its own
            background.add_task(_remake_latest, cache, scope, request.app.state.pool, params)
    return Response(kept, media_type="application/json")


def _latest_body(conn: Conn, params: dict[str, Any]) -> bytes:
    # Each row's JSON is kept with it (store migration 011): the body is one string join,
    # encoded once here rather than by every response served from the cache.
    row = conn.execute(
        f"""SELECT '[' || coalesce(string_agg(l.doc, ',' ORDER BY l.device_id), '') || ']'
               AS body
            FROM latest_readings l JOIN devices d USING (device_id)
            WHERE {_VISIBLE} AND (%(kind)s::text IS NULL OR d.kind = %(kind)s)""",
        params,
    ).fetchone()
    return str(row["body"] if row else "[]").encode()


def _remake_latest(
    cache: BriefCache[bytes], scope: Hashable, pool: ConnectionPool[Conn], params: dict[str, Any]
) -> None:
    made_at = time.monotonic()
    try:
        with pool.connection() as conn:
            cache.put(scope, _latest_body(conn, params), made_at=made_at)
    finally:
        cache.release(scope)


def _require_visible(conn: Db, principal: Principal, device_id: str) -> None:
    row = conn.execute(
        f"SELECT 1 FROM devices d WHERE d.device_id = %(device)s AND {_VISIBLE}",
        {**visible(principal), "device": device_id},
    ).fetchone()
    if row is None:
        raise Problem(404, f"no device {device_id!r} you may read")


@router.get("/devices/{device_id}/readings", response_model=list[SeriesPoint])
def series(
    conn: Db,
    principal: Annotated[Principal, Caller("readings:read")],
    device_id: str,
    since: Annotated[str, Query(description="RFC 3339, a date, or an age such as 30d")] = "7d",
    until: str | None = None,
    bucket: Annotated[Literal["raw", "15m", "1h", "1d"], Query(description="resolution")] = "1h",
) -> Response:
    """One device's readings in ``[since, until)``: raw, or averaged per 15 minutes, hour or
    day in the database (``date_bin``; hours and days from the hourly rollup)."""
    start, end = query_time(since, "since"), query_time(until, "until")
    if start is None:
        raise Problem(400, "since: give a time, a date or an age")
    if end is not None and end <= start:
        raise Problem(400, "until must be after since")
    _require_visible(conn, principal, device_id)
    sql, params = series_query(device_id, BUCKETS[bucket], start, end, MAX_SERIES_POINTS)
    return _json_response(conn, sql, params, order="ts")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        ts, device_id = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        return datetime.fromisoformat(ts), str(device_id)
    except (ValueError, TypeError, binascii.Error) as exc:
        raise Problem(400, "cursor is not one this API gave out") from exc


def _encode_cursor(ts: datetime, device_id: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([ts.isoformat(), device_id]).encode()).decode()


@router.get(
    "/readings",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}, "application/json": {}, SENML_CONTENT_TYPE: {}}}},
)
def extract(
    request: Request,
    conn: Db,
    principal: Annotated[Principal, Caller("readings:read")],
    since: Annotated[
        str | None, Query(description="readings taken at or after (RFC 3339, date, age)")
    ] = None,
    until: Annotated[str | None, Query(description="readings taken before")] = None,
    changed_since: Annotated[
        str | None,
        Query(description="instead of since: readings stored at or after (picks up late data)"),
    ] = None,
    device_id: str | None = None,
    format: Literal["json", "csv", "senml"] = "json",
    limit: Annotated[int, Query(ge=1, le=MAX_EXTRACT_PAGE)] = 10_000,
    cursor: Annotated[str | None, Query(description="from the X-Next-Cursor header")] = None,
) -> StreamingResponse:
    """The time-based extract, oldest first, ``limit`` rows a page; when more remain the
    ``X-Next-Cursor`` header (and a ``Link: rel=next``) gives the next page. Columns as
    ``civic export readings``; ``uprn`` only for callers who may see homes (logged).
    ``format=senml``: an RFC 8428 SenML JSON pack, a base name per device (no UPRN)."""
    if (since is None) == (changed_since is None):
        raise Problem(400, "give exactly one of since or changed_since")
    column = "r.ts" if since is not None else "r.received_at"
    start = query_time(since if since is not None else changed_since, "since")
    end = query_time(until, "until")
    after = _decode_cursor(cursor) if cursor else None
    sql = (
        f"SELECT r.device_id, r.ts, {_METRIC_COLUMNS}, r.seq,"
        f" CASE WHEN %(uprns)s THEN d.uprn END AS uprn, r.received_at, {column} AS k"
        f" FROM readings r JOIN devices d USING (device_id)"
        f" WHERE {_VISIBLE} AND {column} >= %(start)s"
        f" AND (%(end)s::timestamptz IS NULL OR {column} < %(end)s)"
        f" AND (%(device)s::text IS NULL OR r.device_id = %(device)s)"
        f" AND (%(after_k)s::timestamptz IS NULL"
        f"      OR ({column}, r.device_id) > (%(after_k)s, %(after_d)s))"
        f" ORDER BY {column}, r.device_id LIMIT %(limit)s"
    )
    params = {
        **visible(principal),
        "start": start,
        "end": end,
        "device": device_id,
        "after_k": after[0] if after else None,
        "after_d": after[1] if after else None,
        "limit": limit + 1,
        "uprns": principal.sees_addresses and format != "senml",
    }
    rows = conn.execute(sql, params).fetchall()
    headers: dict[str, str] = {}
    if len(rows) > limit:
        rows = rows[:limit]
        token = _encode_cursor(rows[-1]["k"], rows[-1]["device_id"])
        headers["X-Next-Cursor"] = token
        headers["Link"] = f'<{request.url.include_query_params(cursor=token)}>; rel="next"'

    uprns = sorted({r["uprn"] for r in rows if r["uprn"]})
    if uprns:
        audit(conn, request, principal, "read_personal", uprns)

    def page() -> Iterator[dict[str, Any]]:
        for row in rows:
            row.pop("k")
            yield row

    media = {"csv": "text/csv", "json": "application/json", "senml": SENML_CONTENT_TYPE}[format]
    return StreamingResponse(extract_chunks(page(), format), media_type=media, headers=headers)
