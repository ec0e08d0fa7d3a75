"""Domain values refuse nonsense on construction with messages that say what is wrong."""

from __future__ import annotations

import pytest

from routing.model import BinStop, PlanRequest, Site, TimeWindow, Vehicle, drop_penalty_for_fill
from tests.routing.conftest import DEPOT, TIP, make_bin, make_vehicle


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: TimeWindow(100, 50), "start <= end"),
        (lambda: Site("s", 91.0, 0.0), "latitude"),
        (lambda: Site("", 52.0, 0.0), "non-empty"),
        (lambda: make_bin(1, 0, 0, weight_kg=-1.0), "weight_kg"),
        (lambda: make_bin(1, 0, 0, uprn="12ab"), "UPRN"),
        (lambda: make_vehicle(capacity_kg=0.0), "capacity_kg"),
        (lambda: make_vehicle(initial_load_kg=5000.0), "initial_load_kg"),
    ],
)
def test_invalid_values_are_rejected(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_request_rejects_duplicate_ids_and_unknown_depots():
    bin_a = make_bin(1, 0, 0)
    with pytest.raises(ValueError, match="duplicate stop id"):
        PlanRequest((DEPOT,), (TIP,), (make_vehicle(),), (bin_a, bin_a))
    with pytest.raises(ValueError, match="unknown depot"):
        PlanRequest((DEPOT,), (TIP,), (make_vehicle(start_depot="elsewhere"),), (bin_a,))


def test_vehicle_route_limit_is_capped_by_the_shift():
    vehicle = Vehicle("v", "general", 4000, 25000, "depot", max_route_s=20 * 3600)
    assert vehicle.route_limit_s == 8 * 3600
    assert vehicle.end_depot_id == "depot"


def test_drop_penalty_grows_with_forecast_fill():
    assert drop_penalty_for_fill(0.0) == 0
    assert drop_penalty_for_fill(0.4) < drop_penalty_for_fill(0.6) < drop_penalty_for_fill(0.8)
    assert drop_penalty_for_fill(0.8, metres_at_threshold=1000) == 1000


def test_bin_defaults_are_optional_and_untimed():
    stop = BinStop("b", 52.6, -1.1, "general", 10.0, 20.0)
    assert not stop.must_collect
    assert stop.time_window is None
