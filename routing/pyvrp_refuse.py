"""The refuse model on PyVRP's native reload depots, for comparison with the OR-Tools model.

PyVRP (0.14) models tips as reload depots, capacity in several dimensions (and a load already
on board when re-planning), shifts, time windows and optional bins with prizes, but neither
drivers' breaks, waste streams nor tip opening hours. So this engine:

* accepts single-stream requests only;
* ends each route at the tip nearest the vehicle's end depot (its "return empty" tip), with
  the shift shortened by the unload and the drive back to the depot;
* reserves the time of the breaks a full shift needs, then inserts each break into the solved
  route just before the leg that would overrun 4.5 h of driving.

The result is re-checked by :func:`routing.validate.validate_plan` like any other plan, so any
shortfall of these approximations shows up as violations, never as a silently illegal route.
"""

from __future__ import annotations

import math
import time
from typing import Any, Final

import numpy as np

from routing.matrix import HaversineProvider, MatrixProvider
from routing.model import (
    BinStop,
    DisposalSite,
    Plan,
    PlanRequest,
    Route,
    Site,
    SolverStats,
    Unserved,
)
from routing.schedule import required_breaks, timed_route

__all__ = ["EXHAUSTIVE_ON_BEST_MAX_BINS", "plan_routes_pyvrp"]

# PyVRP searches the whole solution exhaustively after every new best. Above this many bins
# that search takes seconds: on the 3,000-bin benchmark day it left a dozen iterations in a
# minute (915 km) against over 3,000 iterations without it (834 km); at 1,000 bins, 366 km
# without it against 373 km with it. Below, it is cheap and helps.
EXHAUSTIVE_ON_BEST_MAX_BINS: Final = 500


def plan_routes_pyvrp(
    request: PlanRequest,
    *,
    time_limit_s: float = 30.0,
    matrix_provider: MatrixProvider | None = None,
    seed: int = 0,
) -> Plan:
    """Plan ``request`` with PyVRP; see the module docstring for what is approximated.

    Raises
    ------
    ValueError
        If the request mixes waste streams or has no tip.
    """
    import pyvrp

    from routing.validate import validate_plan

    streams = {v.stream for v in request.vehicles} | {b.stream for b in request.bins}
    if len(streams) != 1:
        raise ValueError("the PyVRP refuse engine handles one waste stream per request")
    if not request.tips:
        raise ValueError("the PyVRP refuse engine needs at least one tip")

    build_started = time.perf_counter()
    places: list[Site | DisposalSite | BinStop] = [*request.depots, *request.tips, *request.bins]
    points = [(p.lat, p.lon) for p in places]
    location_of = {p.id: i for i, p in enumerate(places)}
    travel = (matrix_provider or HaversineProvider()).matrix(points)
    rule = request.breaks

    locations = [pyvrp.Location(x=p.lon, y=p.lat, name=p.id) for p in places]
    depot_of: dict[str, int] = {}
    depots: list[pyvrp.Depot] = []
    sites: list[Site | DisposalSite] = [*request.depots, *request.tips]
    for site in sites:
        depot_of[site.id] = len(depots)
        service = site.unload_s if isinstance(site, DisposalSite) else 0
        depots.append(pyvrp.Depot(location=location_of[site.id], service_duration=service))
    clients = [
        pyvrp.Client(
            location=location_of[b.id],
            # Rounded up, as the OR-Tools model does, so its warm starts stay feasible there.
            pickup=[math.ceil(b.weight_kg), math.ceil(b.volume_l)],
            service_duration=b.service_s,
            tw_early=b.time_window.start_s if b.time_window else 0,
            tw_late=b.time_window.end_s if b.time_window else 2 * 86_400,
            required=b.must_collect,
            prize=0 if b.must_collect else b.drop_penalty,
            name=b.id,
        )
        for b in request.bins
    ]
    vehicle_types = []
    final_tips: list[DisposalSite] = []
    for vehicle in request.vehicles:
        depot_location = location_of[vehicle.end_depot_id]
        final = min(
            request.tips,
            key=lambda t: int(travel.durations_s[location_of[t.id], depot_location]),
        )
        final_tips.append(final)
        drive_home = int(travel.durations_s[location_of[final.id], depot_location])
        reserve = drive_home + final.unload_s
        # Driving done before a re-plan counts towards the first break.
        breaks_s = rule.break_s * required_breaks(
            vehicle.route_limit_s + vehicle.driving_since_break_s, rule.max_driving_s, rule.break_s
        )
        vehicle_types.append(
            pyvrp.VehicleType(
                num_available=1,
                capacity=[int(vehicle.capacity_kg), int(vehicle.capacity_l)],
                # A vehicle re-planned mid-round starts with what it has collected so far.
                initial_load=[
                    math.ceil(vehicle.initial_load_kg),
                    math.ceil(vehicle.initial_load_l),
                ],
                start_depot=depot_of[vehicle.start_depot],
                end_depot=depot_of[final.id],
                tw_early=vehicle.shift.start_s,
                tw_late=vehicle.shift.end_s - reserve - breaks_s,
                shift_duration=max(1, vehicle.route_limit_s - reserve - breaks_s),
                reload_depots=[depot_of[t.id] for t in request.tips],
                max_reloads=max(0, vehicle.max_tip_trips - 1),
                unit_distance_cost=1,
                unit_duration_cost=1,
                name=vehicle.id,
            )
        )
    distances: Any = np.asarray(travel.distances_m, dtype=np.int64)
    durations: Any = np.asarray(travel.durations_s, dtype=np.int64)
    data = pyvrp.ProblemData(
        locations=locations,
        clients=clients,
        depots=depots,
        vehicle_types=vehicle_types,
        distance_matrices=[distances],
        duration_matrices=[durations],
    )
    model_build_s = time.perf_counter() - build_started

    search_started = time.perf_counter()
    params = pyvrp.SolveParams(
        ils=pyvrp.IteratedLocalSearchParams(
            exhaustive_on_best=len(request.bins) <= EXHAUSTIVE_ON_BEST_MAX_BINS
        )
    )
    result = pyvrp.solve(data, _Deadline(time_limit_s), seed=seed, display=False, params=params)
    search_s = time.perf_counter() - search_started

    tips_by_depot = {depot_of[t.id]: t for t in request.tips}
    routes: dict[int, Route] = {}
    served: set[str] = set()
    for solved in result.best.routes():
        vehicle_index = solved.vehicle_type()
        sequence: list[str] = []
        activities = list(solved.schedule())
        for position, activity in enumerate(activities):
            if activity.is_client():
                sequence.append(request.bins[activity.idx].id)
            elif 0 < position < len(activities) - 1:
                sequence.append(tips_by_depot[activity.idx].id)
        served.update(sequence)
        routes[vehicle_index] = timed_route(
            request,
            vehicle_index,
            sequence,
            final_tips[vehicle_index],
            travel,
            location_of,
            start_s=int(solved.start_time()),
        )
    all_routes = tuple(
        routes.get(v) or timed_route(request, v, [], None, travel, location_of, start_s=None)
        for v in range(len(request.vehicles))
    )
    unserved = tuple(
        Unserved(
            b.id,
            b.must_collect,
            "must-collect bin did not fit (PyVRP)"
            if b.must_collect
            else "optional bin: the detour costs more than its drop penalty",
        )
        for b in request.bins
        if b.id not in served
    )
    stats = SolverStats(
        engine="pyvrp",
        status="feasible" if result.is_feasible() else "infeasible",
        model_build_s=round(model_build_s, 3),
        search_s=round(search_s, 3),
        objective=int(result.cost()) if result.is_feasible() else None,
        num_nodes=len(places),
    )
    plan = Plan(all_routes, unserved, stats)
    violations = validate_plan(request, plan, matrix=travel, points=points)
    return Plan(all_routes, unserved, stats, tuple(v.message for v in violations))


class _Deadline:
    """PyVRP stopping criterion that ends the search before the next iteration would overrun.

    PyVRP asks its criterion once per iteration, and on council-scale days (3,000 bins) one
    iteration takes seconds, so ``MaxRuntime`` overshot a 60 s limit by 8 s in the refuse
    benchmark. This stops when the longest iteration so far would no longer fit.
    """

    def __init__(self, limit_s: float) -> None:
        self._deadline = time.perf_counter() + limit_s
        self._last: float | None = None
        self._longest_s = 0.0

    def __call__(self, best_cost: float) -> bool:
        now = time.perf_counter()
        if self._last is not None:
            self._longest_s = max(self._longest_s, now - self._last)
        self._last = now
        return now + self._longest_s >= self._deadline
