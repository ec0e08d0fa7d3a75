"""Mid-shift re-planning keeps done work where it is and fits urgent bins into the rest."""

from __future__ import annotations

import pytest

from routing.replan import VehicleProgress, position_site_id, remainder_request, replan
from routing.solver import plan_routes
from tests.routing.conftest import make_bin, make_request, make_vehicle


@pytest.fixture(scope="module")
def morning():
    bins = [make_bin(i, 500.0 * (i % 4), 400.0 * (i // 4), weight_kg=150.0) for i in range(8)]
    request = make_request(bins, [make_vehicle("v1", capacity_kg=2000.0), make_vehicle("v2")])
    plan = plan_routes(request, time_limit_s=1.0)
    assert plan.violations == ()
    return request, plan


def progress_after(plan, vehicle_id, done_bins):
    route = plan.route_for(vehicle_id)
    stops = list(route.stops)
    last = max(i for i, s in enumerate(stops) if s.kind == "bin" and s.stop_id in done_bins[-1:])
    completed = tuple(stops[: last + 1])
    here = completed[-1]
    load = here.load_kg + 150.0
    return VehicleProgress(
        vehicle_id=vehicle_id,
        completed=completed,
        lat=here.lat,
        lon=here.lon,
        time_s=here.departure_s,
        load_kg=load,
        load_l=2 * load,
    )


def test_replan_keeps_done_work_and_serves_urgent_bins(morning):
    request, plan = morning
    busy = next(r for r in plan.routes if len(r.bin_ids) >= 3)
    done = list(busy.bin_ids[:2])
    progress = progress_after(plan, busy.vehicle_id, done)
    urgent = make_bin(900, 1200.0, -800.0, weight_kg=200.0, must_collect=False)

    result = replan(
        request, [progress], now_s=progress.time_s, urgent_bins=[urgent], time_limit_s=1.0
    )

    assert result.remainder.violations == ()
    remaining = {b for r in result.remainder.routes for b in r.bin_ids}
    assert not remaining & set(done), "done bins must not be planned again"
    assert "b900" in remaining, "urgent bins become must-collect"
    assert {b.id for b in request.bins} - set(done) <= remaining
    merged = next(r for r in result.routes if r.vehicle_id == busy.vehicle_id)
    assert merged.stops[: len(progress.completed)] == progress.completed
    assert all(s.arrival_s >= progress.time_s for s in merged.stops[len(progress.completed) :])


def test_remainder_request_starts_vehicles_where_they_are(morning):
    request, plan = morning
    busy = next(r for r in plan.routes if len(r.bin_ids) >= 3)
    progress = progress_after(plan, busy.vehicle_id, list(busy.bin_ids[:1]))
    remainder = remainder_request(request, [progress], now_s=progress.time_s)
    vehicle = next(v for v in remainder.vehicles if v.id == busy.vehicle_id)
    assert vehicle.start_depot == position_site_id(busy.vehicle_id)
    assert vehicle.end_depot_id == "depot"
    assert vehicle.shift.start_s == progress.time_s
    assert vehicle.initial_load_kg == progress.load_kg
    other = next(v for v in remainder.vehicles if v.id != busy.vehicle_id)
    assert other.shift.start_s >= progress.time_s


def test_out_of_service_vehicle_hands_its_bins_to_others(morning):
    request, plan = morning
    busy = next(r for r in plan.routes if len(r.bin_ids) >= 3)
    progress = progress_after(plan, busy.vehicle_id, list(busy.bin_ids[:1]))
    broken = VehicleProgress(**{**_fields(progress), "out_of_service": True})
    result = replan(request, [broken], now_s=progress.time_s, time_limit_s=1.0)
    assert result.remainder.violations == ()
    assert all(r.vehicle_id != busy.vehicle_id for r in result.remainder.routes)
    served = {b for r in result.remainder.routes for b in r.bin_ids}
    assert served == {b.id for b in request.bins} - {busy.bin_ids[0]}


def test_unknown_vehicle_progress_is_rejected(morning):
    request, _ = morning
    ghost = VehicleProgress("ghost", (), 52.6, -1.1, 8 * 3600, 0.0, 0.0)
    with pytest.raises(ValueError, match="unknown vehicles"):
        remainder_request(request, [ghost], now_s=8 * 3600)


def _fields(progress):
    return {name: getattr(progress, name) for name in progress.__slots__}
