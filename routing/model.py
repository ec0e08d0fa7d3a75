"""Domain values for refuse route planning: what goes into a plan and what comes out.

All values are frozen dataclasses validated on construction, so a solver, validator or exporter
can trust any instance it is handed. Times are integer seconds since midnight of the plan day
(local time), distances metres, weights kilograms, volumes litres.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Final, Literal

__all__ = [
    "DEFAULT_SHIFT",
    "BinStop",
    "BreakRule",
    "DisposalSite",
    "Plan",
    "PlanRequest",
    "PlannedStop",
    "Route",
    "Site",
    "SolverStats",
    "StopKind",
    "TimeWindow",
    "Unserved",
    "Vehicle",
    "Violation",
    "drop_penalty_for_fill",
]

SECONDS_PER_DAY: Final = 86_400

StopKind = Literal["bin", "tip", "break", "depot"]
STOP_KINDS: Final = ("bin", "tip", "break", "depot")


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def _check_id(owner: str, value: str) -> None:
    _require(
        isinstance(value, str) and value.strip() != "", f"{owner}: id must be a non-empty string"
    )


def _check_position(owner: str, lat: float, lon: float) -> None:
    _require(
        math.isfinite(lat) and -90.0 <= lat <= 90.0, f"{owner}: latitude {lat} outside -90..90"
    )
    _require(
        math.isfinite(lon) and -180.0 <= lon <= 180.0,
        f"{owner}: longitude {lon} outside -180..180",
    )


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """An interval ``[start_s, end_s]`` in seconds since midnight of the plan day."""

    start_s: int
    end_s: int

    def __post_init__(self) -> None:
        _require(
            0 <= self.start_s <= self.end_s <= 2 * SECONDS_PER_DAY,
            f"time window [{self.start_s}, {self.end_s}] must satisfy 0 <= start <= end <= 48 h",
        )

    @classmethod
    def from_hours(cls, start_h: float, end_h: float) -> TimeWindow:
        """``TimeWindow.from_hours(7, 15)`` is 07:00 to 15:00."""
        return cls(round(start_h * 3600), round(end_h * 3600))

    @property
    def length_s(self) -> int:
        return self.end_s - self.start_s

    def contains(self, time_s: int) -> bool:
        return self.start_s <= time_s <= self.end_s


# Domain default: a 07:00-15:00 collection shift.
DEFAULT_SHIFT: Final = TimeWindow(7 * 3600, 15 * 3600)


@dataclass(frozen=True, slots=True)
class Site:
    """A fixed place vehicles start or end at: a depot."""

    id: str
    lat: float
    lon: float

    def __post_init__(self) -> None:
        _check_id("Site", self.id)
        _check_position(f"Site {self.id}", self.lat, self.lon)


@dataclass(frozen=True, slots=True)
class DisposalSite:
    """A tip (transfer station, MRF, energy-from-waste plant) where a vehicle empties.

    ``streams`` lists the waste streams it accepts; empty means every stream.
    ``unload_s`` is the time from arriving at the gate to leaving empty.
    """

    id: str
    lat: float
    lon: float
    unload_s: int = 900
    streams: frozenset[str] = frozenset()
    opening: TimeWindow | None = None

    def __post_init__(self) -> None:
        _check_id("DisposalSite", self.id)
        _check_position(f"DisposalSite {self.id}", self.lat, self.lon)
        _require(self.unload_s >= 0, f"DisposalSite {self.id}: unload_s must be >= 0")
        object.__setattr__(self, "streams", frozenset(self.streams))

    def accepts(self, stream: str) -> bool:
        return not self.streams or stream in self.streams


@dataclass(frozen=True, slots=True)
class BinStop:
    """A bin that may be collected today.

    ``weight_kg`` and ``volume_l`` are the forecast contents at the planned visit, ``volume_l``
    being the room the waste takes in the vehicle body (after compaction, if the caller models
    it). ``must_collect`` bins are those forecast to reach the fullness threshold; the others are
    optional and are skipped when the detour costs more than ``drop_penalty`` (in metres of
    driving, the objective's unit; see :func:`drop_penalty_for_fill`).
    """

    id: str
    lat: float
    lon: float
    stream: str
    weight_kg: float
    volume_l: float
    service_s: int = 60
    must_collect: bool = False
    drop_penalty: int = 0
    time_window: TimeWindow | None = None
    uprn: str | None = None

    def __post_init__(self) -> None:
        owner = f"BinStop {self.id}"
        _check_id("BinStop", self.id)
        _check_position(owner, self.lat, self.lon)
        _require(self.stream.strip() != "", f"{owner}: stream must be non-empty")
        _require(
            math.isfinite(self.weight_kg) and self.weight_kg >= 0,
            f"{owner}: weight_kg must be >= 0",
        )
        _require(
            math.isfinite(self.volume_l) and self.volume_l >= 0, f"{owner}: volume_l must be >= 0"
        )
        _require(self.service_s >= 0, f"{owner}: service_s must be >= 0")
        _require(self.drop_penalty >= 0, f"{owner}: drop_penalty must be >= 0")
        _require(
            self.uprn is None or (self.uprn.isdigit() and len(self.uprn) <= 12),
            f"{owner}: UPRN must be up to 12 digits, got {self.uprn!r}",
        )


def drop_penalty_for_fill(
    forecast_fill: float, *, threshold: float = 0.8, metres_at_threshold: int = 5_000
) -> int:
    """Drop penalty for an optional bin, proportional to its forecast fill.

    A bin forecast at the threshold (*default* 80 %) is worth ``metres_at_threshold`` of extra
    driving; an empty bin is worth nothing. Bins at or above the threshold should be
    ``must_collect`` instead, but the penalty stays proportional so callers can use it either way.
    """
    _require(0.0 <= forecast_fill <= 2.0, f"forecast_fill {forecast_fill} outside 0..2")
    _require(0.0 < threshold <= 1.0, f"threshold {threshold} outside (0, 1]")
    return round(metres_at_threshold * forecast_fill / threshold)


@dataclass(frozen=True, slots=True)
class Vehicle:
    """A refuse collection vehicle and its crew's shift.

    ``start_depot`` and ``end_depot`` are ids of :attr:`PlanRequest.depots`. ``max_route_s``
    bounds time from leaving the start depot to arriving at the end depot (defaults to the
    shift length). ``max_tip_trips`` bounds mid-route visits to tips. The ``initial_*`` and
    ``driving_since_break_s`` fields describe a vehicle already out on its round (re-planning).
    """

    id: str
    stream: str
    capacity_kg: float
    capacity_l: float
    start_depot: str
    end_depot: str | None = None
    shift: TimeWindow = DEFAULT_SHIFT
    max_route_s: int | None = None
    max_tip_trips: int = 4
    initial_load_kg: float = 0.0
    initial_load_l: float = 0.0
    driving_since_break_s: int = 0

    def __post_init__(self) -> None:
        owner = f"Vehicle {self.id}"
        _check_id("Vehicle", self.id)
        _require(self.stream.strip() != "", f"{owner}: stream must be non-empty")
        _require(self.capacity_kg > 0, f"{owner}: capacity_kg must be positive")
        _require(self.capacity_l > 0, f"{owner}: capacity_l must be positive")
        _require(self.shift.length_s > 0, f"{owner}: shift must have positive length")
        if self.max_route_s is not None:
            _require(self.max_route_s > 0, f"{owner}: max_route_s must be positive")
        _require(self.max_tip_trips >= 0, f"{owner}: max_tip_trips must be >= 0")
        _require(
            0 <= self.initial_load_kg <= self.capacity_kg,
            f"{owner}: initial_load_kg must be within 0..capacity_kg",
        )
        _require(
            0 <= self.initial_load_l <= self.capacity_l,
            f"{owner}: initial_load_l must be within 0..capacity_l",
        )
        _require(self.driving_since_break_s >= 0, f"{owner}: driving_since_break_s must be >= 0")

    @property
    def end_depot_id(self) -> str:
        return self.end_depot if self.end_depot is not None else self.start_depot

    @property
    def route_limit_s(self) -> int:
        """The effective maximum route duration: ``max_route_s`` capped by the shift."""
        limit = self.shift.length_s
        return limit if self.max_route_s is None else min(limit, self.max_route_s)


@dataclass(frozen=True, slots=True)
class BreakRule:
    """GB/EU drivers' hours: a break of ``break_s`` after at most ``max_driving_s`` of driving.

    Defaults are the statutory 45 minutes after 4.5 hours.
    """

    max_driving_s: int = 4 * 3600 + 1800
    break_s: int = 45 * 60

    def __post_init__(self) -> None:
        _require(self.max_driving_s > 0, "BreakRule: max_driving_s must be positive")
        _require(self.break_s > 0, "BreakRule: break_s must be positive")


@dataclass(frozen=True, slots=True)
class PlanRequest:
    """Everything one day's plan needs.

    Ids share one namespace across depots, tips and bins because planned stops refer to them
    by id alone. ``return_empty`` makes every vehicle tip after its last bin, as councils
    normally require before a vehicle parks overnight.
    """

    depots: tuple[Site, ...]
    tips: tuple[DisposalSite, ...]
    vehicles: tuple[Vehicle, ...]
    bins: tuple[BinStop, ...]
    breaks: BreakRule = BreakRule()
    return_empty: bool = True

    def __post_init__(self) -> None:
        for name in ("depots", "tips", "vehicles", "bins"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        _require(len(self.depots) > 0, "PlanRequest: at least one depot is required")
        _require(len(self.vehicles) > 0, "PlanRequest: at least one vehicle is required")
        seen: set[str] = set()
        places: list[Site | DisposalSite | BinStop] = [*self.depots, *self.tips, *self.bins]
        for place in places:
            _require(place.id not in seen, f"PlanRequest: duplicate stop id {place.id!r}")
            seen.add(place.id)
        vehicle_ids = [v.id for v in self.vehicles]
        _require(len(set(vehicle_ids)) == len(vehicle_ids), "PlanRequest: duplicate vehicle id")
        depot_ids = {d.id for d in self.depots}
        for vehicle in self.vehicles:
            for depot in (vehicle.start_depot, vehicle.end_depot_id):
                _require(depot in depot_ids, f"Vehicle {vehicle.id}: unknown depot {depot!r}")

    def depot(self, depot_id: str) -> Site:
        return next(d for d in self.depots if d.id == depot_id)

    def tips_for(self, stream: str) -> tuple[DisposalSite, ...]:
        return tuple(t for t in self.tips if t.accepts(stream))


@dataclass(frozen=True, slots=True)
class PlannedStop:
    """One step of a route: a bin, a tip, a break or a depot.

    ``arrival_s`` is the ETA; service (or the break, or unloading) starts at ``start_s``
    (later than arrival when waiting for a time window) and ends at ``departure_s``.
    ``load_kg``/``load_l`` are the vehicle's load on arrival. A break is reported at the place
    the vehicle has just left.
    """

    stop_id: str
    kind: StopKind
    lat: float
    lon: float
    arrival_s: int
    start_s: int
    departure_s: int
    load_kg: float
    load_l: float

    def __post_init__(self) -> None:
        _require(self.kind in STOP_KINDS, f"PlannedStop {self.stop_id}: unknown kind {self.kind}")
        _require(
            self.arrival_s <= self.start_s <= self.departure_s,
            f"PlannedStop {self.stop_id}: needs arrival <= start <= departure",
        )


@dataclass(frozen=True, slots=True)
class Route:
    """One vehicle's day: stops from start depot to end depot, with totals.

    ``legs`` is empty when travel was planned without a road network; otherwise leg ``i`` is
    the street path (lat, lon points) from stop ``i`` to stop ``i + 1``.
    """

    vehicle_id: str
    stops: tuple[PlannedStop, ...]
    distance_m: int
    duration_s: int
    legs: tuple[tuple[tuple[float, float], ...], ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "stops", tuple(self.stops))
        object.__setattr__(
            self, "legs", tuple(tuple((lat, lon) for lat, lon in leg) for leg in self.legs)
        )
        _require(self.distance_m >= 0, f"Route {self.vehicle_id}: negative distance")
        _require(self.duration_s >= 0, f"Route {self.vehicle_id}: negative duration")
        _require(
            not self.legs or len(self.legs) == max(len(self.stops) - 1, 0),
            f"Route {self.vehicle_id}: {len(self.legs)} street legs for {len(self.stops)} stops",
        )

    @property
    def path(self) -> tuple[tuple[float, float], ...]:
        """The whole day's street path, or the stops joined by straight lines without one."""
        if not self.legs:
            return tuple((s.lat, s.lon) for s in self.stops)
        points: list[tuple[float, float]] = []
        for leg in self.legs:
            points.extend(p for p in leg if not points or p != points[-1])
        return tuple(points)

    @property
    def bin_ids(self) -> tuple[str, ...]:
        return tuple(s.stop_id for s in self.stops if s.kind == "bin")

    @property
    def tip_trips(self) -> int:
        return sum(1 for s in self.stops if s.kind == "tip")

    @property
    def is_empty(self) -> bool:
        return not self.bin_ids


@dataclass(frozen=True, slots=True)
class Unserved:
    """A bin the plan does not visit, and why."""

    bin_id: str
    must_collect: bool
    reason: str


@dataclass(frozen=True, slots=True)
class SolverStats:
    """How the plan was found. Build and search time are separate because they scale apart."""

    engine: str
    status: str
    model_build_s: float
    search_s: float
    objective: int | None = None
    num_nodes: int = 0


@dataclass(frozen=True, slots=True)
class Plan:
    """A solved plan: routes, unserved bins with reasons, solver stats, validator findings."""

    routes: tuple[Route, ...]
    unserved: tuple[Unserved, ...]
    stats: SolverStats
    violations: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        object.__setattr__(self, "routes", tuple(self.routes))
        object.__setattr__(self, "unserved", tuple(self.unserved))
        object.__setattr__(self, "violations", tuple(self.violations))

    @property
    def is_valid(self) -> bool:
        return not self.violations

    @property
    def distance_m(self) -> int:
        return sum(r.distance_m for r in self.routes)

    @property
    def tip_trips(self) -> int:
        return sum(r.tip_trips for r in self.routes)

    def route_for(self, vehicle_id: str) -> Route | None:
        return next((r for r in self.routes if r.vehicle_id == vehicle_id), None)


@dataclass(frozen=True, slots=True)
class Violation:
    """One broken rule: what kind, where, and a sentence a planner can act on."""

    kind: str
    message: str
    vehicle_id: str | None = None
    stop_id: str | None = None

    def __str__(self) -> str:
        return self.message
