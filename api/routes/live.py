"""``GET /api/v1/live``: Server-Sent Events of alert changes and new readings, filtered by the
caller's scope, resumable with ``Last-Event-ID``.

Each event's id is ``<alert audit id>.<microseconds of the newest stored reading sent>``: a
client that reconnects with it gets what it missed (alert changes exactly; readings as each
device's latest since then)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request
from sse_starlette import EventSourceResponse, ServerSentEvent

from alerts.queries import NEXT_DUE_SQL
from api.deps import Caller, Db
from api.problems import PROBLEM_RESPONSES, Problem
from api.routes.readings import _METRIC_COLUMNS, _VISIBLE, visible
from api.security import Principal

router = APIRouter(prefix="/api/v1", tags=["live"], responses=PROBLEM_RESPONSES)

POLL_S = 2.0  # how often the stream looks for news: a screen sees a change within 2 s
BATCH = 500

_ALERT_EVENTS = f"""
SELECT e.id, e.alert_id, e.at, e.action, e.actor, a.alert_type, a.state, a.severity,
       a.subject_kind, a.subject_id, a.patch, {NEXT_DUE_SQL} AS next_due_at
FROM alert_events e JOIN alerts a ON a.id = e.alert_id
WHERE e.id > %(after)s
  AND (%(patches)s::text[] IS NULL OR a.patch = ANY(%(patches)s))
  AND a.subject_kind = ANY(%(subject_kinds)s)
ORDER BY e.id LIMIT {BATCH}
"""

_NEW_READINGS = f"""
SELECT DISTINCT ON (r.device_id) r.device_id, r.ts, {_METRIC_COLUMNS}, r.received_at
FROM readings r JOIN devices d USING (device_id)
WHERE r.received_at > %(after)s AND {_VISIBLE}
ORDER BY r.device_id, r.ts DESC
"""


def _start(conn: Any) -> tuple[int, datetime]:
    row = conn.execute(
        "SELECT (SELECT coalesce(max(id), 0) FROM alert_events) AS a,"
        " (SELECT max(received_at) FROM readings) AS r"
    ).fetchone()
    return int(row["a"]), row["r"] or datetime.now(UTC)


def _parse_last_event_id(text: str) -> tuple[int, datetime]:
    try:
        alert_part, reading_part = text.split(".", 1)
        return int(alert_part), datetime.fromtimestamp(int(reading_part) / 1e6, UTC)
    except ValueError as exc:
        raise Problem(400, "Last-Event-ID is not one this stream sent") from exc


def _event_id(alert_id: int, received: datetime) -> str:
    return f"{alert_id}.{round(received.timestamp() * 1e6)}"


def _poll(
    pool: Any, principal: Principal, after_alert: int, after_reading: datetime
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    with pool.connection() as conn:
        alerts = []
        if principal.allows("alerts:read"):
            alerts = conn.execute(
                _ALERT_EVENTS,
                {
                    "after": after_alert,
                    "patches": principal.patch_filter,
                    "subject_kinds": principal.subject_kinds,
                },
            ).fetchall()
        readings = []
        if principal.allows("readings:read"):
            readings = conn.execute(
                _NEW_READINGS, {**visible(principal), "after": after_reading}
            ).fetchall()
    return alerts, readings


def _json(row: dict[str, Any]) -> str:
    return json.dumps(row, default=lambda v: v.isoformat() if isinstance(v, datetime) else str(v))


@router.get("/live", response_class=EventSourceResponse)
async def live(
    request: Request,
    conn: Db,
    principal: Annotated[Principal, Caller()],
    last_event_id: Annotated[str | None, Header()] = None,
) -> EventSourceResponse:
    """``event: alert`` for each change to an alert the caller may see (opened, escalated,
    acknowledged, resolved...), ``event: reading`` with each visible device's newest reading.
    Needs ``alerts:read`` and/or ``readings:read``; sends what the caller holds."""
    if not (principal.allows("alerts:read") or principal.allows("readings:read")):
        raise Problem(403, "the live stream needs alerts:read or readings:read")
    after_alert, after_reading = (
        _parse_last_event_id(last_event_id) if last_event_id else _start(conn)
    )
    pool = request.app.state.pool
    stopping = request.app.state.stopping

    async def events() -> AsyncIterator[ServerSentEvent]:
        nonlocal after_alert, after_reading
        while not stopping.is_set():
            alerts, readings = await asyncio.to_thread(
                _poll, pool, principal, after_alert, after_reading
            )
            for row in alerts:
                after_alert = row["id"]
                yield ServerSentEvent(
                    _json(row), event="alert", id=_event_id(after_alert, after_reading)
                )
            if readings:
                after_reading = max(r.pop("received_at") for r in readings)
                for row in readings:
                    yield ServerSentEvent(
                        _json(row), event="reading", id=_event_id(after_alert, after_reading)
                    )
            if len(alerts) < BATCH:
                await asyncio.sleep(POLL_S)

    return EventSourceResponse(events(), ping=15)
