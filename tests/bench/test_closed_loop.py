"""Closed-loop mechanics on a small town: crews empty what the plans visit, and nothing else."""

from __future__ import annotations

import datetime as dt
import itertools
import math

import pytest

from bench.closed_loop import (
    FIXED_MARGIN,
    FREQUENCIES,
    LoopConfig,
    build_town,
    road_town,
    scaled_fleet,
    simulate,
    size_round,
)
from device_sim.estate import TOWN_CENTRE
from device_sim.models import season_factor
from routing.fleet import load_fleet
from routing.matrix import haversine_m
from routing.network import read_osm
from routing.places import BUNDLED_EXTRACT, TOWNS
from routing.roads import RoadProvider

SMALL = LoopConfig(bins=30, days=3, warmup_days=7, solve_seconds=0.5)


@pytest.fixture(scope="module")
def dynamic():
    town = build_town(SMALL)
    return town, simulate(town, "dynamic", SMALL)


def planned_visits(result) -> list[tuple[str, int]]:
    return sorted(
        (stop.stop_id, day)
        for day, plan in enumerate(result.plans)
        for route in plan.routes
        for stop in route.stops
        if stop.kind == "bin"
    )


def test_crews_empty_exactly_the_bins_their_routes_visit(dynamic):
    town, result = dynamic
    start = dt.datetime.combine(SMALL.start, dt.time(), tzinfo=dt.UTC)
    collected = sorted((device_id, (eta - start).days) for device_id, eta in result.collections)
    assert collected == planned_visits(result)
    assert result.bins_collected == len(collected) > 0
    assert result.working_days == 3
    assert all(plan.is_valid for plan in result.plans)
    by_id = {b.device_id: b for b in town.bins}
    for device_id, eta in result.collections:
        readings = by_id[device_id]
        before = [f for t, f in zip(readings.ts, readings.fill_pct, strict=True) if t <= eta]
        after = [f for t, f in zip(readings.ts, readings.fill_pct, strict=True) if t > eta]
        # Emptied at the visit: the next reading is near empty (sensor noise aside).
        assert after[0] < 10.0
        assert before[-1] > after[0]


def test_dynamic_plans_take_every_bin_forecast_over_threshold(dynamic):
    _, result = dynamic
    assert result.km > 0
    assert result.must_unserved == 0
    # The first morning follows a week of the old weekly round: some bins are past 80 %.
    first = result.plans[0]
    assert sum(len(r.bin_ids) for r in first.routes) > 0
    assert result.mean_fill_at_collection_pct > 50.0


def test_weekly_round_visits_each_bin_on_its_weekday():
    town = build_town(SMALL)
    result = simulate(town, "weekly", SMALL)
    weekday_of = {b.device_id: b.model.collection_weekday for b in town.bins}
    assert all(eta.weekday() == weekday_of[device_id] for device_id, eta in result.collections)
    due = {b.device_id for b in town.bins if b.model.collection_weekday in (0, 1, 2)}
    assert {device_id for device_id, _ in result.collections} == due


def test_overflow_hours_count_bin_hours_at_or_over_full():
    saturday = LoopConfig(
        bins=5, days=1, warmup_days=0, solve_seconds=0.5, start=dt.date(2025, 11, 8)
    )
    town = build_town(saturday)
    for number, item in enumerate(town.bins):
        item.model.rate_pct_per_day = 0.0
        item.model.fill_pct = 105.0 if number < 2 else 50.0
    result = simulate(town, "dynamic", saturday)
    assert result.working_days == 0  # no crews at the weekend
    assert result.overflow_hours == pytest.approx(2 * 24.0)
    assert result.bins_collected == 0


def test_fixed_round_is_sized_from_each_bins_rate_and_laid_out_by_area():
    config = LoopConfig(bins=200, days=28, warmup_days=0, solve_seconds=0.5)
    town = build_town(config)
    slots = size_round(town, config.start, config.days)
    middle = config.start + dt.timedelta(days=14)
    gaps = dict(FREQUENCIES)
    names = [name for name, _ in FREQUENCIES]
    for item in town.bins:
        slot = slots[item.device_id]
        rate = item.model.rate_pct_per_day * season_factor(item.stream, middle) * FIXED_MARGIN
        if slot.frequency != names[-1]:
            assert rate * gaps[slot.frequency] <= 100.0  # never full between visits
        if slot.frequency != names[0]:  # and no less frequent choice would do
            less = names[names.index(slot.frequency) - 1]
            assert rate * gaps[less] > 100.0
    assert {s.frequency for s in slots.values()} >= {"fortnightly", "weekly", "twice weekly"}
    # By area: a weekday's weekly bins of one stream sit in one sector of the town.
    for stream in ("general", "recycling"):
        weekly = [
            b for b in town.bins if b.stream == stream and slots[b.device_id].frequency == "weekly"
        ]
        by_day: dict[int, list[float]] = {}
        for item in weekly:
            (day,) = slots[item.device_id].weekdays
            by_day.setdefault(day, []).append(
                math.atan2(item.lat - TOWN_CENTRE[0], (item.lon - TOWN_CENTRE[1]) * 0.6)
            )
        spans = sorted((min(v), max(v)) for v in by_day.values())
        assert len(spans) == 5
        assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans))  # sectors do not overlap


def test_fixed_round_lifts_every_bin_on_its_days_only():
    config = LoopConfig(bins=40, days=7, warmup_days=3, solve_seconds=0.3)
    town = build_town(config)
    result = simulate(town, "fixed", config)
    slots = size_round(town, config.start, config.days)
    lifted: dict[str, list[dt.date]] = {}
    for device_id, eta in result.collections:
        lifted.setdefault(device_id, []).append(eta.date())
    for item in town.bins:
        due = [
            config.start + dt.timedelta(days=d)
            for d in range(7)
            if slots[item.device_id].due(config.start + dt.timedelta(days=d))
        ]
        assert lifted.get(item.device_id, []) == due
    assert result.must_unserved == result.invalid_plans == 0
    assert result.truck_shifts == sum(1 for p in result.plans for r in p.routes if r.bin_ids)
    assert sum(result.round_sizes.values()) == 40


def test_dynamic_threshold_sets_every_bins_threshold_and_the_optional_level():
    config = LoopConfig(bins=30, days=1, warmup_days=7, solve_seconds=0.3)
    town = build_town(config)
    result = simulate(town, "dynamic", config, threshold_pct=90.0)
    assert {b.threshold_pct for b in town.bins} == {90.0}
    assert result.label == "dynamic 90 %"
    with pytest.raises(ValueError, match="dynamic policy only"):
        simulate(build_town(config), "fixed", config, threshold_pct=90.0)


def test_kept_fits_skip_bins_far_from_due_but_refit_collected_ones():
    config = LoopConfig(bins=30, days=3, warmup_days=7, solve_seconds=0.3, refit_margin_pct=10.0)
    result = simulate(build_town(config), "dynamic", config)
    assert 30 < result.fits < 30 * result.working_days
    assert result.must_unserved == result.invalid_plans == 0
    assert all(plan.is_valid for plan in result.plans)


@pytest.mark.slow
def test_road_town_plans_and_measures_every_day_on_oakhams_roads():
    config = LoopConfig(bins=40, days=2, warmup_days=7, solve_seconds=0.3, town="oakham")
    oakham = TOWNS["oakham"]
    roads = road_town(config, scaled_fleet(load_fleet(), config.bins))
    assert [d.id for d in roads.fleet.depots] == [oakham.depot_id]
    assert [t.id for t in roads.fleet.tips] == [oakham.tip_id]
    town = build_town(config, roads.places)
    assert town.centre == oakham.centre
    points = [(b.lat, b.lon) for b in town.bins]
    assert points == list(roads.places.bins)
    # Bins stand at the kerb of Oakham's streets, within the town.
    provider = RoadProvider.from_network(read_osm(BUNDLED_EXTRACT))
    assert max(s.distance_m for s in provider.snap(points)) < 15.0
    assert haversine_m([oakham.centre, *points])[0].max() < oakham.radius_m + 100.0
    result = simulate(town, "fixed", config, fleet=roads.fleet, travel=roads.travel)
    assert result.working_days == 2
    assert result.invalid_plans == result.must_unserved == 0
    # Each route's metres are the road metres between its stops, not the straight-line estimate.
    for plan in result.plans:
        for route in plan.routes:
            if not route.bin_ids:
                continue
            stops = [(s.lat, s.lon) for s in route.stops]
            road = provider.compute_matrix(stops)
            driven = sum(int(road.distances_m[i, i + 1]) for i in range(len(stops) - 1))
            assert route.distance_m == pytest.approx(driven, abs=len(stops))
            straight = haversine_m(stops)
            assert driven > sum(straight[i, i + 1] for i in range(len(stops) - 1))


def test_unknown_town_is_refused_with_the_known_ones():
    with pytest.raises(ValueError, match="unknown town 'atlantis'; known: oakham"):
        LoopConfig(town="atlantis")
