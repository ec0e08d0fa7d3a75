"""Waste operations: the bin map with today's routes, planning and re-planning as background
jobs, the unserved bins, exports for drivers, and crews' collection sheets.

Everything is read through the API's endpoint functions with the crew member's principal.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Form, Request, UploadFile
from fastapi.responses import JSONResponse, RedirectResponse, Response

from api.deps import Db
from api.problems import Problem
from api.routes import alerts as alerts_api
from api.routes import devices as devices_api
from api.routes import readings as readings_api
from api.routes import routes as routes_api
from api.settings import ApiSettings
from dashboards.baseline import closed_loop
from dashboards.flash import flash
from dashboards.render import LOCAL, render
from dashboards.session import Screen, Viewer, check_csrf
from firmware_contracts import WasteStream
from routing.fleet import configured_fleet
from routing.planning import OVERFLOW_PCT

router = APIRouter(include_in_schema=False)

FLAGS = {"bin_overflow": "O", "bin_fire": "F", "bin_knocked_over": "T"}
"""Bin alerts drawn on the map, with the letter each marker shows (not colour alone)."""
PLAN_SECONDS = 30.0  # the solver's search per plan from the screen; the API caps it
REPLAN_SECONDS = 10.0
WEEK = 7
LAST_PLAN_BEFORE_END = dt.timedelta(minutes=30)  # a plan needs some shift left to run


def _today() -> dt.date:
    return dt.datetime.now(LOCAL).date()


def working_day() -> dt.date:
    """The day a crew plans now: today, or the next day once today's shift is over."""
    fleet = configured_fleet()
    today = dt.datetime.now(fleet.zone).date()
    if fleet.local_time(today, fleet.shift.end_s) <= dt.datetime.now(dt.UTC) + LAST_PLAN_BEFORE_END:
        return today + dt.timedelta(days=1)
    return today


def _all_bins(conn: Db, viewer: Viewer, stream: str | None, patch: str | None) -> list[Any]:
    bins: list[Any] = []
    after = None
    while True:
        page = devices_api.list_bins(
            conn,
            viewer.principal,
            stream=stream,
            patch=patch,
            after=after,
            limit=devices_api.MAX_PAGE,
        )
        bins.extend(page)
        if len(page) < devices_api.MAX_PAGE:
            return bins
        after = page[-1].device_id


def _flags(request: Request, conn: Db, viewer: Viewer) -> dict[str, list[str]]:
    if not viewer.can("alerts:read"):
        return {}
    out: dict[str, list[str]] = {}
    for alert_type in FLAGS:  # one small query per flagged type, not every active alert
        for a in alerts_api.list_(
            request,
            conn,
            viewer.principal,
            type=alert_type,
            state="active",
            limit=alerts_api.MAX_PAGE,
            order="newest",
        ):
            if a.subject_kind == "bin":
                out.setdefault(a.subject_id, []).append(a.alert_type)
    return out


def _latest_plan(conn: Db, viewer: Viewer, stream: str, plan_id: str | None) -> Any | None:
    if plan_id:
        return routes_api.get_plan(conn, viewer.principal, plan_id)
    for item in routes_api.list_plans(conn, viewer.principal, date=working_day(), limit=50):
        if item.stream == stream:
            return routes_api.get_plan(conn, viewer.principal, item.id)
    return None


def _week(conn: Db, viewer: Viewer) -> dict[str, Any]:
    """This week's headline figures from each day's plan (the latest first plan of each day
    and stream: a re-plan covers only what was left of its day), the crews' records and the
    bins' hourly levels; with the closed-loop simulation's fixed-round baseline where that
    run's results exist."""
    since = _today() - dt.timedelta(days=WEEK - 1)
    latest: dict[tuple[dt.date, str], Any] = {}
    for item in routes_api.list_plans(conn, viewer.principal, date=None, limit=500):
        if item.plan_date >= since and item.parent_id is None:
            latest.setdefault((item.plan_date, item.stream), item)
    plans = list(latest.values())
    start = dt.datetime.combine(since, dt.time(), tzinfo=LOCAL)
    return {
        "days": len({p.plan_date for p in plans}),
        "km": sum((p.distance_m or 0) for p in plans) / 1000,
        "bins": sum((p.bins_offered or 0) for p in plans),
        "unserved_must": sum((p.unserved_must or 0) for p in plans),
        **_bins_week(conn, viewer, start),
        "baseline": closed_loop(),
    }


# Bins the viewer may read (the API's own condition, in SQL): collections the crews recorded,
# and hours whose mean level was at or over full (the rollup's overflowing hours are indexed).
_BINS_WEEK = f"""
SELECT (SELECT count(*) FROM collection_records c JOIN devices d USING (device_id)
        WHERE c.ts >= %(start)s AND d.kind = 'bin' AND {readings_api.VISIBLE}) AS collected,
       (SELECT count(*) FROM readings_rollup_hourly r JOIN devices d USING (device_id)
        WHERE r.bucket >= %(start)s AND r.fill_pct_n > 0
          AND r.fill_pct_sum >= {OVERFLOW_PCT:g} * r.fill_pct_n
          AND d.kind = 'bin' AND {readings_api.VISIBLE}) AS overflow_hours
"""


def _bins_week(conn: Db, viewer: Viewer, start: dt.datetime) -> dict[str, int]:
    params = {**readings_api.visible(viewer.principal), "start": start}
    row = conn.execute(_BINS_WEEK, params).fetchone() or {}
    return {"collected": row.get("collected", 0), "overflow_hours": row.get("overflow_hours", 0)}


MAP_DECIMALS = 5
"""Coordinates on the map to about a metre: finer than a marker, and a smaller page."""


def _whole(value: float | None) -> float | int | None:
    """Percentages as the map draws and says them: whole numbers."""
    return None if value is None else round(value)


def _map_data(
    bins: list[Any], flags: dict[str, list[str]], plan: Any | None, plan_bins: list[Any]
) -> dict[str, Any]:
    """Only what the map draws and says, as compact rows (``map.js`` reads them by position):
    thousands of bins are most of the page."""
    forecast = {b.device_id: b.forecast_pct for b in plan_bins}
    return {
        "bins": [
            [
                b.device_id,
                round(b.lat, MAP_DECIMALS),
                round(b.lon, MAP_DECIMALS),
                _whole(b.fill_pct),
                _whole(forecast.get(b.device_id)),
                _threshold(b.threshold_pct),
                "".join(FLAGS[f] for f in flags.get(b.device_id, [])),
            ]
            for b in bins
        ],
        "routes": [
            {
                "vehicle": r.vehicle_id,
                "stops": [
                    [
                        s.stop_id,
                        s.kind,
                        round(s.lat, MAP_DECIMALS),
                        round(s.lon, MAP_DECIMALS),
                        round(s.arrival_s),
                    ]
                    for s in r.stops
                ],
                # The street path when planned on roads (map data © OpenStreetMap contributors).
                "path": [
                    [round(lat, MAP_DECIMALS), round(lon, MAP_DECIMALS)]
                    for leg in r.legs
                    for lat, lon in leg
                ]
                or None,
            }
            for r in (plan.routes if plan else [])
        ],
        "flags": {"O": "overflowing", "F": "fire", "T": "knocked over"},
    }


def _threshold(value: float) -> float | int:
    """A bin's threshold as written (80, not 80.0); a fractional one is kept exact."""
    return int(value) if float(value).is_integer() else value


@router.get("/waste")
def waste(
    request: Request,
    conn: Db,
    viewer: Annotated[Viewer, Screen("bins:read", "routes:read")],
    stream: str = WasteStream.GENERAL.value,
    patch: str | None = None,
    plan: str | None = None,
    job: str | None = None,
) -> Response:
    """The crew's map: bins by fill and forecast, today's routes, what was left and why."""
    patch = patch or None
    bins = _all_bins(conn, viewer, stream, patch)
    every_patch = (
        sorted({b.patch for b in _all_bins(conn, viewer, None, None) if b.patch})
        if patch
        else sorted({b.patch for b in bins if b.patch})
    )
    current = _latest_plan(conn, viewer, stream, plan)
    plan_bins = routes_api.plan_bins(conn, viewer.principal, current.plan_id) if current else []
    done = {b.device_id: b.collected_at for b in plan_bins if b.collected_at}
    running = routes_api.get_job(conn, viewer.principal, job) if job else None
    full = sum(1 for b in bins if b.fill_pct is not None and b.fill_pct >= b.threshold_pct)
    return render(
        request,
        "waste.html",
        {
            "viewer": viewer,
            "stream": stream,
            "streams": [s.value for s in WasteStream],
            "patch": patch,
            "patches": every_patch,
            "bins": bins,
            "full": full,
            "plan": current,
            "done": done,
            "job": running,
            "week": _week(conn, viewer),
            "today": working_day(),
            "now_local": dt.datetime.now(LOCAL).strftime("%H:%M"),
            "tiles": request.app.state.settings.map_tile_url,
            "attribution": request.app.state.settings.map_tile_attribution,
            "map": _map_data(bins, _flags(request, conn, viewer), current, plan_bins),
        },
    )


def _back(stream: str, **extra: str) -> str:
    query = "&".join(f"{k}={v}" for k, v in {"stream": stream, **extra}.items())
    return f"/waste?{query}"


@router.post("/waste/plan")
def plan(
    request: Request,
    conn: Db,
    viewer: Annotated[Viewer, Screen("routes:write")],
    stream: Annotated[str, Form()],
    date: Annotated[dt.date | None, Form()] = None,
    csrf: Annotated[str, Form()] = "",
) -> Response:
    """Start planning a day (the API's background job) and show its progress."""
    check_csrf(request, csrf)
    settings: ApiSettings = request.app.state.settings
    seconds = min(PLAN_SECONDS, settings.api_route_max_seconds)
    try:
        body = routes_api.PlanRequestBody(
            date=date or working_day(), stream=stream, seconds=seconds, as_of=None, urgent=[]
        )
        job = routes_api.plan(request, Response(), conn, viewer.principal, body)
    except (Problem, ValueError) as exc:
        response = RedirectResponse(_back(stream), status_code=303)
        flash(request, response, "error", f"Not started: {getattr(exc, 'detail', exc)}")
        return response
    return RedirectResponse(_back(stream, job=job.id), status_code=303)


@router.post("/waste/plans/{plan_id}/replan")
def replan(
    request: Request,
    conn: Db,
    viewer: Annotated[Viewer, Screen("routes:write")],
    plan_id: str,
    stream: Annotated[str, Form()],
    at: Annotated[str, Form()],
    out_of_service: Annotated[list[str] | None, Form()] = None,
    csrf: Annotated[str, Form()] = "",
) -> Response:
    """Re-plan the rest of the day from ``at`` (a background job like planning)."""
    check_csrf(request, csrf)
    try:
        settings: ApiSettings = request.app.state.settings
        seconds = min(REPLAN_SECONDS, settings.api_route_max_seconds)
        body = routes_api.ReplanBody(at=at, out_of_service=out_of_service or [], seconds=seconds)
        job = routes_api.replan(request, Response(), conn, viewer.principal, plan_id, body)
    except (Problem, ValueError) as exc:
        response = RedirectResponse(_back(stream, plan=plan_id), status_code=303)
        flash(request, response, "error", f"Not started: {getattr(exc, 'detail', exc)}")
        return response
    return RedirectResponse(_back(stream, plan=plan_id, job=job.id), status_code=303)


@router.get("/waste/jobs/{job_id}")
def job_state(
    conn: Db, viewer: Annotated[Viewer, Screen("routes:read")], job_id: str
) -> JSONResponse:
    """A planning job's state for the page's progress line."""
    job = routes_api.get_job(conn, viewer.principal, job_id)
    plan_id = (job.result or {}).get("plan_id")
    return JSONResponse(
        {"state": job.state, "progress": job.progress, "error": job.error, "plan_id": plan_id},
        headers={"Cache-Control": "no-store"},
    )


@router.get("/waste/plans/{plan_id}/export")
def export(
    conn: Db,
    viewer: Annotated[Viewer, Screen("routes:read")],
    plan_id: str,
    format: Literal["geojson", "gpx", "csv"] = "geojson",
) -> Response:
    return routes_api.export_plan(conn, viewer.principal, plan_id, format=format)


@router.get("/waste/plans/{plan_id}/sheet")
def sheet(
    request: Request, conn: Db, viewer: Annotated[Viewer, Screen("routes:read")], plan_id: str
) -> Response:
    """The printable driver sheet: each truck's stops in order with ETAs."""
    found = routes_api.get_plan(conn, viewer.principal, plan_id)
    return render(request, "sheet.html", {"viewer": viewer, "plan": found})


@router.post("/waste/collections")
async def collections(
    request: Request,
    conn: Db,
    viewer: Annotated[Viewer, Screen("routes:write")],
    file: UploadFile,
    stream: Annotated[str, Form()] = WasteStream.GENERAL.value,
    csrf: Annotated[str, Form()] = "",
) -> Response:
    """A crew's round sheet (CSV ``device_id,ts[,crew]``), checked and stored by the API."""
    check_csrf(request, csrf)
    response = RedirectResponse(_back(stream), status_code=303)
    try:
        report = await routes_api.collections(request, conn, viewer.principal, file)
    except Problem as exc:
        flash(request, response, "error", f"Not imported: {exc.detail}")
        return response
    flash(request, response, "ok", f"Round sheet: {report.rows} records, {report.new} new")
    return response
