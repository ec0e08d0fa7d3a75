"""The validator catches hand-broken plans: it must fail when a rule is broken."""

from __future__ import annotations

import dataclasses

import pytest

from routing.model import Plan, PlannedStop, Route, TimeWindow, Unserved
from routing.solver import plan_routes
from routing.validate import validate_plan
from tests.routing.conftest import make_bin, make_request, make_vehicle


@pytest.fixture(scope="module")
def solved():
    bins = [make_bin(i, 400.0 * i, 300.0 * (i % 3), weight_kg=300.0) for i in range(6)]
    request = make_request(bins, [make_vehicle(capacity_kg=1000.0)])
    plan = plan_routes(request, time_limit_s=1.0)
    assert plan.violations == ()
    return request, plan


def with_stops(plan: Plan, stops) -> Plan:
    route = dataclasses.replace(plan.routes[0], stops=tuple(stops))
    return dataclasses.replace(plan, routes=(route, *plan.routes[1:]))


def kinds(violations):
    return {v.kind for v in violations}


def test_solved_plan_is_valid(solved):
    request, plan = solved
    assert validate_plan(request, plan) == []


def test_removing_tips_breaks_capacity(solved):
    request, plan = solved
    stops = [s for s in plan.routes[0].stops if s.kind != "tip"]
    # Keep the reported loads consistent with no tips so only capacity is at issue.
    load = 0.0
    relabelled = []
    weights = {b.id: b.weight_kg for b in request.bins}
    for stop in stops:
        relabelled.append(dataclasses.replace(stop, load_kg=load, load_l=2 * load))
        if stop.kind == "bin":
            load += weights[stop.stop_id]
    found = kinds(validate_plan(request, with_stops(plan, relabelled)))
    assert "capacity_kg" in found
    assert "not_empty_at_end" in found


def test_visiting_a_bin_twice_is_caught(solved):
    request, plan = solved
    stops = list(plan.routes[0].stops)
    first_bin = next(i for i, s in enumerate(stops) if s.kind == "bin")
    duplicate = dataclasses.replace(stops[first_bin], load_kg=stops[first_bin + 1].load_kg)
    stops.insert(first_bin + 1, duplicate)
    assert "duplicate_visit" in kinds(validate_plan(request, with_stops(plan, stops)))


def test_dropping_a_must_collect_bin_silently_is_caught(solved):
    request, plan = solved
    missing = plan.routes[0].bin_ids[-1]
    stops = [s for s in plan.routes[0].stops if s.stop_id != missing]
    found = validate_plan(request, with_stops(plan, stops))
    assert any(v.kind == "must_collect_missing" and v.stop_id == missing for v in found)
    # Listing it as unserved with a reason is acceptable.
    listed = dataclasses.replace(
        with_stops(plan, stops), unserved=(Unserved(missing, True, "road closed"),)
    )
    assert "must_collect_missing" not in kinds(validate_plan(request, listed))


def test_teleporting_is_caught(solved):
    request, plan = solved
    stops = list(plan.routes[0].stops)
    index = next(i for i, s in enumerate(stops) if s.kind == "bin" and i > 1)
    early = stops[index - 1].departure_s
    stops[index] = dataclasses.replace(stops[index], arrival_s=early, start_s=early)
    assert "too_fast" in kinds(validate_plan(request, with_stops(plan, stops)))


def test_time_window_and_shift_violations_are_caught(solved):
    request, plan = solved
    windowed = [
        dataclasses.replace(b, time_window=TimeWindow.from_hours(5, 6)) if i == 0 else b
        for i, b in enumerate(request.bins)
    ]
    late_request = dataclasses.replace(request, bins=tuple(windowed))
    assert "time_window" in kinds(validate_plan(late_request, plan))

    short_shift = dataclasses.replace(
        request, vehicles=(make_vehicle(capacity_kg=1000.0, shift=TimeWindow.from_hours(7, 8)),)
    )
    assert "after_shift" in kinds(validate_plan(short_shift, plan))


def test_driving_without_a_break_is_caught():
    # Two bins 45 km out: the crew would drive about 5.5 h without stopping.
    bins = [make_bin(0, 45_000.0, 0.0), make_bin(1, 45_000.0, 10_000.0)]
    vehicle = make_vehicle(shift=TimeWindow.from_hours(5, 20))
    request = make_request(bins, [vehicle])
    clock = 5 * 3600
    stops = [PlannedStop("depot", "depot", *_latlon(request, "depot"), clock, clock, clock, 0, 0)]
    from routing.matrix import HaversineProvider

    provider = HaversineProvider()
    previous = "depot"
    load = 0.0
    for stop_id in ("b0", "b1", "tip", "depot"):
        matrix = provider.matrix([_latlon(request, previous), _latlon(request, stop_id)])
        clock += int(matrix.durations_s[0, 1])
        service = {"b0": 60, "b1": 60, "tip": 600}.get(stop_id, 0)
        kind = {"tip": "tip", "depot": "depot"}.get(stop_id, "bin")
        stops.append(
            PlannedStop(
                stop_id,
                kind,
                *_latlon(request, stop_id),
                clock,
                clock,
                clock + service,
                load,
                2 * load,
            )
        )
        load = 0.0 if kind == "tip" else load + 50.0
        clock += service
        previous = stop_id
    route = Route("v1", tuple(stops), 0, clock - 5 * 3600)
    plan = Plan((route,), (), _stats())
    assert "drivers_hours" in kinds(validate_plan(request, plan))

    # The same day with a 45-minute break at b1, about 2.9 h in, is legal.
    at = next(i for i, s in enumerate(stops) if s.stop_id == "b1")
    rest_start = stops[at].departure_s
    shifted = [*stops[: at + 1]]
    shifted.append(
        PlannedStop(
            "break",
            "break",
            stops[at].lat,
            stops[at].lon,
            rest_start,
            rest_start,
            rest_start + 2700,
            50,
            100,
        )
    )
    shifted += [
        dataclasses.replace(
            s,
            arrival_s=s.arrival_s + 2700,
            start_s=s.start_s + 2700,
            departure_s=s.departure_s + 2700,
        )
        for s in stops[at + 1 :]
    ]
    legal = Plan((Route("v1", tuple(shifted), 0, 0),), (), _stats())
    assert "drivers_hours" not in kinds(validate_plan(request, legal))


def _latlon(request, stop_id):
    for place in (*request.depots, *request.tips, *request.bins):
        if place.id == stop_id:
            return place.lat, place.lon
    raise KeyError(stop_id)


def _stats():
    from routing.model import SolverStats

    return SolverStats("hand", "hand", 0.0, 0.0)
