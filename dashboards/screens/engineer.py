"""The engineer's console: is ingest keeping up, what was rejected and why, which devices are
unwell. Read through the API's operations endpoints with the engineer's principal."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from api.deps import Db
from api.problems import Problem
from api.routes import operations as ops_api
from dashboards.render import render
from dashboards.session import Screen, Viewer

router = APIRouter(include_in_schema=False)

DEADLETTER_WINDOW = timedelta(hours=24)
DEADLETTER_BUCKET_S = 3600
DEADLETTER_MAX = 10_000  # the API's page limit; the chart says when it was reached
UNWELL_SHOWN = 300


def deadletters_by_hour(rows: list[Any], now: datetime) -> dict[str, Any]:
    """Counts per reason per hour over the window, as chart columns (oldest hour first)."""
    start = int((now - DEADLETTER_WINDOW).timestamp()) // DEADLETTER_BUCKET_S * DEADLETTER_BUCKET_S
    hours = list(range(start, int(now.timestamp()) + 1, DEADLETTER_BUCKET_S))
    counts: Counter[tuple[str, int]] = Counter()
    for r in rows:
        bucket = int(r.received_at.timestamp()) // DEADLETTER_BUCKET_S * DEADLETTER_BUCKET_S
        counts[(r.reason, bucket)] += 1
    reasons = sorted({reason for reason, _ in counts})
    return {
        "ts": hours,
        "reasons": reasons,
        "counts": [[counts[(reason, h)] for h in hours] for reason in reasons],
        "totals": {reason: sum(counts[(reason, h)] for h in hours) for reason in reasons},
    }


@router.get("/engineer")
def console(request: Request, conn: Db, viewer: Annotated[Viewer, Screen("ops:read")]) -> Response:
    principal = viewer.principal
    now = datetime.now(UTC)
    ingest = ops_api.ingest_health(conn, principal)
    letters = ops_api.deadletters(
        conn, principal, since=(now - DEADLETTER_WINDOW).isoformat(), limit=DEADLETTER_MAX
    )
    unwell = ops_api.device_health(conn, principal, unwell=True)
    try:
        sim: ops_api.SimulatorRun | None = ops_api.simulator_last_run(request, principal)
    except Problem as exc:
        if exc.status_code != 404:
            raise
        sim = None
    kinds = Counter(
        "offline"
        if d.status == "offline"
        else "low battery"
        if d.low_battery
        else "losing messages"
        for d in unwell
    )
    return render(
        request,
        "engineer.html",
        {
            "viewer": viewer,
            "ingest": ingest,
            "letters": deadletters_by_hour(letters, now),
            "letters_capped": len(letters) >= DEADLETTER_MAX,
            "recent": letters[-20:][::-1],
            "unwell": unwell[:UNWELL_SHOWN],
            "unwell_total": len(unwell),
            "unwell_kinds": dict(kinds),
            "sim": sim,
        },
    )
