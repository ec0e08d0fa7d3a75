"""Tiny refuse-collection requests around Leicester city centre for the routing tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from routing.model import BinStop, DisposalSite, PlanRequest, Site, TimeWindow, Vehicle

DATA = Path(__file__).parent / "data"
CENTRE = (52.6300, -1.1300)


def offset(north_m: float, east_m: float) -> tuple[float, float]:
    """A point ``north_m`` north and ``east_m`` east of the centre (flat-earth is fine here)."""
    return CENTRE[0] + north_m / 111_320.0, CENTRE[1] + east_m / 67_700.0


def make_bin(
    number: int, north_m: float, east_m: float, *, weight_kg: float = 50.0, **extra: object
) -> BinStop:
    lat, lon = offset(north_m, east_m)
    options: dict[str, object] = {
        "stream": "general",
        "volume_l": weight_kg * 2,
        "service_s": 60,
        "must_collect": True,
    }
    options.update(extra)
    return BinStop(f"b{number}", lat, lon, weight_kg=weight_kg, **options)


def make_vehicle(vehicle_id: str = "v1", **extra: object) -> Vehicle:
    options: dict[str, object] = {
        "stream": "general",
        "capacity_kg": 4000.0,
        "capacity_l": 25000.0,
        "start_depot": "depot",
    }
    options.update(extra)
    return Vehicle(vehicle_id, **options)


DEPOT = Site("depot", *offset(-1500, -2000))
TIP = DisposalSite("tip", *offset(1000, 3000), unload_s=600)


def make_request(
    bins: list[BinStop], vehicles: list[Vehicle] | None = None, **extra: object
) -> PlanRequest:
    options: dict[str, object] = {
        "depots": (DEPOT,),
        "tips": (TIP,),
        "vehicles": tuple(vehicles or [make_vehicle()]),
        "bins": tuple(bins),
    }
    options.update(extra)
    return PlanRequest(**options)


@pytest.fixture
def ring_of_bins() -> Callable[[int, float], list[BinStop]]:
    """``n`` bins on a circle of ``radius_m`` around the centre."""
    import math

    def build(count: int, radius_m: float, **extra: object) -> list[BinStop]:
        return [
            make_bin(
                i,
                radius_m * math.sin(2 * math.pi * i / count),
                radius_m * math.cos(2 * math.pi * i / count),
                **extra,
            )
            for i in range(count)
        ]

    return build


SHIFT_6_TO_18 = TimeWindow.from_hours(6, 18)
