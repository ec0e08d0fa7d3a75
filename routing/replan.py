"""Re-plan during the shift: new urgent bins, a breakdown, a slow morning.

Work already done stays done: completed stops are frozen as the head of each route, and only the
remainder is re-solved, from each vehicle's current position, time, load and driving since its
last break. The remainder is an ordinary :class:`~routing.model.PlanRequest` (each vehicle
starting at a one-off site where it is now), so the same solver and validator apply.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from routing.matrix import HaversineProvider, MatrixProvider, PathProvider
from routing.model import (
    BinStop,
    Plan,
    PlannedStop,
    PlanRequest,
    Route,
    Site,
    TimeWindow,
    Vehicle,
)
from routing.ortools_refuse import REFUSE_SEARCH
from routing.roads import with_street_paths
from routing.solver import plan_routes

__all__ = ["Replan", "VehicleProgress", "position_site_id", "remainder_request", "replan"]


@dataclass(frozen=True, slots=True)
class VehicleProgress:
    """Where a vehicle is now and what it has done since leaving the depot.

    ``completed`` are the stops done so far, in order (the start depot need not be listed).
    ``tip_trips_done`` counts tips already visited today.
    """

    vehicle_id: str
    completed: tuple[PlannedStop, ...]
    lat: float
    lon: float
    time_s: int
    load_kg: float
    load_l: float
    driving_since_break_s: int = 0
    tip_trips_done: int = 0
    out_of_service: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "completed", tuple(self.completed))
        if self.time_s < 0:
            raise ValueError(f"VehicleProgress {self.vehicle_id}: time_s must be >= 0")
        if self.load_kg < 0 or self.load_l < 0:
            raise ValueError(f"VehicleProgress {self.vehicle_id}: loads must be >= 0")


@dataclass(frozen=True, slots=True)
class Replan:
    """The re-solved remainder, the request it answers, and full-day routes (done + new)."""

    remainder: Plan
    request: PlanRequest
    routes: tuple[Route, ...]


def position_site_id(vehicle_id: str) -> str:
    return f"{vehicle_id}@now"


def remainder_request(
    request: PlanRequest,
    progress: Sequence[VehicleProgress],
    *,
    now_s: int,
    urgent_bins: Sequence[BinStop] = (),
) -> PlanRequest:
    """The request for what is left of the day after ``progress``.

    Completed bins are removed; ``urgent_bins`` are added (replacing any bin with the same id,
    e.g. one whose forecast jumped) and must be collected. Vehicles with progress start where
    they are now, with their load and remaining route time; the others may not leave before
    ``now_s``. Vehicles marked ``out_of_service`` are dropped.
    """
    by_vehicle = {p.vehicle_id: p for p in progress}
    unknown = set(by_vehicle) - {v.id for v in request.vehicles}
    if unknown:
        raise ValueError(f"progress for unknown vehicles: {', '.join(sorted(unknown))}")
    done = {s.stop_id for p in progress for s in p.completed if s.kind == "bin"}
    urgent = {b.id: dataclasses.replace(b, must_collect=True) for b in urgent_bins}
    bins = [b for b in request.bins if b.id not in done and b.id not in urgent]
    bins.extend(b for b in urgent.values() if b.id not in done)

    depots = list(request.depots)
    vehicles: list[Vehicle] = []
    for vehicle in request.vehicles:
        state = by_vehicle.get(vehicle.id)
        if state is None:
            start = max(now_s, vehicle.shift.start_s)
            if start >= vehicle.shift.end_s:
                continue
            vehicles.append(
                dataclasses.replace(vehicle, shift=TimeWindow(start, vehicle.shift.end_s))
            )
            continue
        if state.out_of_service or state.time_s >= vehicle.shift.end_s:
            continue
        site = Site(position_site_id(vehicle.id), state.lat, state.lon)
        depots.append(site)
        departed = state.completed[0].departure_s if state.completed else vehicle.shift.start_s
        elapsed = max(0, state.time_s - min(departed, state.time_s))
        remaining = max(1, vehicle.route_limit_s - elapsed)
        vehicles.append(
            dataclasses.replace(
                vehicle,
                start_depot=site.id,
                end_depot=vehicle.end_depot_id,
                shift=TimeWindow(max(state.time_s, vehicle.shift.start_s), vehicle.shift.end_s),
                max_route_s=remaining,
                max_tip_trips=max(0, vehicle.max_tip_trips - state.tip_trips_done),
                initial_load_kg=min(state.load_kg, vehicle.capacity_kg),
                initial_load_l=min(state.load_l, vehicle.capacity_l),
                driving_since_break_s=state.driving_since_break_s,
            )
        )
    if not vehicles:
        raise ValueError("no vehicle is left in service for the rest of the shift")
    return PlanRequest(
        depots=tuple(depots),
        tips=request.tips,
        vehicles=tuple(vehicles),
        bins=tuple(bins),
        breaks=request.breaks,
        return_empty=request.return_empty,
    )


def replan(
    request: PlanRequest,
    progress: Sequence[VehicleProgress],
    *,
    now_s: int,
    urgent_bins: Sequence[BinStop] = (),
    time_limit_s: float = 10.0,
    matrix_provider: MatrixProvider | None = None,
) -> Replan:
    """Re-solve the rest of the day; done stops are never moved or repeated."""
    provider = matrix_provider or HaversineProvider()
    remainder = remainder_request(request, progress, now_s=now_s, urgent_bins=urgent_bins)
    plan = plan_routes(
        remainder, time_limit_s=time_limit_s, matrix_provider=provider, search=REFUSE_SEARCH
    )
    by_vehicle = {p.vehicle_id: p for p in progress}
    routes: list[Route] = []
    for vehicle in request.vehicles:
        state = by_vehicle.get(vehicle.id)
        new = plan.route_for(vehicle.id)
        done = state.completed if state else ()
        if state is None:
            if new is not None:
                routes.append(new)
            continue
        # The remainder starts at the vehicle's current position, which is not a stop.
        tail = new.stops[1:] if new is not None else ()
        stops = (*done, *tail)
        done_points = [(s.lat, s.lon) for s in done] + [(state.lat, state.lon)]
        done_m = 0
        if len(done_points) > 1:
            distances = provider.matrix(done_points).distances_m
            done_m = int(sum(distances[i, i + 1] for i in range(len(done_points) - 1)))
        total_m = done_m + (new.distance_m if new is not None else 0)
        duration = stops[-1].arrival_s - stops[0].departure_s if stops else 0
        routes.append(Route(vehicle.id, stops, total_m, max(0, duration)))
    if isinstance(provider, PathProvider):
        return Replan(plan, remainder, with_street_paths(routes, provider))
    return Replan(plan, remainder, tuple(routes))
