"""FastAPI application over the store.

Every list endpoint answers JSON; ``/v1/readings`` also streams CSV, the council's time-based
extract. Bad parameters are 400/404/422 with a message, never a 500.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import StreamingResponse

from store.db import StoreError, connect, info
from store.deadletters import iter_deadletters
from store.extract import extract_chunks, jsonable
from store.readings import iter_readings

MAX_PAGE = 10_000


def _when(text: str | None, name: str) -> datetime | None:
    from common.timeparse import parse_when

    if text is None:
        return None
    try:
        return parse_when(text)
    except ValueError as exc:
        raise HTTPException(400, f"{name}: {exc}") from exc


def _db(request: Request) -> Iterator[Any]:
    """One connection per request, from the URL the app was built with."""
    try:
        conn = connect(request.app.state.database_url)
    except StoreError as exc:
        raise HTTPException(503, "database unavailable") from exc
    with conn:
        yield conn


Db = Annotated[Any, Depends(_db)]


def create_app(database_url: str) -> FastAPI:
    app = FastAPI(
        title="Civic Sensors API",
        version="1",
        description="Bins and homes: registry, readings, time-based extracts and dead letters.",
    )

    app.state.database_url = database_url

    @app.get("/health")
    def health() -> dict[str, object]:
        try:
            summary = info(database_url)
        except StoreError as exc:
            raise HTTPException(503, "database unavailable") from exc
        return {"status": "ok", "storage_mode": summary.get("mode")}

    @app.get("/v1/devices")
    def devices(
        conn: Db,
        kind: Literal["bin", "env"] | None = None,
        patch: str | None = None,
    ) -> list[dict[str, Any]]:
        rows = conn.execute(
            "SELECT d.*, s.state AS status, s.updated_at AS status_at FROM devices d"
            " LEFT JOIN device_status s USING (device_id)"
            " WHERE (%(kind)s::text IS NULL OR kind = %(kind)s)"
            " AND (%(patch)s::text IS NULL OR patch = %(patch)s) ORDER BY device_id",
            {"kind": kind, "patch": patch},
        ).fetchall()
        return [{k: jsonable(v) for k, v in r.items()} for r in rows]

    @app.get("/v1/devices/{device_id}")
    def device(conn: Db, device_id: str) -> dict[str, Any]:
        row = conn.execute(
            "SELECT d.*, s.state AS status, s.fw, s.updated_at AS status_at FROM devices d"
            " LEFT JOIN device_status s USING (device_id) WHERE device_id = %s",
            (device_id,),
        ).fetchone()
        if row is None:
            raise HTTPException(404, f"no device {device_id!r}")
        latest = conn.execute(
            "SELECT * FROM readings WHERE device_id = %s ORDER BY ts DESC LIMIT 1", (device_id,)
        ).fetchone()
        return {
            **{k: jsonable(v) for k, v in row.items()},
            "latest_reading": {k: jsonable(v) for k, v in latest.items()} if latest else None,
        }

    @app.get("/v1/readings", response_model=None)
    def readings(
        since: Annotated[str, Query(description="RFC 3339, a date, or an age such as 24h")],
        until: str | None = None,
        device_id: str | None = None,
        by: Literal["ts", "received"] = "ts",
        format: Literal["json", "csv"] = "json",
    ) -> StreamingResponse:
        start, end = _when(since, "since"), _when(until, "until")
        assert start is not None
        if end is not None and end <= start:
            raise HTTPException(400, "until must be after since")

        def rows() -> Iterator[dict[str, Any]]:
            with connect(database_url) as conn:
                yield from iter_readings(conn, since=start, until=end, device_id=device_id, by=by)

        media_type = "text/csv" if format == "csv" else "application/json"
        return StreamingResponse(extract_chunks(rows(), format), media_type=media_type)

    @app.get("/v1/readings/hourly")
    def hourly(
        conn: Db,
        device_id: str,
        since: str = "7d",
    ) -> list[dict[str, Any]]:
        rows = conn.execute(
            "SELECT * FROM readings_hourly WHERE device_id = %s AND bucket >= %s ORDER BY bucket",
            (device_id, _when(since, "since")),
        ).fetchall()
        return [{k: jsonable(v) for k, v in r.items()} for r in rows]

    @app.get("/v1/deadletters")
    def deadletters(
        conn: Db,
        since: str | None = None,
        reason: str | None = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1000,
    ) -> list[dict[str, Any]]:
        return [
            {k: jsonable(v) for k, v in r.items()}
            for r in iter_deadletters(conn, since=_when(since, "since"), reason=reason, limit=limit)
        ]

    return app
