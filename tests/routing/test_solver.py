"""The OR-Tools refuse model on tiny instances, each checked by the independent validator."""

from __future__ import annotations

import time

import pytest

from routing.model import BreakRule, DisposalSite, Site, TimeWindow
from routing.schedule import required_breaks
from routing.solver import plan_routes
from routing.validate import validate_plan
from tests.routing.conftest import (
    DEPOT,
    SHIFT_6_TO_18,
    make_bin,
    make_request,
    make_vehicle,
    offset,
)


def loads_after_each_bin(route, bins):
    """Recompute the load after every bin from the request, resetting at tips."""
    weights = {b.id: b.weight_kg for b in bins}
    load, after = 0.0, []
    for stop in route.stops:
        if stop.kind == "tip":
            load = 0.0
        elif stop.kind == "bin":
            load += weights[stop.stop_id]
            after.append(load)
    return after


def test_capacity_forces_a_mid_route_tip_trip(ring_of_bins):
    bins = ring_of_bins(6, 800.0, weight_kg=300.0)
    request = make_request(bins, [make_vehicle(capacity_kg=1000.0)])

    plan = plan_routes(request, time_limit_s=1.0)

    assert plan.violations == ()
    assert plan.unserved == ()
    route = plan.route_for("v1")
    assert route is not None
    assert sorted(route.bin_ids) == sorted(b.id for b in bins)
    # 1800 kg on a 1000 kg truck: one tip mid-route and one before returning.
    assert route.tip_trips >= 2
    assert max(loads_after_each_bin(route, bins)) <= 1000.0
    kinds = [s.kind for s in route.stops]
    assert kinds[0] == "depot"
    assert kinds[-2:] == ["tip", "depot"]


def test_volume_capacity_also_forces_tips(ring_of_bins):
    bins = ring_of_bins(4, 600.0, weight_kg=10.0, volume_l=4000.0)
    request = make_request(bins, [make_vehicle(capacity_l=9000.0)])

    plan = plan_routes(request, time_limit_s=1.0)

    assert plan.violations == ()
    route = plan.route_for("v1")
    assert route is not None
    assert len(route.bin_ids) == 4
    assert route.tip_trips >= 2
    for stop in route.stops:
        assert stop.load_l <= 9000.0


def test_break_is_inserted_when_driving_exceeds_four_and_a_half_hours(ring_of_bins):
    # Eight bins on a 12 km ring: ~97 km as the crow flies, ~126 km by road, ~5 h at 25 km/h.
    bins = ring_of_bins(8, 12_000.0, weight_kg=20.0)
    far_tip = DisposalSite("tip", *offset(0, 0), unload_s=600)
    request = make_request(
        bins,
        [make_vehicle(shift=SHIFT_6_TO_18)],
        tips=(far_tip,),
        depots=(Site("depot", *offset(0, 0)),),
    )

    plan = plan_routes(request, time_limit_s=2.0)

    assert plan.violations == ()
    route = plan.route_for("v1")
    assert route is not None
    assert len(route.bin_ids) == 8
    breaks = [s for s in route.stops if s.kind == "break"]
    assert breaks, "a route with more than 4.5 h of driving needs a break"
    assert all(b.departure_s - b.start_s >= 45 * 60 for b in breaks)


def test_short_route_needs_no_break(ring_of_bins):
    request = make_request(ring_of_bins(5, 500.0))
    plan = plan_routes(request, time_limit_s=1.0)
    route = plan.route_for("v1")
    assert route is not None
    assert route.duration_s < 4.5 * 3600
    assert not [s for s in route.stops if s.kind == "break"]


def test_all_must_collect_bins_are_served_across_two_depots_and_vehicles(ring_of_bins):
    bins = ring_of_bins(20, 2500.0, weight_kg=400.0)
    east = Site("east-depot", *offset(0, 4000))
    vehicles = [
        make_vehicle("v1", capacity_kg=2000.0),
        make_vehicle("v2", capacity_kg=2000.0, start_depot="east-depot"),
    ]
    request = make_request(bins, vehicles, depots=(DEPOT, east))

    plan = plan_routes(request, time_limit_s=2.0)

    assert plan.violations == ()
    served = sorted(i for r in plan.routes for i in r.bin_ids)
    assert served == sorted(b.id for b in bins)
    for route in plan.routes:
        vehicle = next(v for v in vehicles if v.id == route.vehicle_id)
        assert route.stops[0].stop_id == vehicle.start_depot
        assert route.stops[-1].stop_id == vehicle.end_depot_id


def test_streams_only_go_on_their_own_vehicles(ring_of_bins):
    general = ring_of_bins(4, 700.0)
    recycling = [make_bin(100 + i, 300.0 * i, -300.0, stream="recycling") for i in range(4)]
    vehicles = [make_vehicle("general-1"), make_vehicle("recycling-1", stream="recycling")]

    plan = plan_routes(make_request(general + recycling, vehicles), time_limit_s=1.0)

    assert plan.violations == ()
    general_route = plan.route_for("general-1")
    recycling_route = plan.route_for("recycling-1")
    assert general_route is not None
    assert recycling_route is not None
    assert set(general_route.bin_ids) == {b.id for b in general}
    assert set(recycling_route.bin_ids) == {b.id for b in recycling}


def test_time_windows_are_respected(ring_of_bins):
    bins = ring_of_bins(6, 1000.0)
    window = TimeWindow.from_hours(10, 10.5)
    bins[2] = make_bin(2, 0.0, 1000.0, time_window=window)
    plan = plan_routes(make_request(bins), time_limit_s=1.0)

    assert plan.violations == ()
    stop = next(s for r in plan.routes for s in r.stops if s.stop_id == "b2")
    assert window.start_s <= stop.start_s <= window.end_s


def test_cheap_optional_bins_are_dropped_and_reported(ring_of_bins):
    bins = ring_of_bins(4, 500.0)
    far = make_bin(99, 20_000.0, 20_000.0, must_collect=False, drop_penalty=100)
    plan = plan_routes(make_request([*bins, far]), time_limit_s=1.0)

    assert plan.violations == ()
    assert [u.bin_id for u in plan.unserved] == ["b99"]
    assert not plan.unserved[0].must_collect
    assert "optional" in plan.unserved[0].reason


def test_impossible_bins_are_unserved_with_reasons(ring_of_bins):
    bins = ring_of_bins(3, 500.0)
    no_fleet = make_bin(50, 100.0, 100.0, stream="garden")
    too_heavy = make_bin(51, 200.0, 200.0, weight_kg=9000.0)
    plan = plan_routes(make_request([*bins, no_fleet, too_heavy]), time_limit_s=1.0)

    reasons = {u.bin_id: u.reason for u in plan.unserved}
    assert "garden" in reasons["b50"]
    assert "capacity" in reasons["b51"]
    assert plan.violations == ()


def test_validator_agrees_with_an_independent_matrix(ring_of_bins):
    request = make_request(
        ring_of_bins(8, 1500.0, weight_kg=700.0), [make_vehicle(capacity_kg=2000.0)]
    )
    began = time.perf_counter()
    plan = plan_routes(request, time_limit_s=1.0)
    elapsed = time.perf_counter() - began
    # Recomputed from the request alone, with a fresh haversine matrix.
    assert validate_plan(request, plan) == []
    # The stats time the two phases of this call, in seconds (each rounded to 1 ms).
    assert plan.stats.search_s > 0
    assert plan.stats.model_build_s + plan.stats.search_s <= elapsed + 0.002


@pytest.mark.parametrize(
    ("limit_h", "expected"), [(4.0, 0), (4.5, 0), (8.0, 1), (9.75, 1), (10.0, 2)]
)
def test_required_breaks(limit_h, expected):
    rule = BreakRule()
    assert required_breaks(round(limit_h * 3600), rule.max_driving_s, rule.break_s) == expected


@pytest.mark.parametrize(
    ("engine", "reported"),
    [
        ("ortools", {"ortools"}),
        # The hybrid keeps whichever of its two candidates is better, and says which.
        ("hybrid", {"hybrid:ortools", "hybrid:pyvrp"}),
        ("pyvrp", {"pyvrp"}),
    ],
)
def test_every_refuse_engine_serves_all_must_collect_bins(ring_of_bins, engine, reported):
    bins = ring_of_bins(12, 1500.0, weight_kg=300.0)
    request = make_request(bins, [make_vehicle(capacity_kg=1500.0)])
    plan = plan_routes(request, time_limit_s=1.0, engine=engine)
    assert plan.violations == ()
    assert plan.unserved == ()
    assert plan.stats.engine in reported
