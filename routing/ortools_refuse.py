"""The refuse-collection model in OR-Tools: nodes, dimensions, breaks, and its routes read back.

The model, node by node:

* one start node and one end node per vehicle, at its depots (or, when re-planning, its
  current position);
* one node per bin, optional with a drop penalty (very large for must-collect bins), and only
  servable by vehicles of the bin's waste stream;
* ``max_tip_trips`` optional copies of each tip per vehicle that may use it: the OR-Tools
  "reload" pattern. Visiting a copy subtracts more than any capacity from the load dimensions
  and the copy's slack (zero everywhere else) lets the load settle anywhere from zero upwards,
  so the load is reset;
* when ``return_empty`` is set, the final tip is folded into the arcs into each vehicle's end
  node (``bin -> best tip -> depot``), so a route is never stranded full at the end and the
  first-solution heuristics do not need to insert a tip before any bin becomes feasible.

Dimensions: ``load_kg`` and ``load_l`` (capacity by weight and by volume), ``time`` (travel plus
service, shift windows, maximum route time, bin time windows, tip opening hours, driver breaks
as OR-Tools break intervals) and ``tip_trips`` (counts mid-route tip visits). The objective is
metres driven, plus a fixed charge per tip visit, plus one metre per second of route time (so
crews are not left idle). All matrices are registered once with ``RegisterTransitMatrix`` /
``RegisterUnaryTransitVector``, so no Python code runs inside the search.

Driver breaks: every vehicle gets as many 45-minute break intervals as its longest legal route
could need (a break that falls before the start or after the end of a short route is simply
off duty), and ``SetBreakDistanceDurationOfVehicle`` forces one within every 4.5 h of *elapsed*
route time. Elapsed time (driving + service + waiting) is never less than driving time, so the
model is stricter than the law. Breaks are reported at a stop (see :func:`_build_route`) and
:mod:`routing.validate` re-checks the real driving time on the reported schedule.


Used by :func:`routing.solver.plan_routes` for the ``ortools`` and ``hybrid`` engines.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from routing.cvrp import OrtoolsSearch
from routing.matrix import UNREACHABLE, MatrixProvider, TravelMatrix
from routing.model import (
    BinStop,
    DisposalSite,
    Plan,
    PlannedStop,
    PlanRequest,
    Route,
    Site,
    SolverStats,
    StopKind,
    Unserved,
    Vehicle,
)
from routing.schedule import required_breaks

logger = logging.getLogger(__name__)

IntMatrix = npt.NDArray[np.int64]


# Dropping a must-collect bin must cost more than any detour could: 10^9 m is a million km.
# A penalty rather than a hard constraint keeps the model feasible, so an impossible day still
# yields a plan that lists the bins it could not fit, with reasons.
MUST_COLLECT_PENALTY: Final = 1_000_000_000


# Objective weight of a second of route time, in metres: without it the solver is indifferent
# to idle time and may leave a crew waiting for hours between two stops.
SPAN_COST_PER_S: Final = 1


# Objective cost of one tip visit, in metres of driving (see build_layout).
TIP_VISIT_COST_M: Final = 5_000


# Time dimension horizon: two days, so shifts that cross midnight still fit.
HORIZON_S: Final = 2 * 86_400


# Cheapest-arc start and guided local search: on the refuse model the insertion heuristics
# stall on full vehicles (a bin insertion is infeasible until a tip copy is inserted first),
# whereas extending a path naturally turns to a tip when nothing else fits.
REFUSE_SEARCH: Final = OrtoolsSearch(first_solution="PATH_CHEAPEST_ARC")


@dataclass(frozen=True)
class _Node:
    kind: StopKind
    stop_id: str
    location: int  # row of the travel matrix
    service_s: int
    weight_kg: int
    volume_l: int
    vehicle: int | None = None  # for start/end nodes


@dataclass
class Layout:
    """Solver nodes and the matrices derived from the travel matrix."""

    nodes: list[_Node]
    starts: list[int]
    ends: list[int]
    bins: dict[int, BinStop]
    tips: dict[int, DisposalSite]
    distances: IntMatrix  # node x node, metres (end arcs include the final tip)
    transit_s: IntMatrix  # node x node, service at origin + travel (+ final tip)
    final_tip: dict[tuple[int, int], DisposalSite]  # (node, vehicle) -> tip used before end
    travel: TravelMatrix
    points: list[tuple[float, float]]
    location_of: dict[str, int]


def _ceil(value: float) -> int:
    return math.ceil(value - 1e-9)


def build_layout(request: PlanRequest, bins: Sequence[BinStop], provider: MatrixProvider) -> Layout:
    places: list[tuple[float, float]] = []
    location_of: dict[str, int] = {}
    everywhere: list[Site | DisposalSite | BinStop] = [*request.depots, *request.tips, *bins]
    for place in everywhere:
        location_of[place.id] = len(places)
        places.append((place.lat, place.lon))
    travel = provider.matrix(places)

    nodes: list[_Node] = []
    bin_nodes: dict[int, BinStop] = {}
    tip_nodes: dict[int, DisposalSite] = {}
    starts: list[int] = []
    ends: list[int] = []
    for vehicle_index, vehicle in enumerate(request.vehicles):
        starts.append(len(nodes))
        nodes.append(
            _Node(
                "depot",
                vehicle.start_depot,
                location_of[vehicle.start_depot],
                0,
                0,
                0,
                vehicle_index,
            )
        )
        ends.append(len(nodes))
        nodes.append(
            _Node(
                "depot",
                vehicle.end_depot_id,
                location_of[vehicle.end_depot_id],
                0,
                0,
                0,
                vehicle_index,
            )
        )
    for stop in bins:
        bin_nodes[len(nodes)] = stop
        nodes.append(
            _Node(
                "bin",
                stop.id,
                location_of[stop.id],
                stop.service_s,
                _ceil(stop.weight_kg),
                _ceil(stop.volume_l),
            )
        )
    for tip in request.tips:
        users = [v for v in request.vehicles if tip.accepts(v.stream)]
        for _ in range(sum(v.max_tip_trips for v in users)):
            tip_nodes[len(nodes)] = tip
            nodes.append(_Node("tip", tip.id, location_of[tip.id], tip.unload_s, 0, 0))

    locations = np.array([n.location for n in nodes], dtype=np.int64)
    service = np.array([n.service_s for n in nodes], dtype=np.int64)
    distances = travel.distances_m[np.ix_(locations, locations)].copy()
    transit = travel.durations_s[np.ix_(locations, locations)] + service[:, None]
    np.fill_diagonal(distances, 0)
    np.fill_diagonal(transit, 0)
    # Copies of a tip sit at the same place, so hopping between them would cost nothing but
    # another unloading; forbid it by price rather than by constraint.
    tip_rows = np.array(sorted(tip_nodes), dtype=np.int64)
    if tip_rows.size:
        distances[np.ix_(tip_rows, tip_rows)] = UNREACHABLE
        # Likewise an empty vehicle has nothing to tip when it leaves the depot.
        empty_starts = np.array(
            [
                starts[v]
                for v, vehicle in enumerate(request.vehicles)
                if vehicle.initial_load_kg == 0 and vehicle.initial_load_l == 0
            ],
            dtype=np.int64,
        )
        distances[np.ix_(empty_starts, tip_rows)] = UNREACHABLE
        # Charge each tip visit so that a vehicle passing the tip does not stop to unload a
        # nearly empty body; without it cheapest-arc construction tips whenever it is close.
        distances[:, tip_rows] += TIP_VISIT_COST_M

    final_tip: dict[tuple[int, int], DisposalSite] = {}
    if request.return_empty:
        _fold_final_tips(
            request,
            nodes=nodes,
            travel=travel,
            location_of=location_of,
            distances=distances,
            transit=transit,
            final_tip=final_tip,
        )
    return Layout(
        nodes,
        starts,
        ends,
        bin_nodes,
        tip_nodes,
        distances,
        transit,
        final_tip,
        travel,
        places,
        location_of,
    )


def _fold_final_tips(
    request: PlanRequest,
    *,
    nodes: list[_Node],
    travel: TravelMatrix,
    location_of: dict[str, int],
    distances: IntMatrix,
    transit: IntMatrix,
    final_tip: dict[tuple[int, int], DisposalSite],
) -> None:
    """Route every arc into a vehicle's end node through that vehicle's nearest usable tip."""
    locations = np.array([n.location for n in nodes], dtype=np.int64)
    service = np.array([n.service_s for n in nodes], dtype=np.int64)
    for vehicle_index, vehicle in enumerate(request.vehicles):
        tips = request.tips_for(vehicle.stream)
        end = 2 * vehicle_index + 1
        if not tips:
            continue
        depot = location_of[vehicle.end_depot_id]
        via_m = np.stack(
            [
                travel.distances_m[locations, location_of[t.id]]
                + travel.distances_m[location_of[t.id], depot]
                for t in tips
            ]
        )
        via_s = np.stack(
            [
                travel.durations_s[locations, location_of[t.id]]
                + t.unload_s
                + travel.durations_s[location_of[t.id], depot]
                for t in tips
            ]
        )
        best = via_m.argmin(axis=0)
        rows = np.arange(len(nodes))
        distances[:, end] = via_m[best, rows]
        transit[:, end] = via_s[best, rows] + service
        for node, tip_choice in enumerate(best.tolist()):
            final_tip[(node, vehicle_index)] = tips[tip_choice]
        start = 2 * vehicle_index
        if vehicle.initial_load_kg == 0 and vehicle.initial_load_l == 0:
            # An unused vehicle goes nowhere: no tip trip for an empty truck.
            distances[start, end] = travel.distances_m[nodes[start].location, depot]
            transit[start, end] = travel.durations_s[nodes[start].location, depot]
            del final_tip[(start, vehicle_index)]
        # A tip copy followed by the end needs no second tip.
        for node in range(len(nodes)):
            if nodes[node].kind == "tip":
                distances[node, end] = travel.distances_m[nodes[node].location, depot]
                transit[node, end] = (
                    travel.durations_s[nodes[node].location, depot] + nodes[node].service_s
                )
                final_tip.pop((node, vehicle_index), None)


class OrtoolsModel:
    """The OR-Tools routing model for one request, and how to read a solution back."""

    def __init__(self, request: PlanRequest, layout: Layout) -> None:
        from ortools.constraint_solver import pywrapcp

        self.request = request
        self.layout = layout
        nodes = layout.nodes
        vehicles = request.vehicles
        self.manager = pywrapcp.RoutingIndexManager(
            len(nodes), len(vehicles), layout.starts, layout.ends
        )
        self.routing = pywrapcp.RoutingModel(self.manager)
        routing = self.routing

        # Solver indices differ from node numbers; the matrices are registered by node and
        # OR-Tools maps them, so no Python code runs per arc.
        distance_cb = routing.RegisterTransitMatrix(layout.distances.tolist())
        routing.SetArcCostEvaluatorOfAllVehicles(distance_cb)
        time_cb = routing.RegisterTransitMatrix(layout.transit_s.tolist())

        # Tips subtract more than any capacity; their slack brings the load back to >= 0.
        reset_kg = _ceil(max(v.capacity_kg for v in vehicles))
        reset_l = _ceil(max(v.capacity_l for v in vehicles))
        self.load_dims = []
        for name, amounts, reset, capacities, initial in (
            (
                "load_kg",
                [n.weight_kg for n in nodes],
                reset_kg,
                [math.floor(v.capacity_kg) for v in vehicles],
                [_ceil(v.initial_load_kg) for v in vehicles],
            ),
            (
                "load_l",
                [n.volume_l for n in nodes],
                reset_l,
                [math.floor(v.capacity_l) for v in vehicles],
                [_ceil(v.initial_load_l) for v in vehicles],
            ),
        ):
            demand = [
                -reset if n.kind == "tip" else amount
                for n, amount in zip(nodes, amounts, strict=True)
            ]
            callback = routing.RegisterUnaryTransitVector(demand)
            routing.AddDimensionWithVehicleCapacity(callback, reset, capacities, False, name)
            dimension = routing.GetDimensionOrDie(name)
            # Only tips may use slack; end nodes have no slack variable.
            end_nodes = set(layout.ends)
            for node, info in enumerate(nodes):
                if info.kind != "tip" and node not in end_nodes:
                    dimension.SlackVar(self._index(node)).SetValue(0)
            for vehicle_index in range(len(vehicles)):
                dimension.CumulVar(routing.Start(vehicle_index)).SetValue(initial[vehicle_index])
            self.load_dims.append(dimension)

        trips_cb = routing.RegisterUnaryTransitVector([1 if n.kind == "tip" else 0 for n in nodes])
        routing.AddDimensionWithVehicleCapacity(
            trips_cb, 0, [self._mid_route_tips(v) for v in vehicles], True, "tip_trips"
        )

        routing.AddDimension(time_cb, HORIZON_S, HORIZON_S, False, "time")
        self.time_dim = routing.GetDimensionOrDie("time")
        self.time_dim.SetSpanCostCoefficientForAllVehicles(SPAN_COST_PER_S)
        for vehicle_index, vehicle in enumerate(vehicles):
            start, end = routing.Start(vehicle_index), routing.End(vehicle_index)
            self.time_dim.CumulVar(start).SetRange(vehicle.shift.start_s, vehicle.shift.end_s)
            self.time_dim.CumulVar(end).SetRange(vehicle.shift.start_s, vehicle.shift.end_s)
            self.time_dim.SetSpanUpperBoundForVehicle(vehicle.route_limit_s, vehicle_index)
            # Prefer finishing early among equal-distance plans: waiting is worth nothing.
            routing.AddVariableMinimizedByFinalizer(self.time_dim.CumulVar(end))
            routing.AddVariableMaximizedByFinalizer(self.time_dim.CumulVar(start))

        by_stream: dict[str, list[int]] = {}
        for vehicle_index, vehicle in enumerate(vehicles):
            by_stream.setdefault(vehicle.stream, []).append(vehicle_index)
        for node, stop in layout.bins.items():
            index = self._index(node)
            penalty = MUST_COLLECT_PENALTY if stop.must_collect else stop.drop_penalty
            routing.AddDisjunction([index], penalty)
            allowed = by_stream[stop.stream]
            if len(allowed) < len(vehicles):
                self._restrict_vehicles(index, allowed)
            if stop.time_window is not None:
                self.time_dim.CumulVar(index).SetRange(
                    stop.time_window.start_s, stop.time_window.end_s
                )
        for node, tip in layout.tips.items():
            index = self._index(node)
            routing.AddDisjunction([index], 0)
            allowed = [i for i, v in enumerate(vehicles) if tip.accepts(v.stream)]
            if len(allowed) < len(vehicles):
                self._restrict_vehicles(index, allowed)
            if tip.opening is not None:
                self.time_dim.CumulVar(index).SetRange(tip.opening.start_s, tip.opening.end_s)

        self.breaks = self._add_breaks()

    def _mid_route_tips(self, vehicle: Vehicle) -> int:
        # The final tip is folded into the end arcs, so it is not counted by the dimension.
        reserved = 1 if self.request.return_empty else 0
        return max(0, vehicle.max_tip_trips - reserved)

    def _restrict_vehicles(self, index: int, allowed: list[int]) -> None:
        # SetAllowedVehiclesForIndex does not accept Python lists in OR-Tools 9.15's bindings;
        # restricting the vehicle variable is equivalent (-1 keeps "unperformed" possible).
        self.routing.VehicleVar(index).SetValues([-1, *allowed])

    def _index(self, node: int) -> int:
        return int(self.manager.NodeToIndex(node))

    def _add_breaks(self) -> dict[int, list[Any]]:
        rule = self.request.breaks
        solver = self.routing.solver()
        visit_transits = [
            self.layout.nodes[self.manager.IndexToNode(index)].service_s
            for index in range(self.routing.Size())
        ]
        breaks: dict[int, list[Any]] = {}
        for vehicle_index, vehicle in enumerate(self.request.vehicles):
            intervals = []
            if vehicle.driving_since_break_s > 0:
                # Already on the road: the first break is due within what is left of 4.5 h.
                due = max(0, rule.max_driving_s - vehicle.driving_since_break_s)
                intervals.append(
                    solver.FixedDurationIntervalVar(
                        vehicle.shift.start_s,
                        vehicle.shift.start_s + due,
                        rule.break_s,
                        False,
                        f"break:{vehicle_index}:due",
                    )
                )
            count = required_breaks(vehicle.route_limit_s, rule.max_driving_s, rule.break_s)
            intervals.extend(
                solver.FixedDurationIntervalVar(
                    vehicle.shift.start_s,
                    vehicle.shift.end_s,
                    rule.break_s,
                    False,  # mandatory: a break after the route ends is simply off duty
                    f"break:{vehicle_index}:{k}",
                )
                for k in range(count)
            )
            if not intervals:
                continue
            self.time_dim.SetBreakIntervalsOfVehicle(intervals, vehicle_index, visit_transits)
            self.time_dim.SetBreakDistanceDurationOfVehicle(
                rule.max_driving_s, rule.break_s, vehicle_index
            )
            breaks[vehicle_index] = intervals
        return breaks

    def solve(
        self, time_limit_s: float, search: OrtoolsSearch, start: list[list[int]] | None = None
    ) -> Any:
        """Search from ``start`` (node sequences per vehicle, depots excluded) if it is feasible."""
        started = time.perf_counter()
        params: Any = search.parameters(time_limit_s)
        if start is None:
            return self.routing.SolveWithParameters(params)
        self.routing.CloseModelWithParameters(params)
        indices = [[self._index(node) for node in route] for route in start]
        assignment = self.routing.ReadAssignmentFromRoutes(indices, True)
        if assignment is None:
            logger.info("warm start rejected by the OR-Tools model; solving from scratch")
        remaining = max(0.1, time_limit_s - (time.perf_counter() - started))
        params.time_limit.FromMilliseconds(round(remaining * 1000))
        return self.routing.SolveFromAssignmentWithParameters(assignment, params)

    def status(self) -> str:
        names = {
            0: "not_solved",
            1: "success",
            2: "partial_success_time_limit",
            3: "fail",
            4: "fail_timeout",
            5: "invalid",
            6: "infeasible",
            7: "optimal",
        }
        return names.get(int(self.routing.status()), str(self.routing.status()))

    def sequences(self, solution: Any) -> list[list[int]]:
        """Node sequence of every vehicle, start and end included."""
        result = []
        for vehicle_index in range(len(self.request.vehicles)):
            index = self.routing.Start(vehicle_index)
            sequence = [self.manager.IndexToNode(index)]
            while not self.routing.IsEnd(index):
                index = solution.Value(self.routing.NextVar(index))
                sequence.append(self.manager.IndexToNode(index))
            result.append(sequence)
        return result

    def start_times(self, solution: Any) -> list[list[int]]:
        """Service start time at every node of every vehicle's sequence."""
        result = []
        for vehicle_index in range(len(self.request.vehicles)):
            index = self.routing.Start(vehicle_index)
            times = [solution.Min(self.time_dim.CumulVar(index))]
            while not self.routing.IsEnd(index):
                index = solution.Value(self.routing.NextVar(index))
                times.append(solution.Min(self.time_dim.CumulVar(index)))
            result.append(times)
        return result

    def break_starts(self, solution: Any) -> dict[int, list[int]]:
        """Start times of the breaks each vehicle performs."""
        performed: dict[str, int] = {}
        container = solution.IntervalVarContainer()
        for i in range(container.Size()):
            element = container.Element(i)
            if element.PerformedValue():
                performed[element.Var().Name()] = int(element.StartValue())
        return {
            vehicle_index: sorted(
                performed[interval.Name()] for interval in intervals if interval.Name() in performed
            )
            for vehicle_index, intervals in self.breaks.items()
        }


def _build_route(
    request: PlanRequest,
    layout: Layout,
    *,
    vehicle_index: int,
    sequence: list[int],
    starts_s: list[int],
    break_starts: list[int],
) -> Route:
    """Turn a node sequence and its service start times into a reported route.

    Loads are recomputed here from the sequence (reset to zero at every tip) rather than read
    from the solver's load variables, whose slack is free to leave a partial load after a tip.

    The solver may place a break part-way along a leg. A crew stops at a stop, so each break is
    reported either before the leg (at the stop just left) or after it (at the next stop, before
    service): after, when the leg still fits within the driving limit, which keeps the driving
    after the break as short as possible; before, otherwise.
    """
    vehicle = request.vehicles[vehicle_index]
    rule = request.breaks
    travel = layout.travel
    points = layout.points
    load_kg, load_l = vehicle.initial_load_kg, vehicle.initial_load_l
    # Breaks placed before the route starts or after it ends are off duty: not reported.
    pending = [b for b in break_starts if starts_s[0] <= b < starts_s[-1]]
    driving = vehicle.driving_since_break_s
    clock = starts_s[0]
    here = layout.nodes[sequence[0]].location
    distance_m = 0
    stops = [
        PlannedStop(
            layout.nodes[sequence[0]].stop_id,
            "depot",
            *points[here],
            clock,
            clock,
            clock,
            load_kg,
            load_l,
        )
    ]

    def take_breaks(count: int, location: int) -> None:
        nonlocal clock, driving
        for _ in range(count):
            stops.append(
                PlannedStop(
                    "break",
                    "break",
                    *points[location],
                    clock,
                    clock,
                    clock + rule.break_s,
                    load_kg,
                    load_l,
                )
            )
            clock += rule.break_s
        driving = 0

    for position in range(1, len(sequence)):
        node = sequence[position]
        info = layout.nodes[node]
        due = sum(1 for b in pending if b < starts_s[position])
        pending = pending[due:]
        tip = (
            layout.final_tip.get((sequence[position - 1], vehicle_index))
            if node in layout.ends
            else None
        )
        waypoints = [layout.location_of[tip.id], info.location] if tip else [info.location]
        for leg, destination in enumerate(waypoints):
            leg_s = int(travel.durations_s[here, destination])
            if due and driving + leg_s > rule.max_driving_s:
                take_breaks(due, here)
                due = 0
            clock += leg_s
            driving += leg_s
            distance_m += int(travel.distances_m[here, destination])
            here = destination
            arrival = clock
            last_leg = leg == len(waypoints) - 1
            if due and (
                last_leg
                or driving + int(travel.durations_s[here, waypoints[leg + 1]]) > rule.max_driving_s
            ):
                take_breaks(due, here)
                due = 0
                arrival = clock  # the stop's ETA is when the crew is ready to work it
            if tip is not None and not last_leg:
                stops.append(
                    PlannedStop(
                        tip.id,
                        "tip",
                        tip.lat,
                        tip.lon,
                        arrival,
                        clock,
                        clock + tip.unload_s,
                        load_kg,
                        load_l,
                    )
                )
                clock += tip.unload_s
                load_kg = load_l = 0.0
        start = clock if info.kind == "depot" else max(clock, starts_s[position])
        stops.append(
            PlannedStop(
                info.stop_id,
                info.kind,
                *points[here],
                arrival,
                start,
                start + info.service_s,
                load_kg,
                load_l,
            )
        )
        clock = start + info.service_s
        if info.kind == "bin":
            stop = layout.bins[node]
            load_kg += stop.weight_kg
            load_l += stop.volume_l
        elif info.kind == "tip":
            load_kg = load_l = 0.0
    duration = stops[-1].arrival_s - stops[0].departure_s
    return Route(vehicle.id, tuple(stops), distance_m, duration)


def ortools_plan(
    request: PlanRequest,
    layout: Layout,
    model: OrtoolsModel,
    solution: Any,
    unserved: list[Unserved],
) -> Plan:
    sequences = model.sequences(solution)
    starts = model.start_times(solution)
    breaks = model.break_starts(solution)
    routes = [
        _build_route(
            request,
            layout,
            vehicle_index=v,
            sequence=sequences[v],
            starts_s=starts[v],
            break_starts=breaks.get(v, []),
        )
        for v in range(len(request.vehicles))
    ]
    visited = {node for sequence in sequences for node in sequence}
    for node, stop in layout.bins.items():
        if node in visited:
            continue
        reason = (
            "must-collect bin did not fit within the vehicles' capacity, tip trips and shifts"
            if stop.must_collect
            else "optional bin: the detour costs more than its drop penalty"
        )
        unserved.append(Unserved(stop.id, stop.must_collect, reason))
    stats = SolverStats(
        engine="ortools",
        status=model.status(),
        model_build_s=0.0,
        search_s=0.0,
        objective=int(solution.ObjectiveValue()),
        num_nodes=len(layout.nodes),
    )
    return Plan(tuple(routes), tuple(unserved), stats)
