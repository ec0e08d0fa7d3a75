"""Stored plans: every plan kept with its inputs, solver statistics and validator verdict.

A row of ``route_plans`` (``store/migrations/004_routes.sql``) answers "why is bin X on this
route, and why was bin Y left?" (each bin's forecast and selection reason, the unserved list
with reasons) and "can we get this plan again?" (the exact :class:`~routing.model.PlanRequest`,
the engine, time limit and fleet configuration: :func:`reproduce` re-solves it). Stops are also
written one row each to ``route_stops`` for queries by bin.

Values cross the database as JSON built here field by field, so a stored plan reads back into
the same frozen dataclasses (and is validated again on the way in).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from forecast.bins import BinForecast
from routing.errors import RoutingError
from routing.fleet import FleetConfig, fleet_from_dict
from routing.model import (
    BinStop,
    BreakRule,
    DisposalSite,
    Plan,
    PlannedStop,
    PlanRequest,
    Route,
    Site,
    SolverStats,
    TimeWindow,
    Unserved,
    Vehicle,
)
from routing.planning import (
    OVERFLOW_PCT,
    Selection,
    build_request,
    forecast_from_store,
    select_stops,
)
from routing.replan import Replan, VehicleProgress, replan
from routing.roads import RoadProvider, snap_summary
from routing.solver import REFUSE_ENGINES, RefuseEngine, choose_engine, plan_routes

__all__ = [
    "DayPlan",
    "PlanNotFoundError",
    "StoredPlan",
    "StoredReplan",
    "load_plan",
    "new_plan_id",
    "plan_day",
    "plan_from_dict",
    "plan_to_dict",
    "progress_at",
    "recent_plans",
    "replan_stored",
    "reproduce",
    "request_from_dict",
    "request_to_dict",
    "save_plan",
    "selection_to_dicts",
]

Row = dict[str, Any]


class PlanNotFoundError(RoutingError):
    """No stored plan has this id."""

    def __init__(self, plan_id: str) -> None:
        super().__init__(f"no stored plan {plan_id!r}")
        self.plan_id = plan_id


def new_plan_id(plan_date: dt.date, stream: str) -> str:
    """``2025-10-20-general-3f9a1c``: readable on a driver sheet, unique in practice."""
    return f"{plan_date.isoformat()}-{stream}-{uuid.uuid4().hex[:6]}"


def _window(window: TimeWindow | None) -> Row | None:
    return None if window is None else {"start_s": window.start_s, "end_s": window.end_s}


def _window_from(raw: Row | None) -> TimeWindow | None:
    return None if raw is None else TimeWindow(int(raw["start_s"]), int(raw["end_s"]))


def request_to_dict(request: PlanRequest) -> Row:
    """The request as JSON-ready values (see :func:`request_from_dict`)."""
    return {
        "depots": [dataclasses.asdict(d) for d in request.depots],
        "tips": [
            {**dataclasses.asdict(t), "streams": sorted(t.streams), "opening": _window(t.opening)}
            for t in request.tips
        ],
        "vehicles": [
            {**dataclasses.asdict(v), "shift": _window(v.shift)} for v in request.vehicles
        ],
        "bins": [
            {**dataclasses.asdict(b), "time_window": _window(b.time_window)} for b in request.bins
        ],
        "breaks": dataclasses.asdict(request.breaks),
        "return_empty": request.return_empty,
    }


def request_from_dict(raw: Mapping[str, Any]) -> PlanRequest:
    return PlanRequest(
        depots=tuple(Site(**d) for d in raw["depots"]),
        tips=tuple(
            DisposalSite(
                **{
                    **t,
                    "streams": frozenset(t["streams"]),
                    "opening": _window_from(t["opening"]),
                }
            )
            for t in raw["tips"]
        ),
        vehicles=tuple(
            Vehicle(**{**v, "shift": _window_from(v["shift"])}) for v in raw["vehicles"]
        ),
        bins=tuple(
            BinStop(**{**b, "time_window": _window_from(b["time_window"])}) for b in raw["bins"]
        ),
        breaks=BreakRule(**raw["breaks"]),
        return_empty=bool(raw["return_empty"]),
    )


def plan_to_dict(plan: Plan) -> Row:
    return {
        "routes": [
            {
                "vehicle_id": r.vehicle_id,
                "distance_m": r.distance_m,
                "duration_s": r.duration_s,
                "stops": [dataclasses.asdict(s) for s in r.stops],
                **({"legs": [[list(p) for p in leg] for leg in r.legs]} if r.legs else {}),
            }
            for r in plan.routes
        ],
        "unserved": [dataclasses.asdict(u) for u in plan.unserved],
        "stats": dataclasses.asdict(plan.stats),
        "violations": list(plan.violations),
    }


def plan_from_dict(raw: Mapping[str, Any]) -> Plan:
    return Plan(
        routes=tuple(
            Route(
                r["vehicle_id"],
                tuple(PlannedStop(**s) for s in r["stops"]),
                int(r["distance_m"]),
                int(r["duration_s"]),
                tuple(tuple((float(p[0]), float(p[1])) for p in leg) for leg in r.get("legs", ())),
            )
            for r in raw["routes"]
        ),
        unserved=tuple(Unserved(**u) for u in raw["unserved"]),
        stats=SolverStats(**raw["stats"]),
        violations=tuple(raw["violations"]),
    )


def _forecast_dict(forecast: BinForecast) -> Row:
    """The forecast as JSON values (times in RFC 3339), without fields nobody computed."""
    out = {}
    for name, value in dataclasses.asdict(forecast).items():
        if value is not None:
            out[name] = value.isoformat() if isinstance(value, dt.datetime) else value
    return out


def selection_to_dicts(selection: Selection) -> list[Row]:
    """Per offered bin: the forecast behind it and the reason, for explaining the plan."""
    return [
        {
            "bin_id": s.stop.id,
            "must_collect": s.stop.must_collect,
            "reason": s.reason,
            "drop_penalty_m": s.stop.drop_penalty,
            "weight_kg": s.stop.weight_kg,
            "volume_l": s.stop.volume_l,
            "forecast": _forecast_dict(s.forecast),
        }
        for s in selection.stops
    ]


@dataclass(frozen=True, slots=True)
class StoredPlan:
    """A plan as stored, with everything that explains and reproduces it."""

    id: str
    plan_date: dt.date
    stream: str
    created_at: dt.datetime
    as_of: dt.datetime
    parent_id: str | None
    engine: str
    time_limit_s: float
    request: PlanRequest
    plan: Plan
    selection: tuple[Row, ...]
    fleet: Row

    def reason_for(self, bin_id: str) -> str | None:
        """Why ``bin_id`` was offered to the solver (None if it was not)."""
        for entry in self.selection:
            if entry["bin_id"] == bin_id:
                return str(entry["reason"])
        return None


def save_plan(
    conn: psycopg.Connection[Row],
    *,
    plan_date: dt.date,
    stream: str,
    as_of: dt.datetime,
    engine: str,
    time_limit_s: float,
    request: PlanRequest,
    plan: Plan,
    selection: Sequence[Row],
    fleet: Mapping[str, Any],
    parent_id: str | None = None,
    plan_id: str | None = None,
) -> str:
    """Store ``plan`` with its inputs in one transaction; returns its id."""
    plan_id = plan_id or new_plan_id(plan_date, stream)
    must_ids = {b.id for b in request.bins if b.must_collect}
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(
            """INSERT INTO route_plans (id, plan_date, stream, as_of, parent_id, engine,
                   time_limit_s, status, distance_m, bins_offered, bins_must, unserved_must,
                   valid, violations, stats, fleet, request, selection, plan)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,
                   %s)""",
            (
                plan_id,
                plan_date,
                stream,
                as_of,
                parent_id,
                engine,
                time_limit_s,
                plan.stats.status,
                plan.distance_m,
                len(request.bins),
                len(must_ids),
                sum(1 for u in plan.unserved if u.must_collect),
                plan.is_valid,
                Jsonb(list(plan.violations)),
                Jsonb(dataclasses.asdict(plan.stats)),
                Jsonb(dict(fleet)),
                Jsonb(request_to_dict(request)),
                Jsonb(list(selection)),
                Jsonb(plan_to_dict(plan)),
            ),
        )
        cur.executemany(
            """INSERT INTO route_stops (plan_id, vehicle_id, seq, stop_id, kind, arrival_s,
                   departure_s, load_kg, load_l, lat, lon)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)""",
            [
                (
                    plan_id,
                    route.vehicle_id,
                    seq,
                    stop.stop_id,
                    stop.kind,
                    stop.arrival_s,
                    stop.departure_s,
                    stop.load_kg,
                    stop.load_l,
                    stop.lat,
                    stop.lon,
                )
                for route in plan.routes
                for seq, stop in enumerate(route.stops)
            ],
        )
    return plan_id


def load_plan(conn: psycopg.Connection[Row], plan_id: str) -> StoredPlan:
    """Read a stored plan back.

    Raises
    ------
    PlanNotFoundError
        If there is no plan ``plan_id``.
    """
    row = conn.execute("SELECT * FROM route_plans WHERE id = %s", (plan_id,)).fetchone()
    if row is None:
        raise PlanNotFoundError(plan_id)
    return StoredPlan(
        id=row["id"],
        plan_date=row["plan_date"],
        stream=row["stream"],
        created_at=row["created_at"],
        as_of=row["as_of"],
        parent_id=row["parent_id"],
        engine=row["engine"],
        time_limit_s=float(row["time_limit_s"]),
        request=request_from_dict(row["request"]),
        plan=plan_from_dict(row["plan"]),
        selection=tuple(row["selection"]),
        fleet=dict(row["fleet"]),
    )


def recent_plans(
    conn: psycopg.Connection[Row], *, plan_date: dt.date | None = None, limit: int = 20
) -> list[Row]:
    """Summaries of the latest plans (optionally of one day), newest first."""
    return conn.execute(
        """SELECT id, plan_date, stream, created_at, parent_id, distance_m, bins_offered,
                  bins_must, unserved_must, valid, stats->>'engine' AS engine
           FROM route_plans
           WHERE %(day)s::date IS NULL OR plan_date = %(day)s
           ORDER BY created_at DESC LIMIT %(limit)s""",
        {"day": plan_date, "limit": limit},
    ).fetchall()


def reproduce(stored: StoredPlan, *, time_limit_s: float | None = None) -> Plan:
    """Solve the stored request again with the stored engine, limit and travel settings.

    The inputs are identical; the search is time-limited, so on a busier or faster machine it
    may stop at a different plan of similar cost.
    """
    return plan_routes(
        stored.request,
        time_limit_s=time_limit_s or stored.time_limit_s,
        matrix_provider=fleet_from_dict(stored.fleet).provider,
        engine=_engine(stored.engine),
    )


# Stored for plans whose engine was left to plan_routes (see routing.solver.choose_engine).
AUTO_ENGINE = "auto"


def _engine(name: str) -> RefuseEngine | None:
    if name == AUTO_ENGINE:
        return None
    for engine in REFUSE_ENGINES:
        if engine == name:
            return engine
    raise RoutingError(f"unknown engine {name!r}; choose one of {', '.join(REFUSE_ENGINES)}")


Progress = Callable[[str], None]


def _quiet(_message: str) -> None:
    return None


@dataclass(frozen=True, slots=True)
class DayPlan:
    """A planned and stored day for one stream."""

    plan_id: str
    plan: Plan
    request: PlanRequest
    selection: Selection
    forecast_bins: int


def plan_day(
    conn: psycopg.Connection[Row],
    fleet: FleetConfig,
    plan_date: dt.date,
    *,
    stream: str,
    as_of: dt.datetime,
    time_limit_s: float,
    engine: str | None = None,
    urgent: Collection[str] = (),
    progress: Progress = _quiet,
) -> DayPlan:
    """Forecast the stream's bins from the store, select stops, plan, validate and store.

    ``as_of`` is the data cut-off (normally now; a past instant replays what was known then).
    ``progress`` receives one-line messages for a user watching a long solve.

    Raises
    ------
    FleetConfigError
        If the fleet has no trucks for ``stream``.
    RoutingError
        If the solver finds no plan at all, or ``engine`` is unknown.
    """
    chosen = _engine(engine or AUTO_ENGINE)
    fleet.stream(stream)  # fail before the slow part if the stream has no trucks
    progress(f"forecasting {stream} bins from readings before {as_of:%Y-%m-%d %H:%M %Z}")
    forecasts = forecast_from_store(conn, fleet, plan_date, stream=stream, as_of=as_of)
    selection = select_stops(forecasts, fleet, stream=stream, urgent=urgent)
    request = build_request(selection, fleet)
    provider = fleet.provider
    if isinstance(provider, RoadProvider):
        progress(snap_summary(provider.check_request(request)))
    progress(
        f"{len(forecasts)} bins forecast: {selection.must_collect} must-collect, "
        f"{len(selection.stops) - selection.must_collect} optional, {selection.left_out} left "
        f"out as low; planning {len(request.vehicles)} trucks for up to {time_limit_s:g} s "
        f"({chosen or choose_engine(request)})"
    )
    plan = plan_routes(request, time_limit_s=time_limit_s, matrix_provider=provider, engine=chosen)
    progress(
        f"solved in {plan.stats.model_build_s + plan.stats.search_s:.1f} s "
        f"({plan.stats.engine}); validator: "
        + ("no violations" if plan.is_valid else f"{len(plan.violations)} violation(s)")
    )
    plan_id = save_plan(
        conn,
        plan_date=plan_date,
        stream=stream,
        as_of=as_of,
        engine=engine or AUTO_ENGINE,
        time_limit_s=time_limit_s,
        request=request,
        plan=plan,
        selection=selection_to_dicts(selection),
        fleet=fleet.to_dict(),
    )
    return DayPlan(plan_id, plan, request, selection, len(forecasts))


def progress_at(
    stored: StoredPlan, at_s: int, *, out_of_service: Collection[str] = ()
) -> list[VehicleProgress]:
    """Where each vehicle is at ``at_s`` (seconds since local midnight) if it kept to plan.

    A vehicle is taken to be at its last stop departed by ``at_s``, with that stop's load,
    tips done so far and driving since its last break summed from the plan's legs. Vehicles
    still at the depot have no progress (they start from it).
    """
    fleet = fleet_from_dict(stored.fleet)
    bins = {b.id: b for b in stored.request.bins}
    states = []
    for route in stored.plan.routes:
        done = [s for s in route.stops[:-1] if s.departure_s <= at_s]
        if route.is_empty or not done:
            if route.vehicle_id in out_of_service:
                depot = route.stops[0]
                states.append(
                    VehicleProgress(
                        route.vehicle_id,
                        (),
                        depot.lat,
                        depot.lon,
                        at_s,
                        0.0,
                        0.0,
                        out_of_service=True,
                    )
                )
            continue
        last = done[-1]
        load_kg, load_l = last.load_kg, last.load_l
        if last.kind == "bin" and last.stop_id in bins:
            load_kg += bins[last.stop_id].weight_kg
            load_l += bins[last.stop_id].volume_l
        elif last.kind == "tip":
            load_kg = load_l = 0.0
        since_break = [s for s in done if s.kind != "break"]
        for index in range(len(done) - 1, -1, -1):
            if done[index].kind == "break":
                since_break = [s for s in done[index + 1 :] if s.kind != "break"]
                break
        points = [(s.lat, s.lon) for s in since_break]
        driving_s = 0
        if len(points) > 1:
            durations = fleet.provider.matrix(points).durations_s
            driving_s = int(sum(durations[i, i + 1] for i in range(len(points) - 1)))
        states.append(
            VehicleProgress(
                vehicle_id=route.vehicle_id,
                completed=tuple(done),
                lat=last.lat,
                lon=last.lon,
                time_s=max(at_s, last.departure_s),
                load_kg=min(load_kg, _capacity(stored, route.vehicle_id)[0]),
                load_l=min(load_l, _capacity(stored, route.vehicle_id)[1]),
                driving_since_break_s=driving_s,
                tip_trips_done=sum(1 for s in done if s.kind == "tip"),
                out_of_service=route.vehicle_id in out_of_service,
            )
        )
    return states


def _capacity(stored: StoredPlan, vehicle_id: str) -> tuple[float, float]:
    vehicle = next(v for v in stored.request.vehicles if v.id == vehicle_id)
    return vehicle.capacity_kg, vehicle.capacity_l


def _urgent_stops(
    conn: psycopg.Connection[Row], stored: StoredPlan, urgent: Collection[str]
) -> list[BinStop]:
    """Urgent bins as stops: those already offered keep their stop, others come from the
    registry and are taken to be full (someone reported them)."""
    offered = {b.id: b for b in stored.request.bins}
    fleet = fleet_from_dict(stored.fleet)
    stream_fleet = fleet.stream(stored.stream)
    missing = [bin_id for bin_id in urgent if bin_id not in offered]
    rows = {
        row["device_id"]: row
        for row in conn.execute(
            """SELECT device_id, lat, lon, waste_stream, capacity_l FROM devices
               WHERE kind = 'bin' AND device_id = ANY(%s)""",
            (missing,),
        ).fetchall()
    }
    stops = []
    for bin_id in urgent:
        if bin_id in offered:
            stops.append(offered[bin_id])
            continue
        row = rows.get(bin_id)
        if row is None:
            raise RoutingError(f"urgent bin {bin_id!r} is not a registered bin")
        if row["waste_stream"] != stored.stream:
            raise RoutingError(
                f"urgent bin {bin_id!r} holds {row['waste_stream']}, not {stored.stream}"
            )
        capacity = float(row["capacity_l"])
        weight_kg, volume_l = stream_fleet.load_of(OVERFLOW_PCT / 100.0 * capacity)
        stops.append(
            BinStop(
                bin_id,
                float(row["lat"]),
                float(row["lon"]),
                stored.stream,
                round(weight_kg, 1),
                round(volume_l, 1),
                service_s=fleet.service_s(capacity),
                must_collect=True,
            )
        )
    return stops


@dataclass(frozen=True, slots=True)
class StoredReplan:
    """A re-plan of a stored plan, itself stored with the original as its parent."""

    plan_id: str
    parent_id: str
    replan: Replan
    plan: Plan


def replan_stored(
    conn: psycopg.Connection[Row],
    plan_id: str,
    *,
    at_s: int,
    urgent: Sequence[str] = (),
    out_of_service: Collection[str] = (),
    progress: Sequence[VehicleProgress] | None = None,
    time_limit_s: float = 10.0,
) -> StoredReplan:
    """Re-solve the rest of a stored plan's day from ``at_s``; done stops stay as they were.

    ``progress`` is where the vehicles really are (from their trackers); without it each is
    taken to have kept to plan (:func:`progress_at`). ``urgent`` bins must be collected. The
    new plan is stored with the full-day routes (done stops, then the new remainder) and the
    remainder's request; its ``parent_id`` is ``plan_id``.
    """
    stored = load_plan(conn, plan_id)
    fleet = fleet_from_dict(stored.fleet)
    states = (
        list(progress)
        if progress is not None
        else progress_at(stored, at_s, out_of_service=out_of_service)
    )
    result = replan(
        stored.request,
        states,
        now_s=at_s,
        urgent_bins=_urgent_stops(conn, stored, urgent),
        time_limit_s=time_limit_s,
        matrix_provider=fleet.provider,
    )
    remainder = result.remainder
    full_day = Plan(result.routes, remainder.unserved, remainder.stats, remainder.violations)
    selection = [
        *stored.selection,
        *(
            {"bin_id": bin_id, "must_collect": True, "reason": "reported: collect today"}
            for bin_id in urgent
            if stored.reason_for(bin_id) is None
        ),
    ]
    new_id = save_plan(
        conn,
        plan_date=stored.plan_date,
        stream=stored.stream,
        as_of=dt.datetime.now(dt.UTC),
        engine=stored.engine,
        time_limit_s=time_limit_s,
        request=result.request,
        plan=full_day,
        selection=selection,
        fleet=stored.fleet,
        parent_id=stored.id,
    )
    return StoredReplan(new_id, stored.id, result, full_day)


def plan_summary(plan_id: str, plan: Plan, extra: dict[str, Any]) -> dict[str, Any]:
    """What a planner reads first: km, trucks, validity and the bins left unserved."""
    must_unserved = [u for u in plan.unserved if u.must_collect]
    return {
        "plan_id": plan_id,
        **extra,
        "engine": plan.stats.engine,
        "km": round(plan.distance_m / 1000, 2),
        "tip_trips": plan.tip_trips,
        "model_build_s": plan.stats.model_build_s,
        "search_s": plan.stats.search_s,
        "valid": plan.is_valid,
        "violations": list(plan.violations),
        "vehicles": [
            {
                "vehicle": r.vehicle_id,
                "bins": len(r.bin_ids),
                "km": round(r.distance_m / 1000, 2),
                "hours": round(r.duration_s / 3600, 2),
                "tip_trips": r.tip_trips,
                "breaks": sum(1 for s in r.stops if s.kind == "break"),
            }
            for r in plan.routes
        ],
        "unserved": [
            {"bin": u.bin_id, "must_collect": u.must_collect, "reason": u.reason}
            for u in plan.unserved
        ],
        "unserved_must_collect": len(must_unserved),
    }


def export_stored(stored: StoredPlan, fmt: str) -> str:
    """A stored plan as ``geojson``, ``gpx`` or ``csv`` text, times in the fleet's local time."""
    import json

    from routing.export import plan_to_csv, plan_to_geojson, plan_to_gpx

    fleet = fleet_from_dict(stored.fleet)
    offset = fleet.local_time(stored.plan_date, 0).utcoffset() or dt.timedelta(0)
    if fmt == "geojson":
        geojson = plan_to_geojson(stored.plan, plan_date=stored.plan_date, utc_offset=offset)
        text = json.dumps(geojson, indent=1)
    elif fmt == "gpx":
        text = plan_to_gpx(stored.plan, plan_date=stored.plan_date, utc_offset=offset)
    elif fmt == "csv":
        text = plan_to_csv(stored.plan)
    else:
        raise ValueError(f"unknown export format {fmt!r}: geojson, gpx or csv")
    return text if text.endswith("\n") else text + "\n"
