"""Travel-time and distance matrices between points, from pluggable providers.

:class:`HaversineProvider` is the embedded default: no network, straight-line distance times a
road factor at an average urban speed. :class:`OsrmTableProvider` asks an OSRM-compatible
``/table`` service for road durations and distances. :class:`CachedProvider` wraps either so
re-planning the same bins during a shift does not ask the server again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from routing.errors import MatrixError

__all__ = [
    "CachedProvider",
    "HaversineProvider",
    "LatLon",
    "MatrixProvider",
    "OsrmTableProvider",
    "PathProvider",
    "SubsetProvider",
    "TravelMatrix",
    "haversine_m",
]

logger = logging.getLogger(__name__)

LatLon = tuple[float, float]
IntMatrix = npt.NDArray[np.int64]

EARTH_RADIUS_M: Final = 6_371_008.8  # IUGG mean Earth radius
# Stands in for "no road between these points": large enough that no shift can absorb it, small
# enough that sums of a few thousand of them stay far from int64 overflow in the solver.
UNREACHABLE: Final = 10_000_000


@dataclass(frozen=True)
class TravelMatrix:
    """Square matrices of whole seconds and whole metres; row = from, column = to."""

    durations_s: IntMatrix
    distances_m: IntMatrix

    def __post_init__(self) -> None:
        durations = np.asarray(self.durations_s, dtype=np.int64)
        distances = np.asarray(self.distances_m, dtype=np.int64)
        if durations.ndim != 2 or durations.shape[0] != durations.shape[1]:
            raise ValueError(f"durations must be a square matrix, got shape {durations.shape}")
        if distances.shape != durations.shape:
            raise ValueError(
                f"distances shape {distances.shape} differs from durations {durations.shape}"
            )
        if (durations < 0).any() or (distances < 0).any():
            raise ValueError("travel matrices must not contain negative values")
        object.__setattr__(self, "durations_s", durations)
        object.__setattr__(self, "distances_m", distances)

    @property
    def size(self) -> int:
        return int(self.durations_s.shape[0])


@runtime_checkable
class MatrixProvider(Protocol):
    """Anything that turns points into a :class:`TravelMatrix`."""

    @property
    def cache_key(self) -> str:
        """Identifies the provider and its settings, so cached matrices are not mixed up."""
        ...

    def matrix(self, points: Sequence[LatLon]) -> TravelMatrix:
        """Durations and distances between every ordered pair of ``points`` (lat, lon)."""
        ...


@runtime_checkable
class PathProvider(Protocol):
    """A provider that can also draw each leg's path on the streets."""

    def paths(
        self, legs: Sequence[tuple[LatLon, LatLon]], seconds: Sequence[float] | None = None
    ) -> list[list[LatLon]]:
        """The (lat, lon) points of the street path of each (from, to) leg; ``seconds`` are
        the legs' travel times when known, to keep each search near its leg."""
        ...


def haversine_m(points: Sequence[LatLon]) -> npt.NDArray[np.float64]:
    """Great-circle distance in metres between every pair of (lat, lon) points."""
    coords = np.radians(np.asarray(points, dtype=np.float64).reshape(-1, 2))
    lat, lon = coords[:, 0], coords[:, 1]
    dlat = lat[:, None] - lat[None, :]
    dlon = lon[:, None] - lon[None, :]
    a = np.sin(dlat / 2) ** 2 + np.cos(lat)[:, None] * np.cos(lat)[None, :] * np.sin(dlon / 2) ** 2
    metres: npt.NDArray[np.float64] = 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.clip(a, 0, 1)))
    return metres


@dataclass(frozen=True)
class HaversineProvider:
    """Straight-line distance × ``road_factor`` driven at ``speed_kmh``.

    *Defaults*: 1.3 is the usual circuity of UK urban road networks relative to the crow's
    flight; 25 km/h is an average refuse-vehicle speed between stops in town traffic.
    """

    road_factor: float = 1.3
    speed_kmh: float = 25.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.road_factor) and self.road_factor >= 1.0):
            raise ValueError(f"road_factor must be >= 1, got {self.road_factor}")
        if not (math.isfinite(self.speed_kmh) and self.speed_kmh > 0):
            raise ValueError(f"speed_kmh must be positive, got {self.speed_kmh}")

    @property
    def cache_key(self) -> str:
        return f"haversine:{self.road_factor}:{self.speed_kmh}"

    def matrix(self, points: Sequence[LatLon]) -> TravelMatrix:
        road_m = haversine_m(points) * self.road_factor
        seconds = road_m / (self.speed_kmh / 3.6)
        return TravelMatrix(
            durations_s=np.rint(seconds).astype(np.int64),
            distances_m=np.rint(road_m).astype(np.int64),
        )


@dataclass(frozen=True)
class OsrmTableProvider:
    """Road durations and distances from an OSRM-compatible ``/table/v1`` HTTP service.

    Requests ``{base_url}/table/v1/{profile}/{lon,lat;...}?annotations=duration,distance``
    and reads ``durations`` (seconds) and ``distances`` (metres); any server answering in that
    shape (OSRM itself, or Valhalla behind an OSRM-format endpoint) works. Point sets larger
    than ``max_locations`` (OSRM's default ``--max-table-size`` is 100) are fetched block by
    block with ``sources``/``destinations``. Unroutable pairs (``null``) become
    :data:`UNREACHABLE`.
    """

    base_url: str
    profile: str = "driving"
    timeout_s: float = 30.0
    max_locations: int = 100

    def __post_init__(self) -> None:
        parsed = urllib.parse.urlparse(self.base_url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError(f"base_url must be an http(s) URL, got {self.base_url!r}")
        if self.max_locations < 2:
            raise ValueError("max_locations must be at least 2")
        if self.timeout_s <= 0:
            raise ValueError("timeout_s must be positive")

    @property
    def cache_key(self) -> str:
        return f"osrm:{self.base_url.rstrip('/')}:{self.profile}"

    def matrix(self, points: Sequence[LatLon]) -> TravelMatrix:
        count = len(points)
        durations = np.zeros((count, count), dtype=np.int64)
        distances = np.zeros((count, count), dtype=np.int64)
        block = max(1, self.max_locations // 2)
        indices = list(range(count))
        if count <= self.max_locations:
            blocks = [(indices, indices)]
        else:
            chunks = [indices[i : i + block] for i in range(0, count, block)]
            blocks = [(rows, cols) for rows in chunks for cols in chunks]
        for rows, cols in blocks:
            block_durations, block_distances = self._table(points, rows, cols)
            durations[np.ix_(rows, cols)] = block_durations
            distances[np.ix_(rows, cols)] = block_distances
        return TravelMatrix(durations_s=durations, distances_m=distances)

    def _table(
        self, points: Sequence[LatLon], rows: list[int], cols: list[int]
    ) -> tuple[IntMatrix, IntMatrix]:
        same = rows == cols
        wanted = rows if same else rows + [c for c in cols if c not in set(rows)]
        position = {node: i for i, node in enumerate(wanted)}
        coordinates = ";".join(f"{points[i][1]:.6f},{points[i][0]:.6f}" for i in wanted)
        query = {"annotations": "duration,distance"}
        if not same:
            query["sources"] = ";".join(str(position[r]) for r in rows)
            query["destinations"] = ";".join(str(position[c]) for c in cols)
        url = (
            f"{self.base_url.rstrip('/')}/table/v1/{self.profile}/{coordinates}"
            f"?{urllib.parse.urlencode(query, safe=';,')}"
        )
        payload = self._get_json(url)
        shape = (len(rows), len(cols))
        return _osrm_values(payload, "durations", shape, url), _osrm_values(
            payload, "distances", shape, url
        )

    def _get_json(self, url: str) -> dict[str, object]:
        request = urllib.request.Request(url, headers={"Accept": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                body = response.read()
        except urllib.error.HTTPError as exc:
            raise MatrixError(
                f"routing server answered HTTP {exc.code}", url=url, status=exc.code
            ) from exc
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise MatrixError(f"routing server unreachable: {exc}", url=url) from exc
        try:
            payload = json.loads(body)
        except json.JSONDecodeError as exc:
            raise MatrixError("routing server returned invalid JSON", url=url) from exc
        if not isinstance(payload, dict) or payload.get("code") != "Ok":
            code = payload.get("code") if isinstance(payload, dict) else None
            message = payload.get("message") if isinstance(payload, dict) else None
            raise MatrixError(f"routing server refused the table: {code} {message}", url=url)
        return payload


def _osrm_values(
    payload: dict[str, object], key: str, shape: tuple[int, int], url: str
) -> IntMatrix:
    rows = payload.get(key)
    if not isinstance(rows, list) or len(rows) != shape[0]:
        raise MatrixError(f"routing server response lacks a {shape[0]}-row {key!r} table", url=url)
    values = np.full(shape, UNREACHABLE, dtype=np.int64)
    for i, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != shape[1]:
            raise MatrixError(f"{key!r} row {i} does not have {shape[1]} entries", url=url)
        for j, value in enumerate(row):
            if value is not None:
                values[i, j] = round(float(value))
    return values


class CachedProvider:
    """Memoises another provider's matrices by provider settings and exact coordinate list.

    Matrices are kept in memory and, when ``directory`` is given, as ``.npz`` files there, so a
    re-plan later in the shift reuses the morning's table.
    """

    def __init__(self, inner: MatrixProvider, *, directory: Path | None = None) -> None:
        self.inner = inner
        self.directory = directory
        self._memory: dict[str, TravelMatrix] = {}
        self.hits = 0
        self.misses = 0

    @property
    def cache_key(self) -> str:
        return self.inner.cache_key

    def key_for(self, points: Sequence[LatLon]) -> str:
        digest = hashlib.sha256(self.inner.cache_key.encode())
        for lat, lon in points:
            digest.update(f"{lat:.6f},{lon:.6f};".encode())
        return digest.hexdigest()

    def matrix(self, points: Sequence[LatLon]) -> TravelMatrix:
        key = self.key_for(points)
        cached = self._memory.get(key) or self._load(key)
        if cached is not None:
            self.hits += 1
            self._memory[key] = cached
            return cached
        self.misses += 1
        result = self.inner.matrix(points)
        self._memory[key] = result
        self._store(key, result)
        return result

    def _path(self, key: str) -> Path | None:
        return None if self.directory is None else self.directory / f"{key}.npz"

    def _load(self, key: str) -> TravelMatrix | None:
        path = self._path(key)
        if path is None or not path.exists():
            return None
        try:
            with np.load(path) as stored:
                return TravelMatrix(stored["durations_s"], stored["distances_m"])
        except (OSError, KeyError, ValueError) as exc:
            logger.warning("ignoring unreadable matrix cache file %s: %s", path, exc)
            return None

    def _store(self, key: str, result: TravelMatrix) -> None:
        path = self._path(key)
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        # Write then rename so a concurrent reader never sees half a file.
        partial = path.with_suffix(".tmp.npz")
        np.savez_compressed(partial, durations_s=result.durations_s, distances_m=result.distances_m)
        partial.replace(path)


class SubsetProvider:
    """Serves rows and columns of an already computed matrix, looked up by coordinates.

    Lets a second engine work on a subset of the places without asking the routing server
    again. Every requested point must be one of ``points``.
    """

    def __init__(self, matrix: TravelMatrix, points: Sequence[LatLon]) -> None:
        self._matrix = matrix
        self._index = {(lat, lon): i for i, (lat, lon) in enumerate(points)}

    @property
    def cache_key(self) -> str:
        return f"subset:{id(self._matrix)}"

    def matrix(self, points: Sequence[LatLon]) -> TravelMatrix:
        try:
            rows = np.array([self._index[(lat, lon)] for lat, lon in points], dtype=np.int64)
        except KeyError as exc:
            raise MatrixError(f"point {exc.args[0]} is not in the precomputed matrix") from exc
        return TravelMatrix(
            self._matrix.durations_s[np.ix_(rows, rows)],
            self._matrix.distances_m[np.ix_(rows, rows)],
        )
