"""Synthetic refuse-collection days for demos, tests and benchmarks.

Bins are scattered around a town centre (Leicester by default) with a realistic mix of street
and communal bin sizes; their forecast fill decides which are must-collect. Nothing here is
real data: it exists so the solver can be exercised at council scale without a database.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import numpy as np

from routing.model import (
    DEFAULT_SHIFT,
    BinStop,
    DisposalSite,
    PlanRequest,
    Site,
    TimeWindow,
    Vehicle,
    drop_penalty_for_fill,
)

__all__ = ["RealPlaces", "SynthParams", "synthetic_request"]

# (litres, share, service seconds): wheelie bins to 1100 l communal bins.
BIN_SIZES: Final = ((240, 0.60, 45), (360, 0.15, 50), (660, 0.10, 75), (1100, 0.15, 90))
# Loose general waste weighs about 120 kg/m3; a compaction body packs it about 3:1.
WASTE_DENSITY_KG_PER_L: Final = 0.12
COMPACTION_RATIO: Final = 3.0
METRES_PER_DEGREE_LAT: Final = 111_320.0


@dataclass(frozen=True)
class RealPlaces:
    """Real positions for a synthetic day: depot, tip and one place per bin (lat, lon)."""

    depot: tuple[float, float]
    tip: tuple[float, float]
    bins: tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class SynthParams:
    """Knobs for :func:`synthetic_request`; defaults describe a mid-sized English town."""

    centre_lat: float = 52.63
    centre_lon: float = -1.13
    radius_m: float = 5_000.0
    capacity_kg: float = 4_000.0
    capacity_l: float = 25_000.0
    shift: TimeWindow = DEFAULT_SHIFT
    fill_threshold: float = 0.8
    time_window_share: float = 0.05
    tip_unload_s: int = 900
    stream: str = "general"

    def __post_init__(self) -> None:
        if self.radius_m <= 0:
            raise ValueError("radius_m must be positive")
        if not 0.0 <= self.time_window_share <= 1.0:
            raise ValueError("time_window_share must be within 0..1")


def _offset(params: SynthParams, east_m: float, north_m: float) -> tuple[float, float]:
    lat = params.centre_lat + north_m / METRES_PER_DEGREE_LAT
    lon = params.centre_lon + east_m / (
        METRES_PER_DEGREE_LAT * math.cos(math.radians(params.centre_lat))
    )
    return round(lat, 6), round(lon, 6)


def synthetic_request(
    num_bins: int,
    num_trucks: int,
    *,
    seed: int = 0,
    params: SynthParams | None = None,
    town: RealPlaces | None = None,
) -> PlanRequest:
    """A one-depot, one-tip day with ``num_bins`` bins and ``num_trucks`` identical trucks.

    With ``town``, the depot, tip and bins are at its real places instead of scattered over
    a disc around ``params``' centre.
    """
    if num_bins < 0 or num_trucks < 1:
        raise ValueError("need num_bins >= 0 and num_trucks >= 1")
    params = params or SynthParams()
    rng = np.random.default_rng(seed)
    depot = Site("depot", *_offset(params, -2_000.0, -1_500.0))
    tip = DisposalSite("tip", *_offset(params, 3_500.0, 1_000.0), unload_s=params.tip_unload_s)
    if town is not None:
        if len(town.bins) < num_bins:
            raise ValueError(f"{len(town.bins)} bin places for {num_bins} bins")
        depot = Site("depot", *town.depot)
        tip = DisposalSite("tip", *town.tip, unload_s=params.tip_unload_s)
    sizes = rng.choice(len(BIN_SIZES), size=num_bins, p=[s[1] for s in BIN_SIZES])
    # Uniform over the disc: radius grows with the square root of a uniform draw.
    radius = params.radius_m * np.sqrt(rng.uniform(0.0, 1.0, num_bins))
    angle = rng.uniform(0.0, 2 * math.pi, num_bins)
    fill = np.clip(rng.beta(4.0, 2.5, num_bins) * 1.1, 0.05, 1.1)
    windowed = rng.uniform(0.0, 1.0, num_bins) < params.time_window_share
    bins = []
    for i in range(num_bins):
        litres, _, service_s = BIN_SIZES[int(sizes[i])]
        loose_l = float(fill[i]) * litres
        must = bool(fill[i] >= params.fill_threshold)
        window = None
        if windowed[i]:
            # Market streets and school frontages: collect mid-morning only.
            start_h = float(rng.choice([8.0, 9.0, 10.0]))
            window = TimeWindow.from_hours(start_h, start_h + 3.0)
        lat = (
            _offset(params, radius[i] * math.cos(angle[i]), 0.0)[0]
            + radius[i] * math.sin(angle[i]) / METRES_PER_DEGREE_LAT
        )
        lon = _offset(params, radius[i] * math.cos(angle[i]), 0.0)[1]
        if town is not None:
            lat, lon = town.bins[i]
        bins.append(
            BinStop(
                id=f"bin-{i:05d}",
                lat=lat,
                lon=lon,
                stream=params.stream,
                weight_kg=round(loose_l * WASTE_DENSITY_KG_PER_L, 1),
                volume_l=round(loose_l / COMPACTION_RATIO, 1),
                service_s=service_s,
                must_collect=must,
                drop_penalty=drop_penalty_for_fill(float(fill[i]), threshold=params.fill_threshold),
                time_window=window,
            )
        )
    vehicles = tuple(
        Vehicle(
            id=f"rcv-{k + 1:02d}",
            stream=params.stream,
            capacity_kg=params.capacity_kg,
            capacity_l=params.capacity_l,
            start_depot=depot.id,
            shift=params.shift,
        )
        for k in range(num_trucks)
    )
    return PlanRequest(depots=(depot,), tips=(tip,), vehicles=vehicles, bins=tuple(bins))
