"""Re-check a plan against its request without trusting the solver.

Everything is recomputed from the request and a travel matrix: loads (by weight and volume,
reset at tips), arrival times, time windows, shifts and route length, drivers' breaks (driving
time is summed leg by leg, so service and waiting never count as a rest), coverage of bins and
the unserved list. A solver bug, a hand-edited plan or a stale re-plan all show up here as
violations rather than as a crew that cannot do its round.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

from routing.matrix import HaversineProvider, MatrixProvider, TravelMatrix
from routing.model import (
    BinStop,
    DisposalSite,
    Plan,
    PlannedStop,
    PlanRequest,
    Route,
    Site,
    Vehicle,
    Violation,
)

__all__ = ["Violation", "validate_plan"]

# Reported times are whole seconds and loads may be rounded for display.
TIME_TOLERANCE_S: Final = 1
LOAD_TOLERANCE: Final = 0.5


def _places(request: PlanRequest) -> tuple[list[tuple[float, float]], dict[str, int]]:
    points: list[tuple[float, float]] = []
    location_of: dict[str, int] = {}
    places: list[Site | DisposalSite | BinStop] = [*request.depots, *request.tips, *request.bins]
    for place in places:
        location_of[place.id] = len(points)
        points.append((place.lat, place.lon))
    return points, location_of


def validate_plan(
    request: PlanRequest,
    plan: Plan,
    *,
    provider: MatrixProvider | None = None,
    matrix: TravelMatrix | None = None,
    points: Sequence[tuple[float, float]] | None = None,
) -> list[Violation]:
    """Return every rule ``plan`` breaks for ``request``; an empty list means valid.

    Travel times come from ``matrix`` over ``points`` when given (the solver passes the one it
    used, so the two agree on distances), else from ``provider`` (default haversine).
    """
    if matrix is None or points is None:
        points, _ = _places(request)
        matrix = (provider or HaversineProvider()).matrix(points)
    location_by_point = {point: i for i, point in enumerate(points)}
    bins = {b.id: b for b in request.bins}
    tips = {t.id: t for t in request.tips}
    vehicles = {v.id: v for v in request.vehicles}
    violations: list[Violation] = []
    visits: dict[str, str] = {}

    for route in plan.routes:
        vehicle = vehicles.get(route.vehicle_id)
        if vehicle is None:
            violations.append(
                Violation(
                    "unknown_vehicle",
                    f"route for unknown vehicle {route.vehicle_id!r}",
                    route.vehicle_id,
                )
            )
            continue
        checker = _RouteChecker(
            request=request,
            vehicle=vehicle,
            route=route,
            matrix=matrix,
            location_by_point=location_by_point,
            bins=bins,
            tips=tips,
        )
        violations.extend(checker.check())
        for stop in route.stops:
            if stop.kind != "bin":
                continue
            if stop.stop_id in visits:
                violations.append(
                    Violation(
                        "duplicate_visit",
                        f"bin {stop.stop_id} visited twice (vehicles "
                        f"{visits[stop.stop_id]} and {vehicle.id})",
                        vehicle.id,
                        stop.stop_id,
                    )
                )
            visits[stop.stop_id] = vehicle.id

    unserved = {u.bin_id: u for u in plan.unserved}
    for bin_id, entry in unserved.items():
        if bin_id in visits:
            violations.append(
                Violation(
                    "unserved_but_visited",
                    f"bin {bin_id} is listed unserved but visited",
                    visits[bin_id],
                    bin_id,
                )
            )
        if not entry.reason.strip():
            violations.append(
                Violation(
                    "unserved_without_reason",
                    f"bin {bin_id} is unserved without a reason",
                    None,
                    bin_id,
                )
            )
    for candidate in request.bins:
        if candidate.must_collect and candidate.id not in visits and candidate.id not in unserved:
            violations.append(
                Violation(
                    "must_collect_missing",
                    f"must-collect bin {candidate.id} is neither visited nor listed unserved",
                    None,
                    candidate.id,
                )
            )
    return violations


class _RouteChecker:
    def __init__(
        self,
        *,
        request: PlanRequest,
        vehicle: Vehicle,
        route: Route,
        matrix: TravelMatrix,
        location_by_point: Mapping[tuple[float, float], int],
        bins: Mapping[str, BinStop],
        tips: Mapping[str, DisposalSite],
    ) -> None:
        self.request = request
        self.vehicle = vehicle
        self.route = route
        self.matrix = matrix
        self.location_by_point = location_by_point
        self.bins = bins
        self.tips = tips
        self.found: list[Violation] = []

    def _add(self, kind: str, message: str, stop: PlannedStop | None = None) -> None:
        self.found.append(
            Violation(
                kind,
                f"vehicle {self.vehicle.id}: {message}",
                self.vehicle.id,
                stop.stop_id if stop else None,
            )
        )

    def _location(self, stop: PlannedStop, previous: int | None = None) -> int | None:
        place: Site | DisposalSite | BinStop | None
        if stop.kind == "break":
            # A break happens where the crew is: at the stop before or after it.
            return self.location_by_point.get((stop.lat, stop.lon), previous)
        if stop.kind == "bin":
            place = self.bins.get(stop.stop_id)
        elif stop.kind == "tip":
            place = self.tips.get(stop.stop_id)
        else:
            place = next((d for d in self.request.depots if d.id == stop.stop_id), None)
        if place is None:
            self._add("unknown_stop", f"unknown {stop.kind} {stop.stop_id!r}", stop)
            return None
        return self.location_by_point.get((place.lat, place.lon))

    def check(self) -> list[Violation]:
        stops = self.route.stops
        if not stops:
            self._add("empty_route", "route has no stops at all")
            return self.found
        self._check_ends(stops)
        self._check_times(stops)
        self._check_loads(stops)
        self._check_breaks(stops)
        return self.found

    def _check_ends(self, stops: Sequence[PlannedStop]) -> None:
        first, last = stops[0], stops[-1]
        if first.kind != "depot" or first.stop_id != self.vehicle.start_depot:
            self._add("wrong_start", f"starts at {first.stop_id}, not {self.vehicle.start_depot}")
        if last.kind != "depot" or last.stop_id != self.vehicle.end_depot_id:
            self._add("wrong_end", f"ends at {last.stop_id}, not {self.vehicle.end_depot_id}")
        for stop in stops[1:-1]:
            if stop.kind == "depot":
                self._add("depot_mid_route", f"passes depot {stop.stop_id} mid-route", stop)

    def _check_times(self, stops: Sequence[PlannedStop]) -> None:
        shift = self.vehicle.shift
        if stops[0].departure_s < shift.start_s:
            self._add("before_shift", f"leaves at {stops[0].departure_s} s, before the shift")
        if stops[-1].arrival_s > shift.end_s:
            self._add("after_shift", f"returns at {stops[-1].arrival_s} s, after the shift")
        duration = stops[-1].arrival_s - stops[0].departure_s
        if duration > self.vehicle.route_limit_s:
            self._add(
                "route_too_long", f"route takes {duration} s > limit {self.vehicle.route_limit_s} s"
            )
        if self.route.tip_trips > self.vehicle.max_tip_trips:
            self._add(
                "too_many_tip_trips",
                f"{self.route.tip_trips} tip trips > {self.vehicle.max_tip_trips}",
            )

        previous_location = self._location(stops[0])
        previous = stops[0]
        for stop in stops[1:]:
            location = self._location(stop, previous_location)
            if location is not None and previous_location is not None:
                travel = int(self.matrix.durations_s[previous_location, location])
                if stop.arrival_s + TIME_TOLERANCE_S < previous.departure_s + travel:
                    self._add(
                        "too_fast",
                        f"reaches {stop.stop_id} at {stop.arrival_s} s but cannot before "
                        f"{previous.departure_s + travel} s",
                        stop,
                    )
            needed = self._service_s(stop)
            if stop.departure_s - stop.start_s + TIME_TOLERANCE_S < needed:
                self._add(
                    "short_service",
                    f"{stop.kind} {stop.stop_id} lasts {stop.departure_s - stop.start_s} s "
                    f"< {needed} s",
                    stop,
                )
            window = None
            if stop.kind == "bin" and stop.stop_id in self.bins:
                window = self.bins[stop.stop_id].time_window
                stream = self.bins[stop.stop_id].stream
                if stream != self.vehicle.stream:
                    self._add(
                        "wrong_stream",
                        f"collects {stream} bin {stop.stop_id} on a {self.vehicle.stream} vehicle",
                        stop,
                    )
            elif stop.kind == "tip" and stop.stop_id in self.tips:
                tip = self.tips[stop.stop_id]
                window = tip.opening
                if not tip.accepts(self.vehicle.stream):
                    self._add(
                        "wrong_tip", f"tip {tip.id} does not take {self.vehicle.stream}", stop
                    )
            if window is not None and not window.contains(stop.start_s):
                self._add(
                    "time_window",
                    f"{stop.kind} {stop.stop_id} served at {stop.start_s} s outside "
                    f"[{window.start_s}, {window.end_s}]",
                    stop,
                )
            previous = stop
            previous_location = location

    def _service_s(self, stop: PlannedStop) -> int:
        if stop.kind == "bin" and stop.stop_id in self.bins:
            return self.bins[stop.stop_id].service_s
        if stop.kind == "tip" and stop.stop_id in self.tips:
            return self.tips[stop.stop_id].unload_s
        if stop.kind == "break":
            return self.request.breaks.break_s
        return 0

    def _check_loads(self, stops: Sequence[PlannedStop]) -> None:
        vehicle = self.vehicle
        load_kg, load_l = vehicle.initial_load_kg, vehicle.initial_load_l
        for stop in stops:
            if (
                abs(stop.load_kg - load_kg) > LOAD_TOLERANCE
                or abs(stop.load_l - load_l) > LOAD_TOLERANCE
            ):
                self._add(
                    "load_mismatch",
                    f"reports {stop.load_kg:.0f} kg/{stop.load_l:.0f} l on arrival at "
                    f"{stop.stop_id}, recomputed {load_kg:.0f} kg/{load_l:.0f} l",
                    stop,
                )
            if stop.kind == "bin" and stop.stop_id in self.bins:
                load_kg += self.bins[stop.stop_id].weight_kg
                load_l += self.bins[stop.stop_id].volume_l
                if load_kg > vehicle.capacity_kg + LOAD_TOLERANCE:
                    self._add(
                        "capacity_kg",
                        f"carries {load_kg:.0f} kg > {vehicle.capacity_kg:.0f} kg after "
                        f"{stop.stop_id}",
                        stop,
                    )
                if load_l > vehicle.capacity_l + LOAD_TOLERANCE:
                    self._add(
                        "capacity_l",
                        f"carries {load_l:.0f} l > {vehicle.capacity_l:.0f} l after {stop.stop_id}",
                        stop,
                    )
            elif stop.kind == "tip":
                load_kg = load_l = 0.0
        if self.request.return_empty and (load_kg > LOAD_TOLERANCE or load_l > LOAD_TOLERANCE):
            self._add(
                "not_empty_at_end",
                f"returns to depot with {load_kg:.0f} kg/{load_l:.0f} l on board",
            )

    def _check_breaks(self, stops: Sequence[PlannedStop]) -> None:
        rule = self.request.breaks
        driving = self.vehicle.driving_since_break_s
        previous_location = self._location(stops[0])
        for stop in stops[1:]:
            location = self._location(stop, previous_location)
            if location is not None and previous_location is not None:
                driving += int(self.matrix.durations_s[previous_location, location])
            if stop.kind == "break" and (
                stop.departure_s - stop.start_s + TIME_TOLERANCE_S >= rule.break_s
            ):
                driving = 0
            if driving > rule.max_driving_s:
                self._add(
                    "drivers_hours",
                    f"drives {driving} s without a {rule.break_s} s break before "
                    f"{stop.stop_id} (limit {rule.max_driving_s} s)",
                    stop,
                )
                driving = 0  # report each overrun once
            previous_location = location
