"""Plan refuse-collection routes: choose an engine, run it, validate, keep the better plan.

Engines: ``ortools`` builds its own first solution (cheapest arc); ``hybrid`` first solves
PyVRP's native reload model, gives its routes to OR-Tools as the starting solution, and keeps
whichever validated plan is better; ``pyvrp`` returns PyVRP's plan (see
:mod:`routing.pyvrp_refuse` for what it approximates). The default is ``pyvrp``, the measured
best on council-scale days (``bench/results/routing_cvrplib.md``), or ``hybrid`` where PyVRP's
model lacks a rule the request needs (:func:`choose_engine`). On such days (1,000+ bins) the
pure OR-Tools model is the weak link: its cheapest-arc start strands must-collect bins behind
full vehicles, because a mid-route tip has to be inserted before any further bin fits and no
single local-search move does both.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

from routing.cvrp import OrtoolsSearch
from routing.errors import InvalidPlanError, NoSolutionError
from routing.matrix import (
    HaversineProvider,
    MatrixProvider,
    PathProvider,
    SubsetProvider,
)
from routing.model import (
    BinStop,
    Plan,
    PlanRequest,
    Route,
    SolverStats,
    Unserved,
    Vehicle,
)
from routing.ortools_refuse import REFUSE_SEARCH, Layout, OrtoolsModel, build_layout, ortools_plan
from routing.pyvrp_refuse import plan_routes_pyvrp
from routing.roads import with_street_paths
from routing.schedule import timed_route
from routing.validate import Violation, validate_plan

__all__ = [
    "DEFAULT_REFUSE_ENGINE",
    "REFUSE_ENGINES",
    "RefuseEngine",
    "choose_engine",
    "plan_routes",
]


logger = logging.getLogger(__name__)


RefuseEngine = Literal["ortools", "hybrid", "pyvrp"]


REFUSE_ENGINES: Final = ("ortools", "hybrid", "pyvrp")


# The engine plan_routes uses unless told otherwise, wherever its model covers the request:
# the measured best on council-scale days (bench/results/routing_cvrplib.md, "Refuse-scale
# synthetic days"). See choose_engine for when the hybrid is used instead.
DEFAULT_REFUSE_ENGINE: Final[RefuseEngine] = "pyvrp"


def choose_engine(request: PlanRequest) -> RefuseEngine:
    """:data:`DEFAULT_REFUSE_ENGINE`, or ``"hybrid"`` when the request needs what PyVRP's model
    lacks: tip opening hours (PyVRP reload depots are always open). Breaks are not on that
    list: the PyVRP path reserves their time and inserts them, and the validator proves them.
    """
    if any(tip.opening is not None for tip in request.tips):
        return "hybrid"
    return DEFAULT_REFUSE_ENGINE


# Share of the time limit the refuse hybrid gives PyVRP to build the starting routes: half, so
# OR-Tools has as long to enforce what PyVRP approximates (breaks, tip hours) and improve.
# (CVRPLIB instances have none of that: routing.cvrp gives PyVRP a larger share there.)
REFUSE_HYBRID_PYVRP_SHARE: Final = 0.5


def _pre_solve_exclusions(request: PlanRequest) -> tuple[list[BinStop], list[Unserved]]:
    """Bins no vehicle could ever take, with the reason, and the rest."""
    keep: list[BinStop] = []
    unserved: list[Unserved] = []
    by_stream: dict[str, list[Vehicle]] = {}
    for vehicle in request.vehicles:
        by_stream.setdefault(vehicle.stream, []).append(vehicle)
    for stop in request.bins:
        fleet = by_stream.get(stop.stream, [])
        reason = None
        if not fleet:
            reason = f"no vehicle collects stream {stop.stream!r}"
        elif not request.tips_for(stop.stream):
            reason = f"no tip accepts stream {stop.stream!r}"
        elif all(stop.weight_kg > v.capacity_kg or stop.volume_l > v.capacity_l for v in fleet):
            reason = "bin contents exceed every vehicle's capacity"
        elif stop.time_window is not None and all(
            stop.time_window.end_s < v.shift.start_s or stop.time_window.start_s > v.shift.end_s
            for v in fleet
        ):
            reason = "bin time window lies outside every shift"
        if reason is None:
            keep.append(stop)
        else:
            unserved.append(Unserved(stop.id, stop.must_collect, reason))
    return keep, unserved


@dataclass
class _PyvrpOutcome:
    """PyVRP's routes as OR-Tools node sequences, and as a plan of their own."""

    start: list[list[int]] | None
    routes: dict[str, Route]
    unserved: list[Unserved]


def _pyvrp_start(
    request: PlanRequest, layout: Layout, bins: Sequence[BinStop], time_limit_s: float
) -> _PyvrpOutcome:
    """Solve PyVRP's reload model, one sub-problem per waste stream.

    Streams never share a vehicle or a bin, so they decompose exactly. For the OR-Tools start,
    mid-route tips map onto unused tip copies and the final tip is left out because the end
    arcs already include it.
    """
    node_of_bin = {stop.id: node for node, stop in layout.bins.items()}
    free_copies: dict[str, list[int]] = {}
    for node, tip in layout.tips.items():
        free_copies.setdefault(tip.id, []).append(node)
    vehicle_index = {v.id: i for i, v in enumerate(request.vehicles)}
    routes: list[list[int]] = [[] for _ in request.vehicles]
    outcome = _PyvrpOutcome(routes, {}, [])
    streams = sorted({v.stream for v in request.vehicles})
    provider = SubsetProvider(layout.travel, layout.points)
    for stream in streams:
        stream_bins = tuple(b for b in bins if b.stream == stream)
        tips = request.tips_for(stream)
        if not stream_bins or not tips:
            continue
        sub_request = PlanRequest(
            depots=request.depots,
            tips=tips,
            vehicles=tuple(v for v in request.vehicles if v.stream == stream),
            bins=stream_bins,
            breaks=request.breaks,
            return_empty=request.return_empty,
        )
        with warnings.catch_warnings():
            # PyVRP warns when its penalties hit their bound on tight instances; OR-Tools
            # decides feasibility afterwards, so the warning would only be noise here.
            warnings.simplefilter("ignore")
            sub_plan = plan_routes_pyvrp(
                sub_request, time_limit_s=time_limit_s / len(streams), matrix_provider=provider
            )
        outcome.unserved.extend(sub_plan.unserved)
        for route in sub_plan.routes:
            outcome.routes[route.vehicle_id] = route
            visits = [s for s in route.stops if s.kind in ("bin", "tip")]
            if request.return_empty and visits and visits[-1].kind == "tip":
                visits = visits[:-1]
            sequence = []
            for stop in visits:
                if stop.kind == "bin":
                    sequence.append(node_of_bin[stop.stop_id])
                elif free_copies.get(stop.stop_id):
                    sequence.append(free_copies[stop.stop_id].pop())
                else:
                    outcome.start = None
            routes[vehicle_index[route.vehicle_id]] = sequence
    return outcome


def _pyvrp_plan(
    request: PlanRequest, layout: Layout, outcome: _PyvrpOutcome, unserved: list[Unserved]
) -> Plan:
    """PyVRP's own answer as a full plan (idle vehicles drive straight home)."""
    routes = tuple(
        outcome.routes.get(vehicle.id)
        or timed_route(request, index, [], None, layout.travel, layout.location_of, start_s=None)
        for index, vehicle in enumerate(request.vehicles)
    )
    stats = SolverStats("pyvrp", "feasible", 0.0, 0.0, None, len(layout.points))
    return Plan(routes, (*unserved, *outcome.unserved), stats)


def _plan_rank(plan: Plan, violations: int) -> tuple[int, int, int, int]:
    """Order candidate plans: valid first, then fewest must-collect misses, misses, metres."""
    must = sum(1 for u in plan.unserved if u.must_collect)
    return (violations, must, len(plan.unserved), plan.distance_m)


def plan_routes(
    request: PlanRequest,
    *,
    time_limit_s: float = 30.0,
    matrix_provider: MatrixProvider | None = None,
    engine: RefuseEngine | None = None,
    search: OrtoolsSearch = REFUSE_SEARCH,
    strict: bool = False,
) -> Plan:
    """Plan one day's collection routes for ``request`` within ``time_limit_s`` of search.

    ``engine=None`` (the default) picks :func:`choose_engine`: PyVRP's native reload model
    (``"pyvrp"``; best on the 1,000 and 3,000-bin benchmark days; waste streams solved
    separately; breaks reserved in the shift and inserted after solving, then proved by the
    validator), or the hybrid where PyVRP's model falls short. ``"hybrid"`` spends
    :data:`REFUSE_HYBRID_PYVRP_SHARE` of the time limit on PyVRP and hands its routes to OR-Tools,
    which enforces everything (breaks, streams, tip opening hours) and improves them; both
    plans are validated and the better one is returned (fewest violations, then must-collect
    misses, misses, metres; :attr:`SolverStats.engine` says which). ``"ortools"`` starts
    OR-Tools from its own cheapest-arc construction. ``matrix_provider`` defaults to
    :class:`~routing.matrix.HaversineProvider`. The result is
    re-checked by :func:`routing.validate.validate_plan`; its findings are in
    :attr:`Plan.violations` (and raise :class:`~routing.errors.InvalidPlanError` when
    ``strict``).

    Raises
    ------
    ValueError
        If ``time_limit_s`` is not positive.
    NoSolutionError
        If OR-Tools returns no assignment at all.
    InvalidPlanError
        If ``strict`` and the validator finds violations.
    """

    if time_limit_s <= 0:
        raise ValueError(f"time_limit_s must be positive, got {time_limit_s}")
    provider = matrix_provider or HaversineProvider()
    build_started = time.perf_counter()
    if engine is None:
        engine = choose_engine(request)
    if engine not in REFUSE_ENGINES:
        raise ValueError(f"unknown engine {engine!r}; choose one of {', '.join(REFUSE_ENGINES)}")
    bins, unserved = _pre_solve_exclusions(request)
    layout = build_layout(request, bins, provider)
    # The pyvrp engine never searches the OR-Tools model, and building it costs seconds on
    # council-scale days, so it is only built when an OR-Tools search may run.
    model = OrtoolsModel(request, layout) if engine != "pyvrp" or not layout.bins else None
    model_build_s = time.perf_counter() - build_started

    search_started = time.perf_counter()
    pyvrp_outcome = None
    if engine != "ortools" and layout.bins:
        share = REFUSE_HYBRID_PYVRP_SHARE if engine == "hybrid" else 1.0
        pyvrp_outcome = _pyvrp_start(request, layout, bins, time_limit_s * share)
    solution = None
    if model is not None and (engine != "pyvrp" or pyvrp_outcome is None):
        remaining = max(0.1, time_limit_s - (time.perf_counter() - search_started))
        start = pyvrp_outcome.start if pyvrp_outcome else None
        solution = model.solve(remaining, search, start)
    search_s = time.perf_counter() - search_started
    if solution is None and pyvrp_outcome is None:
        raise NoSolutionError(
            f"OR-Tools found no solution ({model.status() if model else 'no model'})",
            engine="ortools",
            time_limit_s=time_limit_s,
        )

    candidates: list[tuple[Plan, list[Violation]]] = []
    if solution is not None and model is not None:
        plan = ortools_plan(request, layout, model, solution, list(unserved))
        stats = dataclasses.replace(
            plan.stats,
            engine="ortools" if pyvrp_outcome is None else "hybrid:ortools",
            model_build_s=round(model_build_s, 3),
            search_s=round(search_s, 3),
        )
        plan = dataclasses.replace(plan, stats=stats)
        candidates.append(
            (plan, validate_plan(request, plan, matrix=layout.travel, points=layout.points))
        )
    if pyvrp_outcome is not None:
        # OR-Tools keeps PyVRP's routes unless it improves them, but on large days it may not
        # even reload them in time (and its break rule is stricter), so PyVRP's own plan stays
        # a candidate, judged by the same validator.
        plan = _pyvrp_plan(request, layout, pyvrp_outcome, list(unserved))
        stats = SolverStats(
            "pyvrp" if engine == "pyvrp" else "hybrid:pyvrp",
            "feasible",
            round(model_build_s, 3),
            round(search_s, 3),
            None,
            len(layout.nodes),
        )
        plan = dataclasses.replace(plan, stats=stats)
        candidates.append(
            (plan, validate_plan(request, plan, matrix=layout.travel, points=layout.points))
        )
    best, violations = min(candidates, key=lambda c: _plan_rank(c[0], len(c[1])))
    if violations:
        logger.warning("plan has %d validator violation(s): %s", len(violations), violations[0])
        if strict:
            raise InvalidPlanError(violations)
    best = dataclasses.replace(best, violations=tuple(v.message for v in violations))
    if isinstance(provider, PathProvider):
        best = dataclasses.replace(best, routes=with_street_paths(best.routes, provider))
    return best
