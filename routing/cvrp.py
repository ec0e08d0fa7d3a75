"""The CVRP mode: plain capacitated routing on CVRPLIB instances.

This is how the routing core is measured against published best-known solutions (see
``bench/routing_cvrplib.py``); the refuse model in :mod:`routing.solver` shares its OR-Tools
search settings. Three engines sit behind one function:

``ortools``
    OR-Tools routing with the distance matrix registered once (no Python callback per arc),
    a cheapest-arc first solution and guided local search.
``pyvrp``
    PyVRP's iterated local search, which the benchmark shows is the strongest on CVRP.
``hybrid``
    PyVRP for most of the budget, then OR-Tools guided local search started from PyVRP's
    routes (``ReadAssignmentFromRoutes``) for the rest.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal, get_args

import numpy as np

from routing.vrplib_io import CvrpInstance, IntMatrix, route_cost

if TYPE_CHECKING:
    import pyvrp

__all__ = [
    "DEFAULT_ENGINE",
    "Engine",
    "OrtoolsSearch",
    "solve_cvrp",
]

logger = logging.getLogger(__name__)

Engine = Literal["ortools", "pyvrp", "hybrid"]
ENGINES: Final = get_args(Engine)

# Chosen from bench/results/routing_cvrplib.md: the lowest mean gap on the six X instances at
# 30 s (pyvrp 0.58 %, hybrid 0.64 %, ortools 4.94 %); at 10 s hybrid and pyvrp were within
# noise of each other (0.91 % and 0.98 %).
DEFAULT_ENGINE: Final[Engine] = "pyvrp"

# Share of the budget the hybrid engine gives PyVRP before OR-Tools polishes its routes;
# OR-Tools' local search rarely improves PyVRP's answer, so it gets only a short tail.
CVRP_HYBRID_PYVRP_SHARE: Final = 0.85

Routes = list[list[int]]


@dataclass(frozen=True)
class OrtoolsSearch:
    """OR-Tools search settings, by enum name so they can live in a TOML file.

    The defaults (cheapest arc, then guided local search) measured best of the variants tried
    on the CVRPLIB X instances at 10 s: SAVINGS first solutions, OR-Tools' iterated local search
    with SISR ruin, and nearest-neighbour-restricted operators (``neighbors_ratio`` 0.1) all
    had larger mean gaps. See ``bench/results/routing_cvrplib.md``.
    """

    first_solution: str = "PATH_CHEAPEST_ARC"
    metaheuristic: str = "GUIDED_LOCAL_SEARCH"
    guided_local_search_lambda: float = 0.1
    # Restrict local search moves to each node's nearest neighbours; 1.0 means all nodes.
    neighbors_ratio: float = 1.0
    min_neighbors: int = 1
    log_search: bool = False

    def __post_init__(self) -> None:
        from ortools.constraint_solver import routing_enums_pb2

        strategies = routing_enums_pb2.FirstSolutionStrategy.Value
        metaheuristics = routing_enums_pb2.LocalSearchMetaheuristic.Value
        if self.first_solution not in strategies.keys():  # noqa: SIM118 (a protobuf enum)
            raise ValueError(f"unknown OR-Tools first solution strategy {self.first_solution!r}")
        if self.metaheuristic not in metaheuristics.keys():  # noqa: SIM118
            raise ValueError(f"unknown OR-Tools metaheuristic {self.metaheuristic!r}")
        if self.guided_local_search_lambda <= 0:
            raise ValueError("guided_local_search_lambda must be positive")

    def parameters(self, time_limit_s: float) -> Any:
        """Build the ``RoutingSearchParameters`` proto for a search of ``time_limit_s``."""
        from ortools.constraint_solver import pywrapcp, routing_enums_pb2

        params = pywrapcp.DefaultRoutingSearchParameters()
        params.first_solution_strategy = routing_enums_pb2.FirstSolutionStrategy.Value.Value(
            self.first_solution
        )
        params.local_search_metaheuristic = routing_enums_pb2.LocalSearchMetaheuristic.Value.Value(
            self.metaheuristic
        )
        params.ls_operator_neighbors_ratio = self.neighbors_ratio
        params.ls_operator_min_neighbors = self.min_neighbors
        params.guided_local_search_lambda_coefficient = self.guided_local_search_lambda
        params.log_search = self.log_search
        params.time_limit.FromMilliseconds(max(1, round(time_limit_s * 1000)))
        return params


def _vehicle_bound(instance: CvrpInstance) -> int:
    """How many vehicles to offer when the instance does not fix the fleet.

    CVRPLIB X instances leave the fleet free; their best-known solutions use the bin-packing
    lower bound or a few more routes, so a margin of about 15 % (at least 3) is enough.
    """
    if instance.num_vehicles is not None:
        return instance.num_vehicles
    lower = instance.min_vehicles()
    return min(instance.num_customers, lower + max(3, math.ceil(0.15 * lower)))


def _solve_ortools(
    instance: CvrpInstance,
    time_limit_s: float,
    *,
    search: OrtoolsSearch,
    initial_routes: Routes | None = None,
) -> Routes:
    from ortools.constraint_solver import pywrapcp

    started = time.perf_counter()
    num_vehicles = max(_vehicle_bound(instance), len(initial_routes or []))
    manager = pywrapcp.RoutingIndexManager(instance.num_customers + 1, num_vehicles, 0)
    model = pywrapcp.RoutingModel(manager)
    # One matrix registration replaces a Python callback on every arc evaluation.
    distance_index = model.RegisterTransitMatrix(instance.distances.tolist())
    model.SetArcCostEvaluatorOfAllVehicles(distance_index)
    demand_index = model.RegisterUnaryTransitVector(instance.demands.tolist())
    model.AddDimension(demand_index, 0, instance.capacity, True, "load")
    params = search.parameters(max(0.1, time_limit_s - (time.perf_counter() - started)))

    if initial_routes:
        model.CloseModelWithParameters(params)
        padded = [*initial_routes, *([[]] * (num_vehicles - len(initial_routes)))]
        start = model.ReadAssignmentFromRoutes(padded, True)
        if start is None:
            logger.warning("OR-Tools rejected the warm-start routes; solving from scratch")
        remaining = max(0.1, time_limit_s - (time.perf_counter() - started))
        params.time_limit.FromMilliseconds(round(remaining * 1000))
        solution = model.SolveFromAssignmentWithParameters(start, params)
    else:
        solution = model.SolveWithParameters(params)
    if solution is None:
        raise RuntimeError(f"{instance.name}: OR-Tools found no solution in {time_limit_s} s")

    routes: Routes = []
    for vehicle in range(num_vehicles):
        route: list[int] = []
        index = solution.Value(model.NextVar(model.Start(vehicle)))
        while not model.IsEnd(index):
            route.append(manager.IndexToNode(index))
            index = solution.Value(model.NextVar(index))
        if route:
            routes.append(route)
    return routes


def _solve_pyvrp(instance: CvrpInstance, time_limit_s: float, *, seed: int) -> Routes:
    import pyvrp
    from pyvrp.stop import MaxRuntime

    data = pyvrp_cvrp_data(instance)
    result = pyvrp.solve(data, MaxRuntime(time_limit_s), seed=seed, display=False)
    if not result.is_feasible():
        raise RuntimeError(f"{instance.name}: PyVRP found no feasible solution")
    # PyVRP numbers clients 0..n-1 in the order given, which is node order minus the depot.
    return [
        [activity.idx + 1 for activity in route.schedule() if activity.is_client()]
        for route in result.best.routes()
    ]


def pyvrp_cvrp_data(
    instance: CvrpInstance, distances: IntMatrix | None = None
) -> pyvrp.ProblemData:
    """The instance as ``pyvrp.ProblemData`` on the rounded matrix (or ``distances``)."""
    import pyvrp

    matrix: Any = np.asarray(instance.distances if distances is None else distances, np.int64)
    # Locations follow instance order, so location i is node i and the depot is location 0.
    locations = [pyvrp.Location(x=float(x), y=float(y)) for x, y in instance.coords.tolist()]
    clients = [
        pyvrp.Client(location=node, delivery=[int(demand)])
        for node, demand in enumerate(instance.demands.tolist())
        if node != 0
    ]
    vehicle = pyvrp.VehicleType(
        num_available=_vehicle_bound(instance), capacity=[instance.capacity]
    )
    return pyvrp.ProblemData(
        locations=locations,
        clients=clients,
        depots=[pyvrp.Depot(location=0)],
        vehicle_types=[vehicle],
        distance_matrices=[matrix],
        duration_matrices=[np.zeros_like(matrix)],
    )


def solve_cvrp(
    instance: CvrpInstance,
    time_limit_s: float,
    *,
    engine: Engine = DEFAULT_ENGINE,
    seed: int = 0,
    search: OrtoolsSearch | None = None,
) -> tuple[int, Routes]:
    """Solve a CVRPLIB instance within ``time_limit_s`` seconds of wall-clock time.

    Returns ``(cost, routes)``: the cost on rounded Euclidean distances, recomputed here from
    the routes rather than taken from the engine, and the routes as lists of node indices
    (``1..n``, depot excluded) in :class:`~routing.vrplib_io.CvrpInstance` order.

    Raises
    ------
    ValueError
        If ``time_limit_s`` is not positive or ``engine`` is unknown.
    RuntimeError
        If the engine finds no feasible solution in time.
    """
    if time_limit_s <= 0:
        raise ValueError(f"time_limit_s must be positive, got {time_limit_s}")
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    search = search or OrtoolsSearch()
    if engine == "ortools":
        routes = _solve_ortools(instance, time_limit_s, search=search)
    elif engine == "pyvrp":
        routes = _solve_pyvrp(instance, time_limit_s, seed=seed)
    else:
        started = time.perf_counter()
        warm = _solve_pyvrp(instance, time_limit_s * CVRP_HYBRID_PYVRP_SHARE, seed=seed)
        remaining = max(0.1, time_limit_s - (time.perf_counter() - started))
        routes = _solve_ortools(instance, remaining, search=search, initial_routes=warm)
        if route_cost(instance.distances, routes) > route_cost(instance.distances, warm):
            routes = warm
    _check_routes(instance, routes)
    return route_cost(instance.distances, routes), routes


def _check_routes(instance: CvrpInstance, routes: Routes) -> None:
    """Refuse to return an answer that is not a CVRP solution, whatever the engine said."""
    visited = sorted(node for route in routes for node in route)
    if visited != list(range(1, instance.num_customers + 1)):
        raise RuntimeError(f"{instance.name}: engine returned routes that miss or repeat customers")
    for route in routes:
        load = int(instance.demands[route].sum())
        if load > instance.capacity:
            raise RuntimeError(f"{instance.name}: a route carries {load} > {instance.capacity}")
