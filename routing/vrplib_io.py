"""Read CVRPLIB instances and solutions into plain values.

Parsing is delegated to the ``vrplib`` package; this module only turns its dictionaries into a
frozen :class:`CvrpInstance` and computes the distance convention CVRPLIB scores with.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

__all__ = [
    "CvrpInstance",
    "read_cvrp",
    "rounded_euclidean",
    "route_cost",
]

IntMatrix = npt.NDArray[np.int64]


def rounded_euclidean(coords: npt.ArrayLike) -> IntMatrix:
    """Return the EUC_2D distance matrix: Euclidean distance rounded to the nearest integer.

    TSPLIB's ``nint`` is ``int(x + 0.5)``; for non-negative distances that is round-half-up,
    which differs from numpy's round-half-even on exact .5 values, so it is spelled out here.
    """
    points = np.asarray(coords, dtype=np.float64)
    deltas = points[:, None, :] - points[None, :, :]
    rounded: IntMatrix = np.floor(np.sqrt((deltas**2).sum(axis=-1)) + 0.5).astype(np.int64)
    return rounded


@dataclass(frozen=True)
class CvrpInstance:
    """A capacitated VRP with one depot, as CVRPLIB defines it.

    Node ``0`` is the depot after :func:`read_cvrp` reorders the file; ``node_ids`` keeps the
    identifiers the file used so answers can be written back in the file's own numbering.
    """

    name: str
    coords: npt.NDArray[np.float64]
    demands: npt.NDArray[np.int64]
    capacity: int
    node_ids: tuple[int, ...]
    num_vehicles: int | None = None
    distances: IntMatrix = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        count = len(self.node_ids)
        if count < 2:
            raise ValueError(f"{self.name}: needs a depot and at least one customer")
        if self.coords.shape != (count, 2):
            raise ValueError(f"{self.name}: coords shape {self.coords.shape} != ({count}, 2)")
        if self.demands.shape != (count,):
            raise ValueError(f"{self.name}: demands shape {self.demands.shape} != ({count},)")
        if self.capacity <= 0:
            raise ValueError(f"{self.name}: capacity must be positive, got {self.capacity}")
        if int(self.demands.max()) > self.capacity:
            raise ValueError(f"{self.name}: a customer demands more than the vehicle capacity")
        if int(self.demands[0]) != 0:
            raise ValueError(f"{self.name}: the depot (node 0) must have zero demand")
        object.__setattr__(self, "distances", rounded_euclidean(self.coords))

    @property
    def num_customers(self) -> int:
        return len(self.node_ids) - 1

    def min_vehicles(self) -> int:
        """Lower bound on the number of routes: total demand over capacity, rounded up."""
        return max(1, -(-int(self.demands.sum()) // self.capacity))


def read_cvrp(path: str | Path) -> CvrpInstance:
    """Read a CVRPLIB ``.vrp`` file (EUC_2D, single depot).

    Raises
    ------
    ValueError
        If the file is not a single-depot CVRP with node coordinates.
    """
    import vrplib

    path = Path(path)
    raw = vrplib.read_instance(str(path))
    if "node_coord" not in raw:
        raise ValueError(f"{path.name}: only EUC_2D instances with NODE_COORD_SECTION are read")
    depots = [int(d) for d in np.atleast_1d(raw.get("depot", [0]))]
    if len(depots) != 1:
        raise ValueError(f"{path.name}: expected one depot, found {len(depots)}")
    depot = depots[0]
    count = int(raw["dimension"])
    # TSPLIB numbers nodes 1..DIMENSION in file order; vrplib returns them 0-based in that order.
    order = [depot, *[i for i in range(count) if i != depot]]
    vehicles = raw.get("vehicles")
    return CvrpInstance(
        name=str(raw.get("name", path.stem)),
        coords=np.asarray(raw["node_coord"], dtype=np.float64)[order],
        demands=np.asarray(raw["demand"], dtype=np.int64)[order],
        capacity=int(raw["capacity"]),
        node_ids=tuple(i + 1 for i in order),
        num_vehicles=int(vehicles) if vehicles is not None else None,
    )


def route_cost(distances: IntMatrix, routes: list[list[int]], depot: int = 0) -> int:
    """Total length of ``routes`` (node indices, depot excluded) on ``distances``."""
    total = 0
    for route in routes:
        path = [depot, *route, depot]
        total += int(distances[path[:-1], path[1:]].sum())
    return total
