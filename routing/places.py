"""Real towns on the bundled OpenStreetMap extract: where demo bins, homes and sites go.

``data/osm/rutland-latest.osm.pbf`` covers the county of Rutland. Bins and homes are placed at
real street positions (points along residential streets, a few metres to the kerb side) and
the depot and tip at real industrial sites (``landuse=industrial`` areas in the same extract;
their centres are written here so the demo needs no second pass over the file).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np

from routing.matrix import LatLon
from routing.network import HIGHWAY_CLASSES, RoadNetwork

__all__ = ["BUNDLED_EXTRACT", "TOWNS", "Town", "street_points"]

# The extract shipped with the project (© OpenStreetMap contributors, ODbL; see its SOURCE.md).
BUNDLED_EXTRACT: Final = Path(__file__).resolve().parent.parent / "data/osm/rutland-latest.osm.pbf"
# Streets people live on: bins and homes go along these classes only.
HOME_STREETS: Final = ("residential", "living_street", "unclassified", "tertiary")
# A wheelie bin stands at the kerb, a few metres from the street's centre line.
KERB_M: Final = 4.0
_METRES_PER_DEGREE: Final = 111_320.0


@dataclass(frozen=True)
class Town:
    """A town on the bundled extract: its centre, how far its streets reach, depot and tip."""

    name: str
    centre: LatLon
    radius_m: float
    depot_id: str
    depot: LatLon
    tip_id: str
    tip: LatLon
    streets: tuple[str, ...] = ()  # real street names in the extract, for demo addresses


TOWNS: Final = {
    # Oakham, the county town (~11,000 people); depot on the Pillings Road industrial estate
    # (OSM way 553629700), tip at the industrial site off Burley Road (OSM way 367134514).
    "oakham": Town(
        "Oakham",
        (52.6706, -0.7273),
        1_800.0,
        "depot-pillings-road",
        (52.67965, -0.73480),
        "tip-burley-road",
        (52.68892, -0.75100),
        (
            "Ashwell Road",
            "Balmoral Road",
            "Barlow Road",
            "Braunston Road",
            "Brooke Road",
            "Catmose Park Road",
            "Chestnut Road",
            "Church Street",
            "Cold Overton Road",
            "Crown Street",
            "Dean's Street",
            "Derwent Drive",
            "Finkey Street",
            "Glebe Way",
            "Gretton Street",
        ),
    ),
    # Uppingham (~4,700 people); both sites on its south-eastern industrial estate (OSM ways
    # 181308092 and 590721679).
    "uppingham": Town(
        "Uppingham",
        (52.5887, -0.7226),
        1_200.0,
        "depot-uppingham",
        (52.58530, -0.71553),
        "tip-uppingham",
        (52.58988, -0.71326),
    ),
}


def street_points(
    network: RoadNetwork,
    town: Town,
    count: int,
    *,
    seed: int = 0,
    classes: Sequence[str] = HOME_STREETS,
) -> list[LatLon]:
    """``count`` kerbside points along the town's residential streets, uniform per metre."""
    wanted = np.isin(network.edge_class, [HIGHWAY_CLASSES.index(c) for c in classes])
    lat0, lon0 = town.centre
    kx = _METRES_PER_DEGREE * math.cos(math.radians(lat0))
    near = (
        np.hypot(
            (network.node_lat[network.edge_from] - lat0) * _METRES_PER_DEGREE,
            (network.node_lon[network.edge_from] - lon0) * kx,
        )
        <= town.radius_m
    )
    edges = np.flatnonzero(wanted & near & (network.edge_length_m > 1.0))
    if edges.shape[0] == 0:
        raise ValueError(f"no {', '.join(classes)} streets within {town.radius_m} m of {town.name}")
    rng = np.random.default_rng(seed)
    weights = network.edge_length_m[edges] / network.edge_length_m[edges].sum()
    chosen = rng.choice(edges, size=count, p=weights)
    along = rng.uniform(0.0, 1.0, count)
    side = rng.choice([-1.0, 1.0], size=count)
    a, b = network.edge_from[chosen], network.edge_to[chosen]
    lat = network.node_lat[a] + along * (network.node_lat[b] - network.node_lat[a])
    lon = network.node_lon[a] + along * (network.node_lon[b] - network.node_lon[a])
    # Step KERB_M to one side, perpendicular to the street.
    dy = (network.node_lat[b] - network.node_lat[a]) * _METRES_PER_DEGREE
    dx = (network.node_lon[b] - network.node_lon[a]) * kx
    norm = np.maximum(np.hypot(dx, dy), 1e-9)
    lat = lat + side * KERB_M * (dx / norm) / _METRES_PER_DEGREE
    lon = lon - side * KERB_M * (dy / norm) / kx
    return [(round(float(y), 6), round(float(x), 6)) for y, x in zip(lat, lon, strict=True)]
