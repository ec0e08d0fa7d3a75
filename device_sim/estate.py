"""A demo estate: street bins and council homes around a real UK town (Leicester), or at
real street positions of a town given as :class:`RealPlaces`.

Deterministic for a seed, written in the registry CSV format that ``civic devices import``
reads. UPRNs are in the real 12-digit format but fictional.
"""

from __future__ import annotations

import csv
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from firmware_contracts import DEVICE_CSV_COLUMNS, WasteStream

TOWN = "Leicester"
TOWN_CENTRE = (52.6369, -1.1398)  # Leicester Clock Tower
TOWN_RADIUS_KM = 4.0
STREETS = (
    "High Street",
    "London Road",
    "Narborough Road",
    "Belgrave Gate",
    "Humberstone Road",
    "Aylestone Road",
    "Welford Road",
    "Fosse Road North",
    "Hinckley Road",
    "Melton Road",
    "Uppingham Road",
    "Evington Road",
    "Saffron Lane",
    "Abbey Lane",
    "Groby Road",
)
PATCHES = ("north", "east", "south", "west", "central", "riverside")
# The streams the demo town collects (of the registry's WasteStream), and their mix.
WASTE_STREAMS: tuple[str, ...] = (WasteStream.GENERAL, WasteStream.RECYCLING, WasteStream.GARDEN)
WASTE_STREAM_WEIGHTS: tuple[float, ...] = (0.5, 0.35, 0.15)
BIN_CAPACITIES_L = (240, 360, 660, 1100)
# Empty between tenancies: social landlords report about 1.5-2 % of general-needs homes vacant.
VOID_SHARE = 0.02
COLUMNS = DEVICE_CSV_COLUMNS


def _point(rng: random.Random) -> tuple[float, float]:
    # Uniform over a disc: sqrt keeps density even rather than bunched at the centre.
    distance_km = TOWN_RADIUS_KM * math.sqrt(rng.random())
    bearing = rng.uniform(0, 2 * math.pi)
    lat = TOWN_CENTRE[0] + distance_km / 111.0 * math.cos(bearing)
    lon = TOWN_CENTRE[1] + distance_km / (
        111.0 * math.cos(math.radians(TOWN_CENTRE[0]))
    ) * math.sin(bearing)
    return round(lat, 6), round(lon, 6)


@dataclass(frozen=True)
class RealPlaces:
    """Where a real town's demo devices go: one (lat, lon) per bin and per home.

    Positions come from a map (the platform samples them along residential streets of an
    OpenStreetMap extract); ``streets`` are the town's street names for the homes' addresses.
    """

    town: str
    centre: tuple[float, float]
    bins: Sequence[tuple[float, float]]
    homes: Sequence[tuple[float, float]]
    streets: tuple[str, ...]


def _patch(lat: float, lon: float, centre: tuple[float, float] = TOWN_CENTRE) -> str:
    d_lat, d_lon = lat - centre[0], (lon - centre[1]) * 0.6
    if math.hypot(d_lat, d_lon) < 0.008:
        return "central"
    angle = math.degrees(math.atan2(d_lat, d_lon)) % 360
    return ("east", "north", "north", "west", "riverside", "south", "south", "east")[
        int(angle // 45)
    ]


def generate_estate(
    bins: int, homes: int, seed: int = 1, places: RealPlaces | None = None
) -> list[dict[str, str]]:
    """``bins`` bins and ``homes`` homes around Leicester, or at ``places`` in a real town."""
    if places is not None and (len(places.bins) < bins or len(places.homes) < homes):
        raise ValueError(f"{places.town}: fewer places than {bins} bins and {homes} homes")
    rng = random.Random(seed)
    town, centre, streets = (
        (places.town, places.centre, places.streets) if places else (TOWN, TOWN_CENTRE, STREETS)
    )
    rows: list[dict[str, str]] = []
    for i in range(bins):
        lat, lon = places.bins[i] if places else _point(rng)
        rows.append(
            {
                "device_id": f"bin-{i + 1:06d}",
                "kind": "bin",
                "lat": str(lat),
                "lon": str(lon),
                "uprn": "",
                "address": "",
                "patch": _patch(lat, lon, centre),
                "void": "",
                "waste_stream": rng.choices(WASTE_STREAMS, WASTE_STREAM_WEIGHTS)[0],
                "capacity_l": str(rng.choice(BIN_CAPACITIES_L)),
                "threshold_pct": "80",
            }
        )
    for i in range(homes):
        lat, lon = places.homes[i] if places else _point(rng)
        rows.append(
            {
                "device_id": f"env-{i + 1:06d}",
                "kind": "env",
                "lat": str(lat),
                "lon": str(lon),
                "uprn": str(100_030_000_000 + seed * 100_000 + i),
                "address": f"{rng.randint(1, 240)} {rng.choice(streets)}, {town}",
                "patch": _patch(lat, lon, centre),
                "void": "true" if rng.random() < VOID_SHARE else "false",
                "waste_stream": "",
                "capacity_l": "",
                "threshold_pct": "",
            }
        )
    return rows


def write_estate_csv(rows: list[dict[str, str]], out: TextIO | Path) -> None:
    if isinstance(out, Path):
        with out.open("w", newline="", encoding="utf-8") as handle:
            write_estate_csv(rows, handle)
        return
    writer = csv.DictWriter(out, fieldnames=COLUMNS)
    writer.writeheader()
    writer.writerows(rows)


def read_estate_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        return list(csv.DictReader(handle))
