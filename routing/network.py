"""A drivable road network read from an OpenStreetMap extract, cached by the file's hash.

:func:`read_osm` reads ``.osm.pbf`` (or ``.osm`` XML) with pyosmium and keeps the ways a refuse
truck may drive (``highway`` motorway … service, not private or closed to motor vehicles):
one directed edge per consecutive node pair and direction allowed by ``oneway`` (and implied by
roundabouts and motorways), its length on the ground and its travel time at the way's
``maxspeed`` (class default when untagged), capped at the truck's top speed. Only the largest
strongly connected component is kept: a truck can get from every kept node to every other, so a
stop snapped onto it is never a dead end.

The model is *turn-free*: no turn restrictions, turn costs or traffic signals. Times are
free-flow; :data:`SPEED_SHARE` brings them down towards what a truck averages between junctions.

:func:`load_network` is the cache: a compressed ``.npz`` under the data directory named after
the file's SHA-256 (the *network version*), so importing the same extract twice costs a file
read, and a new extract gets a new version that cached matrices are keyed by.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import math
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from routing.errors import RoutingError

__all__ = [
    "ATTRIBUTION",
    "NETWORK_FORMAT",
    "NetworkImportError",
    "RoadNetwork",
    "load_network",
    "network_version",
    "read_osm",
]

logger = logging.getLogger(__name__)

# OpenStreetMap data is under the ODbL: anything shown from it must say where it came from.
ATTRIBUTION: Final = "© OpenStreetMap contributors"
ATTRIBUTION_LICENCE: Final = "https://www.openstreetmap.org/copyright"
# Bumped whenever the reading rules change, so older cached networks are rebuilt.
NETWORK_FORMAT: Final = 1

# Default speed limits (km/h) by highway class where a way has no maxspeed tag: the GB national
# limits (70 mph motorways and dual carriageways, 60 mph single carriageways outside towns) and
# 30 mph for streets; service roads and living streets are driven at walking-to-jogging pace.
CLASS_SPEED_KMH: Final[dict[str, float]] = {
    "motorway": 112.0,
    "motorway_link": 80.0,
    "trunk": 96.0,
    "trunk_link": 64.0,
    "primary": 80.0,
    "primary_link": 56.0,
    "secondary": 72.0,
    "secondary_link": 48.0,
    "tertiary": 56.0,
    "tertiary_link": 40.0,
    "unclassified": 48.0,
    "residential": 48.0,
    "living_street": 16.0,
    "service": 16.0,
}
HIGHWAY_CLASSES: Final = tuple(CLASS_SPEED_KMH)
# A refuse truck (HGV over 7.5 t) may not exceed 50 mph on single carriageways in GB and is
# governed near 56 mph; 80 km/h is the top speed used anywhere.
TRUCK_MAX_KMH: Final = 80.0
# Trucks do not hold the limit between junctions; OSRM's car profile takes 80 % of a tagged
# limit for the same reason, and a turn-free model has no junction delays of its own.
SPEED_SHARE: Final = 0.7

_NO_ACCESS: Final = frozenset({"no", "private"})
_MPH_KMH: Final = 1.609344
_NATIONAL_KMH: Final[dict[str, float]] = {
    "gb:nsl_single": 96.0,
    "gb:nsl_dual": 112.0,
    "gb:motorway": 112.0,
    "national": 96.0,
    "uk:nsl_single": 96.0,
    "uk:nsl_dual": 112.0,
}
_EARTH_RADIUS_M: Final = 6_371_008.8


class NetworkImportError(RoutingError):
    """The extract cannot be read or has no drivable roads."""

    def __init__(self, message: str, *, path: Path) -> None:
        super().__init__(message)
        self.path = path


def parse_maxspeed(value: str | None) -> float | None:
    """km/h from an OSM ``maxspeed`` value (``30 mph``, ``50``, ``GB:nsl_single``), or None."""
    if not value:
        return None
    text = value.strip().lower()
    if text in _NATIONAL_KMH:
        return _NATIONAL_KMH[text]
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(mph|km/h|kmh|kph)?", text)
    if match is None:
        zone = re.fullmatch(r"[a-z]{2}:zone:?(\d+)", text)
        # GB zones are posted in mph.
        return float(zone.group(1)) * _MPH_KMH if zone else None
    speed = float(match.group(1))
    speed = speed * _MPH_KMH if match.group(2) == "mph" else speed
    return speed if speed > 0 else None


def way_speed_kmh(highway: str, maxspeed: str | None) -> float:
    """The speed a truck averages on a way: its limit (or class default), capped, scaled."""
    limit = parse_maxspeed(maxspeed) or CLASS_SPEED_KMH[highway]
    return min(limit, TRUCK_MAX_KMH) * SPEED_SHARE


def way_directions(tags: dict[str, str]) -> tuple[bool, bool]:
    """(forward allowed, backward allowed) along the way's node order."""
    oneway = tags.get("oneway", "").lower()
    if oneway in ("yes", "true", "1"):
        return True, False
    if oneway in ("-1", "reverse"):
        return False, True
    if oneway == "no":
        return True, True
    implied = tags.get("junction") in ("roundabout", "circular") or tags["highway"] in (
        "motorway",
        "motorway_link",
    )
    return True, not implied


def is_drivable(tags: dict[str, str]) -> bool:
    highway = tags.get("highway")
    if highway not in CLASS_SPEED_KMH:
        return False
    if tags.get("area") == "yes":
        return False
    return not any(tags.get(key) in _NO_ACCESS for key in ("access", "motor_vehicle", "vehicle"))


@dataclass(frozen=True)
class RoadNetwork:
    """Nodes (lat, lon) and directed edges with length (m) and truck travel time (s).

    Only the largest strongly connected component of the drivable roads: every node reaches
    every other. At most one edge per ordered node pair (the fastest).
    """

    version: str
    node_lat: npt.NDArray[np.float64]
    node_lon: npt.NDArray[np.float64]
    edge_from: npt.NDArray[np.int32]
    edge_to: npt.NDArray[np.int32]
    edge_length_m: npt.NDArray[np.float64]
    edge_time_s: npt.NDArray[np.float64]
    edge_class: npt.NDArray[np.uint8]  # index into HIGHWAY_CLASSES
    dropped_nodes: int = 0  # drivable nodes outside the largest strongly connected component

    @property
    def node_count(self) -> int:
        return int(self.node_lat.shape[0])

    @property
    def edge_count(self) -> int:
        return int(self.edge_from.shape[0])

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".tmp.npz")
        np.savez_compressed(
            partial,
            version=np.array(self.version),
            node_lat=self.node_lat,
            node_lon=self.node_lon,
            edge_from=self.edge_from,
            edge_to=self.edge_to,
            edge_length_m=self.edge_length_m,
            edge_time_s=self.edge_time_s,
            edge_class=self.edge_class,
            dropped_nodes=np.array(self.dropped_nodes),
        )
        partial.replace(path)

    @classmethod
    def from_file(cls, path: Path) -> RoadNetwork:
        with np.load(path) as stored:
            return cls(
                version=str(stored["version"]),
                node_lat=stored["node_lat"],
                node_lon=stored["node_lon"],
                edge_from=stored["edge_from"],
                edge_to=stored["edge_to"],
                edge_length_m=stored["edge_length_m"],
                edge_time_s=stored["edge_time_s"],
                edge_class=stored["edge_class"],
                dropped_nodes=int(stored["dropped_nodes"]),
            )


def network_version(path: Path) -> str:
    """SHA-256 of the extract and the reading rules: one version per (file, rules)."""
    digest = hashlib.sha256(f"civic-roads-{NETWORK_FORMAT}:".encode())
    try:
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except OSError as exc:
        raise NetworkImportError(f"cannot read {path}: {exc.strerror}", path=path) from exc
    return digest.hexdigest()


class _Ways:
    """Collects drivable ways' node pairs while pyosmium streams the file."""

    def __init__(self) -> None:
        self.refs: dict[int, int] = {}
        self.lat: list[float] = []
        self.lon: list[float] = []
        self.edge_from: list[int] = []
        self.edge_to: list[int] = []
        self.speed_kmh: list[float] = []
        self.highway: list[int] = []

    def node(self, ref: int, lat: float, lon: float) -> int:
        index = self.refs.get(ref)
        if index is None:
            index = self.refs[ref] = len(self.lat)
            self.lat.append(lat)
            self.lon.append(lon)
        return index

    def way(self, tags: dict[str, str], nodes: list[tuple[int, float, float]]) -> None:
        forward, backward = way_directions(tags)
        speed = way_speed_kmh(tags["highway"], tags.get("maxspeed"))
        highway = HIGHWAY_CLASSES.index(tags["highway"])
        indices = [self.node(ref, lat, lon) for ref, lat, lon in nodes]
        for a, b in itertools.pairwise(indices):
            if a == b:
                continue
            if forward:
                self._edge(a, b, speed, highway)
            if backward:
                self._edge(b, a, speed, highway)

    def _edge(self, a: int, b: int, speed: float, highway: int) -> None:
        self.edge_from.append(a)
        self.edge_to.append(b)
        self.speed_kmh.append(speed)
        self.highway.append(highway)


def _collect(path: Path) -> _Ways:
    import osmium

    ways = _Ways()
    reader = (
        osmium.FileProcessor(str(path))
        .with_locations()
        .with_filter(osmium.filter.KeyFilter("highway"))
    )
    for obj in reader:
        if not isinstance(obj, osmium.osm.Way):
            continue
        tags = {tag.k: tag.v for tag in obj.tags}
        if not is_drivable(tags):
            continue
        nodes = [(n.ref, n.location.lat, n.location.lon) for n in obj.nodes if n.location.valid()]
        if len(nodes) >= 2:
            ways.way(tags, nodes)
    return ways


def _lengths_m(
    lat: npt.NDArray[np.float64],
    lon: npt.NDArray[np.float64],
    a: npt.NDArray[np.int32],
    b: npt.NDArray[np.int32],
) -> npt.NDArray[np.float64]:
    phi1, phi2 = np.radians(lat[a]), np.radians(lat[b])
    dphi = phi2 - phi1
    dlmb = np.radians(lon[b] - lon[a])
    h = np.sin(dphi / 2) ** 2 + np.cos(phi1) * np.cos(phi2) * np.sin(dlmb / 2) ** 2
    metres: npt.NDArray[np.float64] = 2 * _EARTH_RADIUS_M * np.arcsin(np.sqrt(np.clip(h, 0, 1)))
    return metres


def _largest_component(
    nodes: int, edge_from: npt.NDArray[np.int32], edge_to: npt.NDArray[np.int32]
) -> npt.NDArray[np.bool_]:
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    ones = np.ones(edge_from.shape[0], dtype=np.int8)
    graph = coo_matrix((ones, (edge_from, edge_to)), shape=(nodes, nodes)).tocsr()
    _, labels = connected_components(graph, directed=True, connection="strong")
    largest = np.bincount(labels).argmax()
    keep: npt.NDArray[np.bool_] = labels == largest
    return keep


def build_network(ways: _Ways, version: str) -> RoadNetwork:
    """Edges with lengths and times, duplicates merged, cut to the largest component."""
    lat = np.asarray(ways.lat, dtype=np.float64)
    lon = np.asarray(ways.lon, dtype=np.float64)
    edge_from = np.asarray(ways.edge_from, dtype=np.int32)
    edge_to = np.asarray(ways.edge_to, dtype=np.int32)
    length = _lengths_m(lat, lon, edge_from, edge_to)
    seconds = length / (np.asarray(ways.speed_kmh, dtype=np.float64) / 3.6)
    highway = np.asarray(ways.highway, dtype=np.uint8)
    # Two ways joining the same node pair: keep the faster (order by pair, then time).
    order = np.lexsort((seconds, edge_to, edge_from))
    edge_from, edge_to = edge_from[order], edge_to[order]
    length, seconds, highway = length[order], seconds[order], highway[order]
    first = np.ones(edge_from.shape[0], dtype=bool)
    first[1:] = (edge_from[1:] != edge_from[:-1]) | (edge_to[1:] != edge_to[:-1])
    edge_from, edge_to = edge_from[first], edge_to[first]
    length, seconds, highway = length[first], seconds[first], highway[first]

    keep = _largest_component(lat.shape[0], edge_from, edge_to)
    renumber = np.full(lat.shape[0], -1, dtype=np.int64)
    renumber[keep] = np.arange(int(keep.sum()))
    used = keep[edge_from] & keep[edge_to]
    return RoadNetwork(
        version=version,
        node_lat=lat[keep],
        node_lon=lon[keep],
        edge_from=renumber[edge_from[used]].astype(np.int32),
        edge_to=renumber[edge_to[used]].astype(np.int32),
        edge_length_m=length[used],
        edge_time_s=seconds[used],
        edge_class=highway[used],
        dropped_nodes=int((~keep).sum()),
    )


def read_osm(path: Path) -> RoadNetwork:
    """The drivable network of an ``.osm.pbf`` or ``.osm`` file (not cached).

    Raises
    ------
    NetworkImportError
        If the file cannot be read or holds no drivable road.
    """
    if not path.is_file():
        raise NetworkImportError(f"no such file: {path}", path=path)
    version = network_version(path)
    try:
        ways = _collect(path)
    except RuntimeError as exc:  # pyosmium reports unreadable input as RuntimeError
        raise NetworkImportError(
            f"cannot read {path} as OpenStreetMap data: {exc}", path=path
        ) from exc
    if not ways.edge_from:
        raise NetworkImportError(f"{path} has no drivable roads", path=path)
    return build_network(ways, version)


@dataclass(frozen=True)
class ImportReport:
    network: RoadNetwork
    cache_file: Path
    cached: bool
    seconds: float


def load_network(path: Path, cache_dir: Path) -> ImportReport:
    """The network of ``path`` from the cache, reading the extract only on a cache miss."""
    started = time.perf_counter()
    version = network_version(path)
    cache_file = cache_dir / f"{version[:16]}.npz"
    if cache_file.exists():
        try:
            network = RoadNetwork.from_file(cache_file)
            if network.version == version:
                return ImportReport(network, cache_file, True, time.perf_counter() - started)
        except (OSError, KeyError, ValueError) as exc:
            logger.warning("rebuilding unreadable network cache %s: %s", cache_file, exc)
    network = read_osm(path)
    network.save(cache_file)
    return ImportReport(network, cache_file, False, time.perf_counter() - started)


def describe(network: RoadNetwork) -> dict[str, Any]:
    """Counts a planner checks after an import."""
    return {
        "version": network.version,
        "nodes": network.node_count,
        "edges": network.edge_count,
        "dropped_nodes": network.dropped_nodes,
        "km_of_road": round(float(network.edge_length_m.sum()) / 1000, 1),
        "median_speed_kmh": round(
            float(np.median(network.edge_length_m / network.edge_time_s)) * 3.6, 1
        )
        if network.edge_count
        else math.nan,
    }
