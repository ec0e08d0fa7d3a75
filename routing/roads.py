"""Travel matrices and street paths on an imported road network (:mod:`routing.network`).

Each place is *snapped* to the nearest point of a drivable edge (the network only holds its
largest strongly connected component, so every snapped place can reach every other). The edge is
split there: the place becomes a node of its own, reached along the street in the directions the
street may be driven. One Dijkstra run per place (``scipy.sparse.csgraph``) gives the whole row of
the matrix.

Durations and distances come from one search: each edge weighs ``deciseconds × 10⁷ +
decimetres``, so the shortest path is the fastest one (to 0.1 s per edge), ties go to the
shorter, and the sum splits back exactly into time and length (every value is an integer well
inside float64's 2⁵³).
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt

from routing.errors import RoutingError
from routing.matrix import UNREACHABLE, CachedProvider, LatLon, PathProvider, TravelMatrix
from routing.model import BinStop, DisposalSite, PlanRequest, Route, Site
from routing.network import RoadNetwork, load_network

__all__ = [
    "MAX_SNAP_M",
    "OffNetworkError",
    "RoadProvider",
    "Snap",
    "with_street_paths",
]

# A bin further than this from any drivable road is a registry error (wrong coordinates, or a
# road missing from the map), not something to route to.
MAX_SNAP_M: Final = 300.0
# Weight = deciseconds × _SCALE + decimetres: decimetres summed over a day stay below 10⁷
# (1,000 km), deciseconds below 10⁷ (11 days), so the sum stays below 2⁵³.
_SCALE: Final = 10_000_000
# Rows of the matrix computed per Dijkstra call: bounds memory at chunk × nodes × 8 bytes.
_CHUNK: Final = 256
# Long edges are sampled at this spacing for the nearest-edge search.
_SAMPLE_M: Final = 20.0
_NEIGHBOURS: Final = 12
_EARTH_RADIUS_M: Final = 6_371_008.8


class OffNetworkError(RoutingError):
    """Places too far from any drivable road; ``places`` holds (name, lat, lon, metres)."""

    def __init__(self, places: Sequence[tuple[str, float, float, float]]) -> None:
        listed = ", ".join(f"{name} ({metres:.0f} m)" for name, _, _, metres in places[:20])
        more = f" and {len(places) - 20} more" if len(places) > 20 else ""
        super().__init__(
            f"{len(places)} place(s) more than {MAX_SNAP_M:.0f} m from any drivable road: "
            f"{listed}{more}; check their coordinates in the registry"
        )
        self.places = tuple(places)


@dataclass(frozen=True, slots=True)
class Snap:
    """Where a place meets the road: edge index, metres along it, and metres off the road."""

    edge: int
    along_m: float
    distance_m: float
    lat: float
    lon: float


class _Projection:
    """Local flat metres around the network's middle: good to centimetres over a county."""

    def __init__(self, lat0: float, lon0: float) -> None:
        self.lat0, self.lon0 = lat0, lon0
        self.kx = math.cos(math.radians(lat0)) * math.radians(1) * _EARTH_RADIUS_M
        self.ky = math.radians(1) * _EARTH_RADIUS_M

    def xy(
        self, lat: npt.ArrayLike, lon: npt.ArrayLike
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        x = (np.asarray(lon, dtype=np.float64) - self.lon0) * self.kx
        y = (np.asarray(lat, dtype=np.float64) - self.lat0) * self.ky
        return x, y


class _EdgeIndex:
    """Nearest-edge search: a k-d tree over points sampled along every edge."""

    def __init__(self, network: RoadNetwork) -> None:
        from scipy.spatial import cKDTree

        self.network = network
        self.projection = _Projection(
            float(np.median(network.node_lat)), float(np.median(network.node_lon))
        )
        x, y = self.projection.xy(network.node_lat, network.node_lon)
        self.x, self.y = x, y
        a, b = network.edge_from, network.edge_to
        samples = np.maximum(1, np.ceil(network.edge_length_m / _SAMPLE_M)).astype(np.int64)
        owner = np.repeat(np.arange(network.edge_count), samples)
        starts = np.cumsum(samples) - samples
        fraction = (np.arange(owner.shape[0]) - starts[owner] + 0.5) / samples[owner]
        px = x[a[owner]] + fraction * (x[b[owner]] - x[a[owner]])
        py = y[a[owner]] + fraction * (y[b[owner]] - y[a[owner]])
        self.owner = owner
        self.tree = cKDTree(np.column_stack([px, py]))

    def snap(self, points: Sequence[LatLon]) -> list[Snap]:
        network = self.network
        lat = np.array([p[0] for p in points], dtype=np.float64)
        lon = np.array([p[1] for p in points], dtype=np.float64)
        qx, qy = self.projection.xy(lat, lon)
        k = min(_NEIGHBOURS, self.owner.shape[0])
        _, nearest = self.tree.query(np.column_stack([qx, qy]), k=k)
        candidates = self.owner[np.asarray(nearest).reshape(len(points), k)]
        a, b = network.edge_from[candidates], network.edge_to[candidates]
        ax, ay, bx, by = self.x[a], self.y[a], self.x[b], self.y[b]
        dx, dy = bx - ax, by - ay
        span = np.maximum(dx * dx + dy * dy, 1e-12)
        t = np.clip(((qx[:, None] - ax) * dx + (qy[:, None] - ay) * dy) / span, 0.0, 1.0)
        off = np.hypot(ax + t * dx - qx[:, None], ay + t * dy - qy[:, None])
        best = off.argmin(axis=1)
        rows = np.arange(len(points))
        edges, fractions = candidates[rows, best], t[rows, best]
        snaps = []
        for i in range(len(points)):
            edge, f = int(edges[i]), float(fractions[i])
            u, v = int(network.edge_from[edge]), int(network.edge_to[edge])
            snaps.append(
                Snap(
                    edge=edge,
                    along_m=f * float(network.edge_length_m[edge]),
                    distance_m=float(off[i, best[i]]),
                    lat=float(
                        network.node_lat[u] + f * (network.node_lat[v] - network.node_lat[u])
                    ),
                    lon=float(
                        network.node_lon[u] + f * (network.node_lon[v] - network.node_lon[u])
                    ),
                )
            )
        return snaps


@dataclass(frozen=True)
class _Augmented:
    """The network with the places spliced in as nodes; ``place_node[i]`` is place i's node."""

    graph: object  # scipy.sparse.csr_matrix of combined weights
    place_node: npt.NDArray[np.int64]
    node_lat: npt.NDArray[np.float64]
    node_lon: npt.NDArray[np.float64]


def _weights(
    seconds: npt.NDArray[np.float64], metres: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    deciseconds = np.rint(seconds * 10)
    decimetres = np.maximum(1, np.rint(metres * 10))
    combined: npt.NDArray[np.float64] = deciseconds * _SCALE + decimetres
    return combined


def _splice(network: RoadNetwork, snaps: Sequence[Snap]) -> _Augmented:
    """Split every edge a place snapped to (and its reverse twin) at the places' positions."""
    from scipy.sparse import csr_matrix

    n = network.node_count
    a, b = network.edge_from.astype(np.int64), network.edge_to.astype(np.int64)
    length, seconds = network.edge_length_m, network.edge_time_s
    reverse = {(int(u), int(v)): i for i, (u, v) in enumerate(zip(a, b, strict=True))}
    # Positions (decimetres from the edge's start) per snapped edge; the same position shares
    # one node, and a position at an end is that end's node.
    by_edge: dict[int, dict[int, int]] = {}
    place_node = np.empty(len(snaps), dtype=np.int64)
    extra_lat: list[float] = []
    extra_lon: list[float] = []
    for i, snap in enumerate(snaps):
        edge, along = snap.edge, snap.along_m
        # A two-way street is two edges: places on either are positioned on the lower-numbered
        # one, so both directions are split at the same nodes.
        twin = reverse.get((int(b[edge]), int(a[edge])))
        if twin is not None and twin < edge:
            edge, along = twin, float(length[edge]) - along
        total = round(float(length[edge]) * 10)
        position = min(max(round(along * 10), 0), total)
        if position == 0:
            place_node[i] = a[edge]
        elif position == total:
            place_node[i] = b[edge]
        else:
            nodes = by_edge.setdefault(edge, {})
            if position not in nodes:
                nodes[position] = n + len(extra_lat)
                extra_lat.append(snap.lat)
                extra_lon.append(snap.lon)
            place_node[i] = nodes[position]
    removed = np.zeros(network.edge_count, dtype=bool)
    new_from: list[int] = []
    new_to: list[int] = []
    new_len: list[float] = []
    new_time: list[float] = []
    for edge, nodes in by_edge.items():
        u, v = int(a[edge]), int(b[edge])
        total_m = float(length[edge])
        chain = [(0.0, u)] + [(p / 10, node) for p, node in sorted(nodes.items())] + [(total_m, v)]
        twin = reverse.get((v, u))
        for twin_edge, forward in ((edge, True), (twin, False)):
            if twin_edge is None or removed[twin_edge]:
                continue
            removed[twin_edge] = True
            pace = float(seconds[twin_edge]) / max(float(length[twin_edge]), 1e-9)
            for (s0, n0), (s1, n1) in itertools.pairwise(chain):
                piece = (s1 - s0) * float(length[twin_edge]) / max(total_m, 1e-9)
                start, end = (n0, n1) if forward else (n1, n0)
                new_from.append(start)
                new_to.append(end)
                new_len.append(piece)
                new_time.append(piece * pace)
    kept = ~removed
    all_from = np.concatenate([a[kept], np.asarray(new_from, dtype=np.int64)])
    all_to = np.concatenate([b[kept], np.asarray(new_to, dtype=np.int64)])
    weights = _weights(
        np.concatenate([seconds[kept], np.asarray(new_time)]),
        np.concatenate([length[kept], np.asarray(new_len)]),
    )
    size = n + len(extra_lat)
    graph = csr_matrix((weights, (all_from, all_to)), shape=(size, size))
    return _Augmented(
        graph,
        place_node,
        np.concatenate([network.node_lat, np.asarray(extra_lat)]),
        np.concatenate([network.node_lon, np.asarray(extra_lon)]),
    )


@dataclass(frozen=True)
class _Contracted:
    """The spliced graph with pass-through nodes folded into their streets' edges.

    A node is pass-through when it is not a place and only continues one street (two-way: the
    same two neighbours in and out; one-way: one in, one other out). Folding them leaves the
    junctions and the places, a fraction of the nodes, and the same shortest paths; ``chains``
    keeps each folded edge's inner nodes to draw the path back on the streets.
    """

    graph: object
    number: dict[int, int]  # spliced node -> contracted node
    nodes: list[int]  # contracted node -> spliced node
    chains: dict[tuple[int, int], list[int]]


Adjacency = list[dict[int, float]]


def _adjacency(graph: object) -> tuple[Adjacency, list[list[int]]]:
    """Out-edges with weights and in-neighbours of every node."""
    csr = graph.tocsr()  # type: ignore[attr-defined]
    indptr, indices, data = csr.indptr, csr.indices.tolist(), csr.data.tolist()
    out: Adjacency = [
        dict(zip(indices[indptr[i] : indptr[i + 1]], data[indptr[i] : indptr[i + 1]], strict=True))
        for i in range(csr.shape[0])
    ]
    inward: list[list[int]] = [[] for _ in out]
    for node, targets in enumerate(out):
        for target in targets:
            inward[target].append(node)
    return out, inward


def _passes_through(out: dict[int, float], inward: list[int]) -> bool:
    if len(out) == 2 and len(inward) == 2:
        return set(out) == set(inward)
    return len(out) == 1 and len(inward) == 1 and inward[0] not in out


def _fold(
    out: Adjacency, through: list[bool], start: int, first: int
) -> tuple[int, float, list[int]]:
    """Follow a street from ``start`` via ``first`` to the next kept node."""
    weight, previous, current = out[start][first], start, first
    inner: list[int] = []
    while through[current] and len(inner) < len(out):
        inner.append(current)
        ahead = next(n for n in out[current] if n != previous or len(out[current]) == 1)
        weight += out[current][ahead]
        previous, current = current, ahead
    return current, weight, inner


def _contract(spliced: _Augmented) -> _Contracted:
    from scipy.sparse import csr_matrix

    out, inward = _adjacency(spliced.graph)
    places = set(spliced.place_node.tolist())
    through = [
        node not in places and _passes_through(out[node], inward[node]) for node in range(len(out))
    ]
    nodes = [node for node in range(len(out)) if not through[node]]
    number = {node: i for i, node in enumerate(nodes)}
    best: dict[tuple[int, int], float] = {}
    chains: dict[tuple[int, int], list[int]] = {}
    for start in nodes:
        for first in out[start]:
            end, weight, inner = _fold(out, through, start, first)
            key = (start, end)
            if end != start and (key not in best or weight < best[key]):
                best[key] = weight
                chains[key] = inner
    rows = [number[a] for a, _ in best]
    cols = [number[b] for _, b in best]
    graph = csr_matrix((list(best.values()), (rows, cols)), shape=(len(nodes), len(nodes)))
    return _Contracted(graph, number, nodes, chains)


def _split(values: npt.NDArray[np.float64]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Combined weights → (whole seconds, whole metres); infinity → UNREACHABLE."""
    finite = np.isfinite(values)
    safe = np.where(finite, values, 0.0)
    deciseconds = np.floor(safe / _SCALE)
    decimetres = safe - deciseconds * _SCALE
    seconds = np.where(finite, np.rint(deciseconds / 10), UNREACHABLE).astype(np.int64)
    metres = np.where(finite, np.rint(decimetres / 10), UNREACHABLE).astype(np.int64)
    return seconds, metres


class RoadProvider:
    """Road travel times and distances over the network read from ``extract`` (an OSM file).

    The network comes from the cache in ``cache_dir`` (read from the extract on first use).
    Matrices are kept in memory and, with ``matrix_dir``, on disk, keyed by the network version
    and the exact places (the estate), so a re-plan on the same network and bins is a file read.
    """

    def __init__(
        self,
        extract: Path,
        *,
        cache_dir: Path,
        matrix_dir: Path | None = None,
        network: RoadNetwork | None = None,
    ) -> None:
        self.extract = extract
        self.cache_dir = cache_dir
        self.matrix_dir = matrix_dir
        self._network = network
        self._index: _EdgeIndex | None = None
        self._matrices = CachedProvider(_Uncached(self), directory=matrix_dir)

    @classmethod
    def from_network(cls, network: RoadNetwork, extract: Path | None = None) -> RoadProvider:
        """A provider over an already loaded network (no disk caches)."""
        return cls(extract or Path("-"), cache_dir=Path("-"), network=network)

    @property
    def network(self) -> RoadNetwork:
        if self._network is None:
            self._network = load_network(self.extract, self.cache_dir).network
        return self._network

    @property
    def cache_key(self) -> str:
        return f"roads:{self.network.version}"

    def matrix(self, points: Sequence[LatLon]) -> TravelMatrix:
        return self._matrices.matrix(points)

    def check_request(self, request: PlanRequest) -> dict[str, Snap]:
        """Snap every depot, tip and bin; :class:`OffNetworkError` names those too far off."""
        places: list[Site | DisposalSite | BinStop] = [
            *request.depots,
            *request.tips,
            *request.bins,
        ]
        snaps = self.check([(p.id, (p.lat, p.lon)) for p in places])
        return {p.id: snap for p, snap in zip(places, snaps, strict=True)}

    def _edge_index(self) -> _EdgeIndex:
        if self._index is None:
            self._index = _EdgeIndex(self.network)
        return self._index

    def snap(self, points: Sequence[LatLon]) -> list[Snap]:
        """Where each point meets the road (no distance limit)."""
        return self._edge_index().snap(points) if points else []

    def check(self, named: Sequence[tuple[str, LatLon]]) -> list[Snap]:
        """Snap named places; raise :class:`OffNetworkError` naming every one too far off."""
        snaps = self.snap([point for _, point in named])
        far = [
            (name, lat, lon, snap.distance_m)
            for (name, (lat, lon)), snap in zip(named, snaps, strict=True)
            if snap.distance_m > MAX_SNAP_M
        ]
        if far:
            raise OffNetworkError(far)
        return snaps

    def compute_matrix(self, points: Sequence[LatLon]) -> TravelMatrix:
        """The matrix from a fresh search (what :meth:`matrix` caches)."""
        from scipy.sparse.csgraph import dijkstra

        named = [(f"point {i} at {p[0]:.6f},{p[1]:.6f}", p) for i, p in enumerate(points)]
        spliced = _splice(self.network, self.check(named))
        contracted = _contract(spliced)
        unique, inverse = np.unique(spliced.place_node, return_inverse=True)
        columns = np.array([contracted.number[int(node)] for node in unique], dtype=np.int64)
        combined = np.empty((unique.shape[0], unique.shape[0]), dtype=np.float64)
        for start in range(0, columns.shape[0], _CHUNK):
            sources = columns[start : start + _CHUNK]
            rows = dijkstra(contracted.graph, directed=True, indices=sources)
            combined[start : start + sources.shape[0]] = rows[:, columns]
        seconds, metres = _split(combined[np.ix_(inverse, inverse)])
        np.fill_diagonal(seconds, 0)
        np.fill_diagonal(metres, 0)
        return TravelMatrix(durations_s=seconds, distances_m=metres)

    def paths(self, legs: Sequence[tuple[LatLon, LatLon]]) -> list[list[LatLon]]:
        """The street path (lat, lon points, snapped ends included) of each (from, to) leg."""
        from scipy.sparse.csgraph import dijkstra

        if not legs:
            return []
        places = sorted({p for leg in legs for p in leg})
        place_index = {p: i for i, p in enumerate(places)}
        spliced = _splice(self.network, self.snap(places))
        contracted = _contract(spliced)

        def node_of(point: LatLon) -> int:
            return contracted.number[int(spliced.place_node[place_index[point]])]

        by_source: dict[int, list[int]] = {}
        for number, (origin, _) in enumerate(legs):
            by_source.setdefault(node_of(origin), []).append(number)
        out: list[list[LatLon]] = [[] for _ in legs]
        for source, numbers in by_source.items():
            _, predecessors = dijkstra(
                contracted.graph, directed=True, indices=source, return_predecessors=True
            )
            for k in numbers:
                nodes = _expand(_walk(predecessors, source, node_of(legs[k][1])), contracted)
                out[k] = [
                    (round(float(spliced.node_lat[i]), 6), round(float(spliced.node_lon[i]), 6))
                    for i in nodes
                ]
        return out


class _Uncached:
    """The road provider's own search, seen as a provider for :class:`CachedProvider`."""

    def __init__(self, roads: RoadProvider) -> None:
        self.roads = roads

    @property
    def cache_key(self) -> str:
        return self.roads.cache_key

    def matrix(self, points: Sequence[LatLon]) -> TravelMatrix:
        return self.roads.compute_matrix(points)


def _walk(predecessors: npt.NDArray[np.int32], source: int, target: int) -> list[int]:
    """Contracted nodes from ``source`` to ``target`` along Dijkstra's predecessor tree."""
    nodes = [target]
    while nodes[-1] != source:
        previous = int(predecessors[nodes[-1]])
        if previous < 0:  # unreachable: cannot happen inside one strongly connected component
            return []
        nodes.append(previous)
    nodes.reverse()
    return nodes


def _expand(path: list[int], contracted: _Contracted) -> list[int]:
    """Spliced-graph nodes of a contracted path, the folded street nodes put back."""
    if not path:
        return []
    full = [contracted.nodes[path[0]]]
    for a, b in itertools.pairwise(path):
        start, end = contracted.nodes[a], contracted.nodes[b]
        full.extend(contracted.chains[(start, end)])
        full.append(end)
    return full


def with_street_paths(routes: Sequence[Route], provider: PathProvider) -> tuple[Route, ...]:
    """``routes`` with each leg's street path from ``provider`` (empty routes left as they are)."""
    legs: list[tuple[LatLon, LatLon]] = []
    for route in routes:
        if not route.is_empty:
            legs.extend(
                ((a.lat, a.lon), (b.lat, b.lon))
                for a, b in zip(route.stops, route.stops[1:], strict=False)
            )
    paths = iter(provider.paths(legs))
    out = []
    for route in routes:
        if route.is_empty:
            out.append(route)
            continue
        route_legs = tuple(tuple(next(paths)) for _ in route.stops[1:])
        out.append(dataclasses.replace(route, legs=route_legs))
    return tuple(out)


@functools.cache
def road_provider(extract: Path) -> RoadProvider:
    """One provider per extract in this process, caching under the data directory."""
    from common.settings import get_settings

    data_dir = get_settings().data_dir
    return RoadProvider(
        extract,
        cache_dir=data_dir / "roads" / "networks",
        matrix_dir=data_dir / "roads" / "matrices",
    )


def snap_summary(snaps: dict[str, Snap]) -> str:
    """One line on how far places sit from the road they were snapped to."""
    if not snaps:
        return "no places to snap to the road network"
    metres = np.array([s.distance_m for s in snaps.values()])
    furthest = max(snaps, key=lambda name: snaps[name].distance_m)
    return (
        f"{len(snaps)} places snapped to the road network: median {np.median(metres):.0f} m, "
        f"p90 {np.percentile(metres, 90):.0f} m, furthest {furthest} at "
        f"{snaps[furthest].distance_m:.0f} m off the road"
    )
