"""A route's timetable: when each stop is reached and served, and where drivers' breaks fall.

Both engines' routes are reported through here or by the same rules: the drivers' hours rule
(:class:`~routing.model.BreakRule`) says how many breaks a shift needs and inserts one before a
leg that would take continuous driving past the limit.
"""

from __future__ import annotations

import math
from typing import Any

from routing.model import DisposalSite, PlannedStop, PlanRequest, Route

__all__ = ["required_breaks", "timed_route"]


def required_breaks(route_limit_s: int, max_driving_s: int, break_s: int) -> int:
    """Break intervals a route of ``route_limit_s`` may need under the drivers' hours rule."""
    if route_limit_s <= max_driving_s:
        return 0
    return math.ceil((route_limit_s - max_driving_s) / (max_driving_s + break_s))


def timed_route(
    request: PlanRequest,
    vehicle_index: int,
    sequence: list[str],
    final_tip: DisposalSite | None,
    travel: Any,
    location_of: dict[str, int],
    *,
    start_s: int | None,
) -> Route:
    """Schedule ``sequence`` (bin and tip ids) from the depot, inserting breaks as needed."""
    vehicle = request.vehicles[vehicle_index]
    rule = request.breaks
    bins = {b.id: b for b in request.bins}
    tips = {t.id: t for t in request.tips}
    depot = request.depot(vehicle.start_depot)
    clock = vehicle.shift.start_s if start_s is None else start_s
    here = location_of[depot.id]
    load_kg, load_l = vehicle.initial_load_kg, vehicle.initial_load_l
    driving = vehicle.driving_since_break_s
    distance = 0
    stops = [
        PlannedStop(depot.id, "depot", depot.lat, depot.lon, clock, clock, clock, load_kg, load_l)
    ]
    if sequence and final_tip is not None:
        sequence = [*sequence, final_tip.id]
    for stop_id in [*sequence, vehicle.end_depot_id]:
        target = location_of[stop_id]
        leg = int(travel.durations_s[here, target])
        if driving + leg > rule.max_driving_s:
            lat, lon = stops[-1].lat, stops[-1].lon
            stops.append(
                PlannedStop(
                    "break", "break", lat, lon, clock, clock, clock + rule.break_s, load_kg, load_l
                )
            )
            clock += rule.break_s
            driving = 0
        clock += leg
        driving += leg
        distance += int(travel.distances_m[here, target])
        here = target
        if stop_id in bins:
            stop = bins[stop_id]
            window = stop.time_window
            start = max(clock, window.start_s) if window else clock
            stops.append(
                PlannedStop(
                    stop_id,
                    "bin",
                    stop.lat,
                    stop.lon,
                    clock,
                    start,
                    start + stop.service_s,
                    load_kg,
                    load_l,
                )
            )
            clock = start + stop.service_s
            load_kg += stop.weight_kg
            load_l += stop.volume_l
        elif stop_id in tips:
            tip = tips[stop_id]
            stops.append(
                PlannedStop(
                    tip.id,
                    "tip",
                    tip.lat,
                    tip.lon,
                    clock,
                    clock,
                    clock + tip.unload_s,
                    load_kg,
                    load_l,
                )
            )
            clock += tip.unload_s
            load_kg = load_l = 0.0
        else:
            end = request.depot(stop_id)
            stops.append(
                PlannedStop(end.id, "depot", end.lat, end.lon, clock, clock, clock, load_kg, load_l)
            )
    if not sequence:
        stops = [stops[0], stops[-1]]
        distance = int(travel.distances_m[location_of[depot.id], location_of[vehicle.end_depot_id]])
    return Route(vehicle.id, tuple(stops), distance, stops[-1].arrival_s - stops[0].departure_s)
