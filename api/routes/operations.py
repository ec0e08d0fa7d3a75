"""For engineers: is ingest keeping up, what was rejected, which devices are unwell."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel

from api.deps import Caller, Db
from api.problems import PROBLEM_RESPONSES, Problem, query_time
from api.security import Principal
from common.settings import SIM_LAST_RUN_FILE
from store.deadletters import iter_deadletters

router = APIRouter(prefix="/api/v1", tags=["operations"], responses=PROBLEM_RESPONSES)

LOW_BATTERY_V = 3.3  # a lithium cell under load near the end of its life (*default*)


class IngestHealth(BaseModel):
    readings_last_minute: int
    readings_last_15_minutes: int
    rate_per_s: float
    """Over the last 15 minutes."""
    newest_received_at: datetime | None
    lag_p50_s: float | None
    """Reading time to storing time over the last 15 minutes (device buffering included)."""
    lag_p95_s: float | None
    deadletters_last_hour: dict[str, int]


class DeadLetter(BaseModel):
    id: int
    received_at: datetime
    source: str
    reason: str
    topic: str | None
    detail: str | None
    payload: str
    """The message as received (UTF-8, undecodable bytes replaced)."""


class SimulatorRun(BaseModel):
    started_at: datetime
    finished_at: datetime
    bins: int
    homes: int
    interval_s: float
    duration_s: float
    """Simulated time covered (sped up when the run used --speed)."""
    report: dict[str, Any]
    """What was sent: messages by kind, readings, faults injected, acknowledgements, rate."""


class DeviceHealth(BaseModel):
    device_id: str
    kind: str
    patch: str | None
    status: str | None
    last_reading_at: datetime | None
    battery_v: float | None
    low_battery: bool
    readings_24h: int
    missing_24h: int
    """Messages the device's counter says it sent in 24 h that were not stored."""


@router.get("/ops/ingest")
def ingest_health(conn: Db, _: Annotated[Principal, Caller("ops:read")]) -> IngestHealth:
    """Ingest rate and lag from what was stored, and rejections by reason."""
    row = conn.execute(
        """SELECT count(*) FILTER (WHERE received_at > now() - interval '1 minute') AS last_min,
                  count(*) AS last_15,
                  max(received_at) AS newest,
                  percentile_cont(0.5) WITHIN GROUP
                      (ORDER BY extract(epoch FROM received_at - ts)) AS p50,
                  percentile_cont(0.95) WITHIN GROUP
                      (ORDER BY extract(epoch FROM received_at - ts)) AS p95
           FROM readings WHERE received_at > now() - interval '15 minutes'"""
    ).fetchone()
    assert row is not None
    rejected = conn.execute(
        "SELECT reason, count(*) AS n FROM deadletters"
        " WHERE received_at > now() - interval '1 hour' GROUP BY reason ORDER BY reason"
    ).fetchall()
    return IngestHealth(
        readings_last_minute=row["last_min"],
        readings_last_15_minutes=row["last_15"],
        rate_per_s=round(row["last_15"] / 900, 2),
        newest_received_at=row["newest"],
        lag_p50_s=row["p50"],
        lag_p95_s=row["p95"],
        deadletters_last_hour={r["reason"]: r["n"] for r in rejected},
    )


@router.get("/deadletters")
def deadletters(
    conn: Db,
    _: Annotated[Principal, Caller("ops:read")],
    since: Annotated[str | None, Query(description="RFC 3339, a date, or an age")] = None,
    reason: str | None = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 500,
) -> list[DeadLetter]:
    """Rejected messages with the reason, newest last."""
    start = query_time(since, "since")
    return [
        DeadLetter(**r) for r in iter_deadletters(conn, since=start, reason=reason, limit=limit)
    ]


@router.get("/ops/devices")
def device_health(
    conn: Db,
    _: Annotated[Principal, Caller("ops:read")],
    kind: str | None = None,
    unwell: Annotated[
        bool, Query(description="only low battery, offline or losing messages")
    ] = False,
) -> list[DeviceHealth]:
    """Each device's last reading, battery and message losses over the last day."""
    rows = conn.execute(
        # One pass over the day's readings grouped by device: a third of the time of a
        # per-device lookup with 3,000 devices.
        """WITH g AS (SELECT device_id, count(*) AS n, max(seq) - min(seq) + 1 AS span
                      FROM readings WHERE ts > now() - interval '1 day' GROUP BY device_id)
           SELECT d.device_id, d.kind, d.patch, s.state AS status, l.ts AS last_reading_at,
                  l.battery_v, coalesce(g.n, 0) AS readings_24h,
                  coalesce(g.span - g.n, 0) AS missing_24h
           FROM devices d
           LEFT JOIN device_status s USING (device_id)
           LEFT JOIN latest_readings l USING (device_id)
           LEFT JOIN g USING (device_id)
           WHERE d.disabled_at IS NULL AND (%(kind)s::text IS NULL OR d.kind = %(kind)s)
           ORDER BY d.device_id""",
        {"kind": kind},
    ).fetchall()
    out = []
    for r in rows:
        low = r["battery_v"] is not None and r["battery_v"] < LOW_BATTERY_V
        health = DeviceHealth(**r, low_battery=low)
        if unwell and not (low or r["status"] == "offline" or health.missing_24h > 0):
            continue
        out.append(health)
    return out


@router.get("/ops/simulator")
def simulator_last_run(
    request: Request, _: Annotated[Principal, Caller("ops:read")]
) -> SimulatorRun:
    """The report of the last ``civic sim`` run on this server (404 when none is recorded)."""
    path = request.app.state.settings.data_dir / SIM_LAST_RUN_FILE
    try:
        return SimulatorRun(**json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError as exc:
        raise Problem(404, "no simulator run recorded on this server") from exc
    except (ValueError, TypeError) as exc:
        raise Problem(500, f"the simulator's last report is unreadable: {exc}") from exc
