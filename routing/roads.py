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
    junctions and the places, a fraction of the nodes, and the same shortest paths. A folded
    edge is found again from its first spliced edge (``first_edge``) by following
    ``next_edge`` to draw the path on the streets.
    """

    graph: object
    number: dict[int, int]  # spliced node -> contracted node
    nodes: list[int]  # contracted node -> spliced node
    first_edge: dict[tuple[int, int], int]  # (spliced start, spliced end) -> spliced edge
    next_edge: npt.NDArray[np.int64]  # spliced edge -> the edge after it on a folded street
    edge_to: npt.NDArray[np.int64]


IntArray = npt.NDArray[np.int64]


def _through_nodes(
    indptr: IntArray, targets: IntArray, sources: IntArray, places: IntArray
) -> npt.NDArray[np.bool_]:
    """Nodes that only continue one street (see :class:`_Contracted`)."""
    size = indptr.shape[0] - 1
    out_degree = np.diff(indptr)
    in_degree = np.bincount(targets, minlength=size)
    # Edges are sorted by source, then target; in-neighbours sorted per node the same way.
    by_target = np.lexsort((sources, targets))
    in_indptr = np.concatenate([[0], np.cumsum(in_degree)])
    in_sources = sources[by_target]
    through = np.zeros(size, dtype=bool)
    two = np.flatnonzero((out_degree == 2) & (in_degree == 2))
    out_a, out_b = targets[indptr[two]], targets[indptr[two] + 1]
    in_a, in_b = in_sources[in_indptr[two]], in_sources[in_indptr[two] + 1]
    through[two] = (np.minimum(out_a, out_b) == np.minimum(in_a, in_b)) & (
        np.maximum(out_a, out_b) == np.maximum(in_a, in_b)
    )
    one = np.flatnonzero((out_degree == 1) & (in_degree == 1))
    through[one] = targets[indptr[one]] != in_sources[in_indptr[one]]
    through[places] = False
    return through


def _next_edges(
    indptr: IntArray, targets: IntArray, sources: IntArray, through: npt.NDArray[np.bool_]
) -> IntArray:
    """For each edge ending at a pass-through node, the edge that continues the street."""
    next_edge = np.full(targets.shape[0], -1, dtype=np.int64)
    ends = np.flatnonzero(through[targets])
    via = targets[ends]
    first = indptr[via]
    single = np.diff(indptr)[via] == 1
    # Two-way: of the node's two out-edges, the one that does not turn back.
    turns_back = targets[first] == sources[ends]
    next_edge[ends] = np.where(single | ~turns_back, first, first + 1)
    return next_edge


def _contract(spliced: _Augmented) -> _Contracted:
    from scipy.sparse import csr_matrix

    csr = spliced.graph.tocsr()  # type: ignore[attr-defined]
    csr.sort_indices()
    indptr = csr.indptr.astype(np.int64)
    targets = csr.indices.astype(np.int64)
    weights = csr.data.astype(np.float64)
    sources = np.repeat(np.arange(indptr.shape[0] - 1), np.diff(indptr))
    through = _through_nodes(indptr, targets, sources, spliced.place_node)
    next_edge = _next_edges(indptr, targets, sources, through)
    # Pointer doubling: every edge learns the total weight to, and the last edge of, its street.
    total, last, ahead = weights.copy(), np.arange(targets.shape[0]), next_edge.copy()
    for _ in range(64):  # 2^64 edges: a street never is that long
        going = np.flatnonzero(ahead >= 0)
        if going.shape[0] == 0:
            break
        step = ahead[going]
        total[going] += total[step]
        last[going] = last[step]
        ahead[going] = ahead[step]
    starts = np.flatnonzero(~through[sources])
    begin, end = sources[starts], targets[last[starts]]
    # Parallel streets between the same two junctions: keep the lighter.
    order = np.lexsort((total[starts], end, begin))
    begin, end, chosen = begin[order], end[order], starts[order]
    keep = np.ones(begin.shape[0], dtype=bool)
    keep[1:] = (begin[1:] != begin[:-1]) | (end[1:] != end[:-1])
    keep &= begin != end
    begin, end, chosen = begin[keep], end[keep], chosen[keep]
    nodes = np.flatnonzero(~through)
    renumber = np.full(through.shape[0], -1, dtype=np.int64)
    renumber[nodes] = np.arange(nodes.shape[0])
    graph = csr_matrix(
        (total[chosen], (renumber[begin], renumber[end])), shape=(nodes.shape[0], nodes.shape[0])
    )
    return _Contracted(
        graph,
        {int(n): i for i, n in enumerate(nodes.tolist())},
        nodes.tolist(),
        dict(zip(zip(begin.tolist(), end.tolist(), strict=True), chosen.tolist(), strict=True)),
        next_edge,
        targets,
    )


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

    def paths(
        self,
        legs: Sequence[tuple[LatLon, LatLon]],
        seconds: Sequence[float] | None = None,
    ) -> list[list[LatLon]]:
        """The street path (lat, lon points, snapped ends included) of each (from, to) leg.

        ``seconds``, each leg's travel time when known (from the plan), bounds each search to
        the leg's neighbourhood instead of the whole network.
        """
        if not legs:
            return []
        places = sorted({p for leg in legs for p in leg})
        place_index = {p: i for i, p in enumerate(places)}
        spliced = _splice(self.network, self.snap(places))
        contracted = _contract(spliced)
        nodes = [
            (
                contracted.number[int(spliced.place_node[place_index[a]])],
                contracted.number[int(spliced.place_node[place_index[b]])],
            )
            for a, b in legs
        ]
        # Time bound of a search: the slowest of its source's legs, plus rounding slack.
        by_source: dict[int, list[int]] = {}
        for number, (source, _) in enumerate(nodes):
            by_source.setdefault(source, []).append(number)
        out: list[list[LatLon]] = [[] for _ in legs]
        for source, numbers in by_source.items():
            bound = np.inf
            if seconds is not None:
                bound = (max(seconds[k] for k in numbers) + 2) * 10 * _SCALE
            _search(contracted, source, [(k, nodes[k][1]) for k in numbers], bound, out, spliced)
        return out


def _search(
    contracted: _Contracted,
    source: int,
    targets: list[tuple[int, int]],
    bound: float,
    out: list[list[LatLon]],
    spliced: _Augmented,
) -> None:
    """Fill ``out[k]`` with the street path from ``source`` to each (k, target)."""
    from scipy.sparse.csgraph import dijkstra

    _, predecessors = dijkstra(
        contracted.graph, directed=True, indices=source, return_predecessors=True, limit=bound
    )
    for k, target in targets:
        walked = _walk(predecessors, source, target)
        if not walked and np.isfinite(bound):  # the bound was too tight: search everywhere
            _search(contracted, source, [(k, target)], np.inf, out, spliced)
            continue
        out[k] = [
            (round(float(spliced.node_lat[i]), 6), round(float(spliced.node_lon[i]), 6))
            for i in _expand(walked, contracted)
        ]


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
        edge = contracted.first_edge[(contracted.nodes[a], contracted.nodes[b])]
        while edge >= 0:
            full.append(int(contracted.edge_to[edge]))
            edge = int(contracted.next_edge[edge])
    return full


def with_street_paths(routes: Sequence[Route], provider: PathProvider) -> tuple[Route, ...]:
    """``routes`` with each leg's street path from ``provider`` (empty routes left as they are)."""
    legs: list[tuple[LatLon, LatLon]] = []
    seconds: list[float] = []
    for route in routes:
        if not route.is_empty:
            for a, b in itertools.pairwise(route.stops):
                legs.append(((a.lat, a.lon), (b.lat, b.lon)))
                # The plan's own travel time bounds the search for the leg's path.
                seconds.append(max(0, b.arrival_s - a.departure_s))
    paths = iter(provider.paths(legs, seconds))
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
