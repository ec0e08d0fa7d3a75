"""Refuse-collection route planning: from bins worth collecting to routes a crew can drive.

Pure logic over plain values: no database, no MQTT. Build a :class:`PlanRequest`, call
:func:`plan_routes`, get a :class:`Plan` that :func:`validate_plan` has already re-checked;
export it with :mod:`routing.export`; re-plan mid-shift with :func:`replan`. The fleet comes
from a TOML file (:func:`load_fleet`); :mod:`routing.planning` turns bin forecasts into the
day's request and :mod:`routing.plans` stores plans with their inputs (those two touch the
database and are imported on their own).
"""

from routing.cvrp import DEFAULT_ENGINE, Engine, OrtoolsSearch, solve_cvrp
from routing.errors import InvalidPlanError, MatrixError, NoSolutionError, RoutingError
from routing.fleet import FleetConfig, FleetConfigError, StreamFleet, load_fleet
from routing.matrix import (
    CachedProvider,
    HaversineProvider,
    MatrixProvider,
    OsrmTableProvider,
    TravelMatrix,
)
from routing.model import (
    BinStop,
    BreakRule,
    DisposalSite,
    Plan,
    PlannedStop,
    PlanRequest,
    Route,
    Site,
    SolverStats,
    TimeWindow,
    Unserved,
    Vehicle,
    drop_penalty_for_fill,
)
from routing.replan import Replan, VehicleProgress, replan
from routing.solver import DEFAULT_REFUSE_ENGINE, RefuseEngine, choose_engine, plan_routes
from routing.validate import Violation, validate_plan
from routing.vrplib_io import CvrpInstance, read_cvrp

__all__ = [
    "DEFAULT_ENGINE",
    "DEFAULT_REFUSE_ENGINE",
    "BinStop",
    "BreakRule",
    "CachedProvider",
    "CvrpInstance",
    "DisposalSite",
    "Engine",
    "FleetConfig",
    "FleetConfigError",
    "HaversineProvider",
    "InvalidPlanError",
    "MatrixError",
    "MatrixProvider",
    "NoSolutionError",
    "OrtoolsSearch",
    "OsrmTableProvider",
    "Plan",
    "PlanRequest",
    "PlannedStop",
    "RefuseEngine",
    "Replan",
    "Route",
    "RoutingError",
    "Site",
    "SolverStats",
    "StreamFleet",
    "TimeWindow",
    "TravelMatrix",
    "Unserved",
    "Vehicle",
    "VehicleProgress",
    "Violation",
    "choose_engine",
    "drop_penalty_for_fill",
    "load_fleet",
    "plan_routes",
    "read_cvrp",
    "replan",
    "solve_cvrp",
    "validate_plan",
]
