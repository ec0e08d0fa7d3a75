"""Stop selection from forecasts, and the fleet file it draws on (no database)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from forecast.bins import BinForecast
from routing.fleet import FleetConfigError, load_fleet
from routing.planning import SelectedStop, build_request, select_stops, visit_times

FLEET = load_fleet()


def forecast(device_id: str, at_visit: float, **extra: object) -> BinForecast:
    options: dict[str, object] = {
        "lat": 52.63,
        "lon": -1.13,
        "stream": "general",
        "capacity_l": 1100.0,
        "threshold_pct": 80.0,
        "fill_now_pct": min(at_visit, 60.0),
        "forecast_at_visit_pct": at_visit,
        "lo_pct": at_visit - 5,
        "hi_pct": at_visit + 5,
        "forecast_at_next_pct": at_visit + 10,
    }
    options.update(extra)
    return BinForecast(device_id, **options)


def selected(forecasts: list[BinForecast], **options: Any) -> dict[str, SelectedStop]:
    selection = select_stops(forecasts, FLEET, stream="general", **options)
    return {s.stop.id: s for s in selection.stops}


def test_default_fleet_matches_the_documented_defaults():
    general = FLEET.stream("general")
    assert (general.capacity_kg, general.capacity_l) == (4000.0, 25000.0)
    assert (FLEET.shift.start_s, FLEET.shift.end_s) == (7 * 3600, 15 * 3600)
    assert (FLEET.breaks.max_driving_s, FLEET.breaks.break_s) == (270 * 60, 45 * 60)
    assert FLEET.depots
    assert FLEET.tips
    assert len(FLEET.vehicles("general")) == general.trucks


def test_fleet_file_overrides_only_what_it_names(tmp_path: Path):
    path = tmp_path / "fleet.toml"
    path.write_text(
        '[shift]\nend = "14:30"\n\n[streams.food]\ntrucks = 2\ncapacity_kg = 3000\n'
        "capacity_l = 12000\ndensity_kg_per_l = 0.5\ncompaction_ratio = 1.5\n"
    )
    fleet = load_fleet(path)
    assert fleet.shift.end_s == 14 * 3600 + 1800
    assert fleet.shift.start_s == FLEET.shift.start_s
    assert [s.stream for s in fleet.streams] == ["food"]  # listing streams replaces ours
    assert fleet.depots == FLEET.depots


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[shift]\nstart = 'seven'\n", "HH:MM"),
        ("[streams.general]\ntrucks = 0\n", r"\[streams.general\] is missing capacity_kg"),
        ("[streams.general]\ntrucks = 2\nwheels = 6\n", "unknown key"),
        ("this is not toml", "not valid TOML"),
        ("[travel]\nspeed_kmh = -3\n", "speed_kmh"),
    ],
)
def test_bad_fleet_file_names_the_problem(tmp_path: Path, text: str, message: str):
    path = tmp_path / "fleet.toml"
    path.write_text(text)
    with pytest.raises(FleetConfigError, match=message):
        load_fleet(path)


def test_forecast_at_threshold_is_must_collect_and_lower_is_optional():
    stops = selected([forecast("full", 85.0), forecast("half", 65.0), forecast("low", 50.0)])
    assert stops["full"].stop.must_collect
    assert "threshold" in stops["full"].reason
    assert not stops["half"].stop.must_collect
    assert stops["half"].reason.startswith("optional")
    assert "low" not in stops  # below optional_min_pct: not offered


def test_fill_now_below_threshold_does_not_make_a_bin_must_collect():
    # 79 % now but forecast 82 % at the visit: the forecast decides, both ways.
    stops = selected(
        [
            forecast("rising", 82.0, fill_now_pct=70.0),
            forecast("will-be-emptied-later", 75.0, fill_now_pct=75.0, forecast_at_next_pct=90),
        ]
    )
    assert stops["rising"].stop.must_collect
    assert not stops["will-be-emptied-later"].stop.must_collect


def test_overflowing_or_overflowing_before_next_round_is_must_collect():
    stops = selected(
        [
            forecast("overflowing", 104.0, fill_now_pct=104.0, threshold_pct=100.0),
            forecast("weekend", 70.0, forecast_at_next_pct=101.0),
        ]
    )
    assert "overflowing now" in stops["overflowing"].reason
    assert stops["weekend"].stop.must_collect
    assert "next working day" in stops["weekend"].reason


def test_urgent_bin_is_must_collect_and_loaded_as_full():
    stops = selected([forecast("reported", 10.0)], urgent={"reported"})
    stop = stops["reported"].stop
    general = FLEET.stream("general")
    assert stop.must_collect
    assert stop.weight_kg == pytest.approx(1100 * general.density_kg_per_l, abs=0.1)


def test_stuck_sensor_is_offered_as_if_at_the_stuck_level():
    stops = selected([forecast("stuck", 5.0, stuck=True)])
    assert not stops["stuck"].stop.must_collect
    assert "stuck" in stops["stuck"].reason


def test_loads_follow_density_and_compaction_and_penalties_rise_with_fill():
    general = FLEET.stream("general")
    stops = selected([forecast("a", 64.0), forecast("b", 74.0)])
    a, b = stops["a"].stop, stops["b"].stop
    assert a.weight_kg == pytest.approx(0.64 * 1100 * general.density_kg_per_l, abs=0.1)
    assert a.volume_l == pytest.approx(0.64 * 1100 / general.compaction_ratio, abs=0.1)
    assert 0 < a.drop_penalty < b.drop_penalty
    assert a.service_s == 90  # a 1100 l communal bin


def test_other_streams_are_ignored_and_request_uses_the_streams_fleet():
    forecasts = [forecast("g", 90.0), forecast("r", 90.0, stream="recycling")]
    selection = select_stops(forecasts, FLEET, stream="recycling")
    request = build_request(selection, FLEET)
    assert [b.id for b in request.bins] == ["r"]
    assert {v.stream for v in request.vehicles} == {"recycling"}
    assert request.breaks == FLEET.breaks
    assert all(t.accepts("recycling") for t in request.tips)


def test_unknown_stream_is_a_fleet_error():
    with pytest.raises(FleetConfigError, match="no trucks configured for stream 'glass'"):
        select_stops([], FLEET, stream="glass")


def test_visit_times_are_shift_end_today_and_on_the_next_working_day():
    friday = dt.date(2025, 10, 24)
    today, following = visit_times(FLEET, friday)
    # 15:00 BST is 14:00 UTC; the following Monday is after the clocks go back (GMT).
    assert today == dt.datetime(2025, 10, 24, 14, 0, tzinfo=dt.UTC)
    assert following == dt.datetime(2025, 10, 27, 15, 0, tzinfo=dt.UTC)


def test_stop_forecast_rejects_non_finite_values():
    with pytest.raises(ValueError, match="finite"):
        dataclasses.replace(forecast("x", 50.0), forecast_at_visit_pct=float("nan"))


def test_default_engine_is_pyvrp_unless_a_tip_keeps_opening_hours():
    from routing.model import TimeWindow
    from routing.solver import DEFAULT_REFUSE_ENGINE, choose_engine

    request = build_request(select_stops([forecast("a", 90.0)], FLEET, stream="general"), FLEET)
    assert DEFAULT_REFUSE_ENGINE == "pyvrp"
    assert choose_engine(request) == "pyvrp"
    tips = tuple(dataclasses.replace(t, opening=TimeWindow.from_hours(8, 16)) for t in request.tips)
    assert choose_engine(dataclasses.replace(request, tips=tips)) == "hybrid"


def test_pyvrp_engine_counts_the_load_a_replanned_vehicle_already_carries():
    from routing.solver import plan_routes

    from .conftest import make_bin, make_request, make_vehicle

    bins = [make_bin(i, 300.0 * i, 200.0, weight_kg=100.0) for i in range(4)]
    nearly_full = make_vehicle(capacity_kg=1000.0, initial_load_kg=900.0, initial_load_l=900.0)
    plan = plan_routes(make_request(bins, [nearly_full]), time_limit_s=1.0, engine="pyvrp")
    assert plan.violations == ()
    assert plan.unserved == ()
    route = plan.route_for("v1")
    assert route is not None
    kinds = [s.kind for s in route.stops if s.kind in ("bin", "tip")]
    assert kinds.index("tip") < 3  # it must empty before the third bin fits
