"""Refuse routes: plan a day (a background job with progress), list and read plans, export
them for drivers, re-plan from progress, and import crews' collection records."""

from __future__ import annotations

import datetime as dt
import io
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response, UploadFile
from pydantic import BaseModel, Field

from api.deps import Caller, Db, audit
from api.problems import PROBLEM_RESPONSES, Problem
from api.security import Principal
from routing.collections import import_collections, parse_collections
from routing.fleet import FleetConfigError, configured_fleet
from routing.plans import (
    PlanNotFoundError,
    export_stored,
    load_plan,
    plan_day,
    plan_summary,
    plan_to_dict,
    recent_plans,
    replan_stored,
)
from store.registry import RegistryImportError

router = APIRouter(prefix="/api/v1", tags=["routes"], responses=PROBLEM_RESPONSES)

MAX_SEARCH_S = 600.0


class PlanRequestBody(BaseModel):
    date: dt.date
    stream: str = "general"
    seconds: float = Field(30.0, gt=0, le=MAX_SEARCH_S, description="solver time limit")
    as_of: dt.datetime | None = Field(None, description="data cut-off (default: now)")
    engine: Literal["pyvrp", "hybrid", "ortools"] | None = None
    urgent: list[str] = Field([], description="bins someone reported: always collected")


class ReplanBody(BaseModel):
    at: str = Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$", description="local clock time HH:MM")
    urgent: list[str] = []
    out_of_service: list[str] = Field([], description="vehicle ids that stopped")
    seconds: float = Field(10.0, gt=0, le=MAX_SEARCH_S)


class Job(BaseModel):
    id: str
    kind: str
    state: Literal["queued", "running", "done", "failed"]
    progress: str | None
    params: dict[str, Any]
    result: dict[str, Any] | None
    error: str | None
    created_by: str
    created_at: dt.datetime
    updated_at: dt.datetime


class PlanListItem(BaseModel):
    id: str
    plan_date: dt.date
    stream: str
    created_at: dt.datetime
    parent_id: str | None
    distance_m: float | None
    bins_offered: int | None
    bins_must: int | None
    unserved_must: int | None
    valid: bool | None
    engine: str | None


class Stop(BaseModel):
    stop_id: str
    kind: Literal["bin", "tip", "break", "depot"]
    lat: float
    lon: float
    arrival_s: int
    """ETA, seconds after local midnight of the plan's day."""
    start_s: int
    departure_s: int
    load_kg: float
    load_l: float


class RouteOut(BaseModel):
    vehicle_id: str
    distance_m: float
    duration_s: float
    stops: list[Stop]
    # Planned on a road network: leg i is the street path (lat, lon) from stop i to stop i + 1.
    legs: list[list[tuple[float, float]]] = []


class VehicleSummary(BaseModel):
    vehicle: str
    bins: int
    km: float
    hours: float
    tip_trips: int
    breaks: int


class UnservedBin(BaseModel):
    bin: str
    must_collect: bool
    reason: str


class PlanDetail(BaseModel):
    plan_id: str
    date: dt.date
    stream: str
    parent_id: str | None
    engine: str
    km: float
    tip_trips: int
    valid: bool
    violations: list[str]
    vehicles: list[VehicleSummary]
    unserved: list[UnservedBin]
    unserved_must_collect: int
    routes: list[RouteOut]


class PlanBin(BaseModel):
    """A bin offered to a plan: its forecast, why it was offered, where it is in the plan
    (or not), and whether a crew recorded collecting it that day."""

    device_id: str
    must_collect: bool
    reason: str
    fill_now_pct: float | None
    """The forecast's smoothed fill at the bin's last reading before the plan's cut-off."""
    forecast_pct: float | None
    """Expected fill at the planned visit if nobody empties it first."""
    vehicle_id: str | None
    """None: not in any route (see the plan's unserved list for why)."""
    seq: int | None
    arrival_s: int | None
    """ETA, seconds after local midnight of the plan's day."""
    collected_at: dt.datetime | None
    """The crews' first collection record for the bin on the plan's day."""


class CollectionsReport(BaseModel):
    rows: int
    new: int


def _check_seconds(request: Request, seconds: float) -> None:
    limit = request.app.state.settings.api_route_max_seconds
    if seconds > limit:
        raise Problem(422, f"seconds: at most {limit:g} on this server")


def _job(conn: Db, job_id: str) -> Job:
    row = conn.execute("SELECT * FROM jobs WHERE id = %s", (job_id,)).fetchone()
    if row is None:
        raise Problem(404, f"no job {job_id!r}")
    return Job(**row)


def _accepted(response: Response, conn: Db, job_id: str) -> Job:
    response.status_code = 202
    response.headers["Location"] = f"/api/v1/jobs/{job_id}"
    return _job(conn, job_id)


@router.post("/routes/plans", status_code=202)
def plan(
    request: Request,
    response: Response,
    conn: Db,
    principal: Annotated[Principal, Caller("routes:write")],
    body: PlanRequestBody,
) -> Job:
    """Start planning a day's routes for one stream; poll the job (``Location``) for
    progress and the plan id."""
    _check_seconds(request, body.seconds)
    try:
        fleet = configured_fleet()
        fleet.stream(body.stream)
    except FleetConfigError as exc:
        raise Problem(422, str(exc)) from exc
    as_of = body.as_of or dt.datetime.now(dt.UTC)
    if as_of.tzinfo is None:
        raise Problem(422, "as_of needs a UTC offset")
    if fleet.local_time(body.date, fleet.shift.end_s) <= as_of:
        raise Problem(422, f"the {body.date} shift ends before the data cut-off; give as_of")

    def work(job_conn: Any, progress: Any) -> dict[str, Any]:
        day = plan_day(
            job_conn,
            fleet,
            body.date,
            stream=body.stream,
            as_of=as_of,
            time_limit_s=body.seconds,
            engine=body.engine,
            urgent=set(body.urgent),
            progress=progress,
        )
        return plan_summary(day.plan_id, day.plan, {"date": body.date.isoformat()})

    params = body.model_dump(mode="json")
    with conn.transaction():
        job_id = request.app.state.jobs.create(conn, "plan", params, principal.actor)
        audit(conn, request, principal, "write", [job_id], job="plan")
    request.app.state.jobs.start(job_id, work)
    return _accepted(response, conn, job_id)


@router.get("/jobs/{job_id}")
def get_job(conn: Db, _: Annotated[Principal, Caller("routes:read")], job_id: str) -> Job:
    """A background job's state, progress and, once done, its result."""
    return _job(conn, job_id)


@router.get("/routes/plans")
def list_plans(
    conn: Db,
    _: Annotated[Principal, Caller("routes:read")],
    date: dt.date | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 20,
) -> list[PlanListItem]:
    """Stored plans, newest first."""
    return [PlanListItem(**r) for r in recent_plans(conn, plan_date=date, limit=limit)]


def _stored(conn: Db, plan_id: str) -> Any:
    try:
        return load_plan(conn, plan_id)
    except PlanNotFoundError as exc:
        raise Problem(404, str(exc)) from exc


@router.get("/routes/plans/{plan_id}")
def get_plan(conn: Db, _: Annotated[Principal, Caller("routes:read")], plan_id: str) -> PlanDetail:
    """A plan: its summary, and each truck's stops in order with ETAs and loads."""
    stored = _stored(conn, plan_id)
    summary = plan_summary(stored.id, stored.plan, {"date": stored.plan_date.isoformat()})
    routes = plan_to_dict(stored.plan)["routes"]
    return PlanDetail(**summary, stream=stored.stream, parent_id=stored.parent_id, routes=routes)


_PLAN_BINS = """
WITH offered AS (
    SELECT e->>'bin_id' AS device_id, (e->>'must_collect')::boolean AS must_collect,
           e->>'reason' AS reason, (e->'forecast'->>'fill_now_pct')::float AS fill_now_pct,
           (e->'forecast'->>'forecast_at_visit_pct')::float AS forecast_pct
    FROM route_plans p CROSS JOIN LATERAL jsonb_array_elements(p.selection) AS e
    WHERE p.id = %(plan)s)
SELECT o.*, s.vehicle_id, s.seq, s.arrival_s,
       (SELECT min(c.ts) FROM collection_records c
        WHERE c.device_id = o.device_id AND c.ts >= %(start)s AND c.ts < %(end)s) AS collected_at
FROM offered o
LEFT JOIN route_stops s ON s.plan_id = %(plan)s AND s.stop_id = o.device_id AND s.kind = 'bin'
ORDER BY s.vehicle_id NULLS LAST, s.seq, o.device_id
"""


@router.get("/routes/plans/{plan_id}/bins")
def plan_bins(
    conn: Db, _: Annotated[Principal, Caller("routes:read")], plan_id: str
) -> list[PlanBin]:
    """Each bin the plan considered: forecast fill, selection reason, truck and stop order,
    and whether the crews' records show it collected that day (the plan's progress)."""
    # Only the plan's day: the stored plan with its solver input is far more to read and parse.
    found = conn.execute("SELECT plan_date FROM route_plans WHERE id = %s", (plan_id,)).fetchone()
    if found is None:
        raise Problem(404, str(PlanNotFoundError(plan_id)))
    try:
        fleet = configured_fleet()
    except FleetConfigError as exc:
        raise Problem(500, str(exc)) from exc
    start = fleet.local_time(found["plan_date"], 0)
    end = fleet.local_time(found["plan_date"] + dt.timedelta(days=1), 0)
    rows = conn.execute(_PLAN_BINS, {"plan": plan_id, "start": start, "end": end}).fetchall()
    return [PlanBin(**r) for r in rows]


_MEDIA = {"geojson": "application/geo+json", "gpx": "application/gpx+xml", "csv": "text/csv"}


@router.get(
    "/routes/plans/{plan_id}/export",
    response_class=Response,
    responses={200: {"content": {m: {} for m in _MEDIA.values()}}},
)
def export_plan(
    conn: Db,
    _: Annotated[Principal, Caller("routes:read")],
    plan_id: str,
    format: Literal["geojson", "gpx", "csv"] = "geojson",
) -> Response:
    """The plan for drivers and maps: GeoJSON, GPX (stops as waypoints) or CSV."""
    text = export_stored(_stored(conn, plan_id), format)
    filename = f"{plan_id}.{format}"
    return Response(
        text,
        media_type=_MEDIA[format],
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@router.post("/routes/plans/{plan_id}/replan", status_code=202)
def replan(
    request: Request,
    response: Response,
    conn: Db,
    principal: Annotated[Principal, Caller("routes:write")],
    plan_id: str,
    body: ReplanBody,
) -> Job:
    """Re-plan the rest of the day from ``at`` (a background job like planning)."""
    _check_seconds(request, body.seconds)
    stored = _stored(conn, plan_id)
    unknown = sorted(set(body.out_of_service) - {v.id for v in stored.request.vehicles})
    if unknown:
        raise Problem(422, f"unknown vehicle(s): {', '.join(unknown)}")
    hours, minutes = (int(p) for p in body.at.split(":"))

    def work(job_conn: Any, progress: Any) -> dict[str, Any]:
        progress(f"re-planning {plan_id} from {body.at}")
        result = replan_stored(
            job_conn,
            plan_id,
            at_s=hours * 3600 + minutes * 60,
            urgent=body.urgent,
            out_of_service=set(body.out_of_service),
            time_limit_s=body.seconds,
        )
        return plan_summary(result.plan_id, result.plan, {"parent_id": result.parent_id})

    params = {"plan_id": plan_id, **body.model_dump(mode="json")}
    with conn.transaction():
        job_id = request.app.state.jobs.create(conn, "replan", params, principal.actor)
        audit(conn, request, principal, "write", [plan_id, job_id], job="replan")
    request.app.state.jobs.start(job_id, work)
    return _accepted(response, conn, job_id)


@router.post("/routes/collections")
async def collections(
    request: Request,
    conn: Db,
    principal: Annotated[Principal, Caller("routes:write")],
    file: UploadFile,
) -> CollectionsReport:
    """Crews' collection records (CSV ``device_id,ts[,crew]``), as ``civic routes collected``:
    any bad row and nothing is stored (422 lists them)."""
    raw = await file.read()
    try:
        rows = parse_collections(io.StringIO(raw.decode("utf-8-sig"), newline=""))
        imported = import_collections(conn, rows, source="api")
    except UnicodeDecodeError as exc:
        raise Problem(400, "the file is not UTF-8 text") from exc
    except RegistryImportError as exc:
        raise Problem(422, "; ".join(str(e) for e in exc.errors[:50])) from exc
    audit(conn, request, principal, "write", [], collections=imported.rows, new=imported.new)
    return CollectionsReport(rows=imported.rows, new=imported.new)
