"""Closed-loop simulation: simulated crews follow the plans, and the bins feel it.

The town is the demo estate (``device_sim.estate``) with one simulator bin model per bin
(``device_sim.models.BinModel``: heavy-tailed per-bin fill times, local hour, weekday and
season, optionally day-to-day variation; noisy readings). Before the loop, ``warmup_days`` of
history run under the council's old weekly round, so the forecaster has collections to learn
from. Then, for ``days`` days, each working day at ``PLAN_HOUR`` one plan is made for the whole
estate (every stream at once), and every bin a planned route visits is emptied
(:meth:`BinModel.collect`) at its ETA. The policies share everything but stop selection:

* ``dynamic``: forecast every bin from its readings (:mod:`forecast.fit`), select stops as
  ``civic routes plan`` does (:func:`routing.planning.select_stops`), with every bin's
  collection threshold at ``threshold_pct`` (optional stops from 20 points below it);
* ``fixed``: the round a council sizes from what it knows of each bin (:func:`size_round`):
  the least frequent of fortnightly, weekly, twice weekly and every working day that keeps the
  bin under full at ``FIXED_MARGIN`` times its seasonal mean rate; collection days by area, as
  council rounds are laid out (each day's bins are one sector of the town);
* ``weekly``: every bin once a week on its old weekday, whatever its fill (the status quo the
  simulator's rounds follow: weekdays at random, not by area).

With ``LoopConfig.town`` set to a town of :data:`routing.places.TOWNS` the same loop runs on
real roads (:func:`road_town`): the bins stand at kerbside points of the town's residential
streets in the bundled OpenStreetMap extract, the depot and tip at its industrial sites, and
every plan's km and times come from one road matrix between all of them (computed once, then
sliced for each day's stops).

Measured: km driven, truck-shifts (routes that left the depot), bins collected, overflow-hours
(hours a bin's true level spent at or above 100 %, sampled every reading), must-collect bins the
plans could not serve, and plans the validator rejected. Pure in-process: no broker, no
database.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal

import numpy as np

from device_sim.estate import TOWN_CENTRE, RealPlaces, generate_estate
from device_sim.models import BinModel, season_factor
from forecast.bins import DEFAULT_LOOKBACK, BinForecast, BinHistory, forecast_visits
from forecast.fit import BinFit, fit_bins
from routing.fleet import FleetConfig, load_fleet
from routing.matrix import LatLon, MatrixProvider, SubsetProvider
from routing.model import BinStop, Plan, PlanRequest, Vehicle
from routing.planning import (
    OVERFLOW_PCT,
    build_request,
    select_stops,
    visit_times,
)
from routing.solver import RefuseEngine, plan_routes

__all__ = [
    "FIXED_MARGIN",
    "POLICIES",
    "LoopConfig",
    "LoopResult",
    "Policy",
    "RoadTown",
    "SimulatedBin",
    "Town",
    "build_town",
    "road_town",
    "run_closed_loop",
    "scaled_fleet",
    "simulate",
    "size_round",
]

log = logging.getLogger(__name__)

Policy = Literal["dynamic", "fixed", "weekly"]
POLICIES: Final = ("dynamic", "fixed", "weekly")
# Plans are made before the shift, from the readings so far.
PLAN_HOUR: Final = 6
# A fixed round is sized for a bin filling this much faster than its seasonal mean: busy weeks,
# weekend peaks and the crew's own "it is always full by Friday" all push a council this way.
FIXED_MARGIN: Final = 1.25
# The frequencies a council offers, least frequent first: (name, longest gap in days, local
# weekdays in week A, in week B). Fortnightly bins alternate weeks by area.
FREQUENCIES: Final = (
    ("fortnightly", 14.0),
    ("weekly", 7.0),
    ("twice weekly", 4.0),
    ("every working day", 3.0),
)
# Optional stops are offered from this many points below the collection threshold (the
# defaults: threshold 80 %, optional from 60 %).
OPTIONAL_BELOW_THRESHOLD: Final = 20.0
# Trucks per stream in the fleet file are for the 500-bin demo town; larger towns scale them.
FLEET_FILE_BINS: Final = 500


@dataclass(frozen=True, slots=True)
class LoopConfig:
    """One closed-loop run. ``start`` is the first simulated day (after the warm-up)."""

    bins: int = 300
    days: int = 28
    warmup_days: int = 14
    seed: int = 1
    start: dt.date = dt.date(2025, 11, 3)  # a Monday in GMT, so UTC is local time
    solve_seconds: float = 3.0
    engine: RefuseEngine | None = None
    reading_hours: float = 1.0
    """Sensors report this often: fine enough for overflow-hours."""
    day_variation_sd: float = 0.0
    """Day-to-day variation of every bin's filling (:attr:`BinModel.day_variation_sd`)."""
    refit_margin_pct: float | None = None
    """None: refit every bin's forecast every day, as ``civic routes plan`` does. A number:
    keep a bin's fit from an earlier day while that fit forecasts it more than this many points
    below the optional-stop level at the next working day's round, it has not been collected
    since, and the fit is under ``refit_days`` old (a large town in minutes rather than hours;
    the fits skipped are of bins nowhere near a collection)."""
    refit_days: int = 7
    town: str | None = None
    """A town of :data:`routing.places.TOWNS` to run on its roads (:func:`road_town`); None:
    the demo estate around Leicester on straight lines × the fleet's road factor."""

    def __post_init__(self) -> None:
        if self.bins < 1 or self.days < 1 or self.warmup_days < 0:
            raise ValueError("need bins >= 1, days >= 1 and warmup_days >= 0")
        if self.town is not None:
            from routing.places import TOWNS

            if self.town not in TOWNS:
                raise ValueError(f"unknown town {self.town!r}; known: {', '.join(sorted(TOWNS))}")
        if self.solve_seconds <= 0 or self.reading_hours <= 0:
            raise ValueError("solve_seconds and reading_hours must be positive")

    @property
    def reading_interval(self) -> dt.timedelta:
        return dt.timedelta(hours=self.reading_hours)


@dataclass
class SimulatedBin:
    """A bin of the town: registry attributes, its physical model and its readings so far."""

    device_id: str
    stream: str
    patch: str
    lat: float
    lon: float
    capacity_l: float
    threshold_pct: float
    model: BinModel
    ts: list[dt.datetime] = field(default_factory=list)
    fill_pct: list[float] = field(default_factory=list)
    _epoch_us: list[int] = field(default_factory=list, repr=False)

    def record(self, ts: dt.datetime) -> None:
        self.ts.append(ts)
        self._epoch_us.append(round(ts.timestamp() * 1e6))
        self.fill_pct.append(self.model.reading(ts)["fill_pct"])

    def history(self, since: dt.datetime) -> BinHistory:
        stamps = np.array(self._epoch_us, dtype=np.int64).astype("datetime64[us]")
        keep = stamps >= np.datetime64(since.replace(tzinfo=None), "us")
        return BinHistory(
            device_id=self.device_id,
            waste_stream=self.stream,
            patch=self.patch,
            capacity_l=self.capacity_l,
            threshold_pct=self.threshold_pct,
            lat=self.lat,
            lon=self.lon,
            ts=stamps[keep],
            fill_pct=np.asarray(self.fill_pct, dtype=np.float64)[keep],
        )


@dataclass
class Town:
    bins: list[SimulatedBin]
    clock: dt.datetime
    reading_interval: dt.timedelta = dt.timedelta(hours=1)
    centre: LatLon = TOWN_CENTRE
    """Where the fixed round's areas meet (:func:`size_round`)."""

    def advance_to(self, until: dt.datetime, on_step: Callable[[dt.datetime], None]) -> None:
        """Take readings every ``reading_interval`` up to and including ``until``."""
        while self.clock + self.reading_interval <= until:
            self.clock += self.reading_interval
            for item in self.bins:
                item.record(self.clock)
            on_step(self.clock)


@dataclass
class LoopResult:
    policy: Policy
    days: int
    working_days: int
    threshold_pct: float | None = None
    km: float = 0.0
    truck_shifts: int = 0
    bins_collected: int = 0
    overflow_hours: float = 0.0
    must_unserved: int = 0
    invalid_plans: int = 0
    fill_at_collection_pct: list[float] = field(default_factory=list)
    planning_s: float = 0.0
    fits: int = 0
    round_sizes: dict[str, int] = field(default_factory=dict)
    collections: list[tuple[str, dt.datetime]] = field(default_factory=list)
    plans: list[Plan] = field(default_factory=list)

    @property
    def mean_fill_at_collection_pct(self) -> float:
        values = self.fill_at_collection_pct
        return float(np.mean(values)) if values else 0.0

    @property
    def label(self) -> str:
        if self.threshold_pct is None:
            return self.policy
        return f"{self.policy} {self.threshold_pct:g} %"


@dataclass(frozen=True)
class RoadTown:
    """A real town to run the loop on: its bins' places, its fleet, its road matrix."""

    places: RealPlaces
    fleet: FleetConfig
    """The fleet given to :func:`road_town`, with the town's depot and tip."""
    travel: MatrixProvider
    """Road seconds and metres between any of the depot, the tip and the bins."""


def road_town(config: LoopConfig, fleet: FleetConfig, extract: Path | None = None) -> RoadTown:
    """``config.town``'s streets from the OpenStreetMap ``extract`` (the bundled one by default).

    ``config.bins`` kerbside points along its residential streets (seeded by ``config.seed``),
    ``fleet`` with its first depot and tip moved to the town's (the rest left out), and the
    road matrix between every place, computed once: each day's request is a subset of these
    places, so each day's matrix is a slice of it.
    """
    from routing.network import read_osm
    from routing.places import BUNDLED_EXTRACT, TOWNS, street_points
    from routing.roads import RoadProvider

    if config.town is None:
        raise ValueError("road_town needs LoopConfig.town")
    town = TOWNS[config.town]
    network = read_osm(extract or BUNDLED_EXTRACT)
    bins = street_points(network, town, config.bins, seed=config.seed)
    places = RealPlaces(town.name, town.centre, bins, (), town.streets)
    depot_lat, depot_lon = town.depot
    tip_lat, tip_lon = town.tip
    fleet = dataclasses.replace(
        fleet,
        depots=(
            dataclasses.replace(fleet.depots[0], id=town.depot_id, lat=depot_lat, lon=depot_lon),
        ),
        tips=(dataclasses.replace(fleet.tips[0], id=town.tip_id, lat=tip_lat, lon=tip_lon),),
    )
    points = [town.depot, town.tip, *bins]
    matrix = RoadProvider.from_network(network).compute_matrix(points)
    return RoadTown(places, fleet, SubsetProvider(matrix, points))


def build_town(config: LoopConfig, places: RealPlaces | None = None) -> Town:
    """The estate's bins with fresh models, warmed up under the fixed weekly round.

    The demo estate around Leicester, or bins at ``places`` (a real town's streets).
    """
    estate = generate_estate(config.bins, 0, seed=config.seed, places=places)
    rows = [r for r in estate if r["kind"] == "bin"]
    bins = [
        SimulatedBin(
            device_id=row["device_id"],
            stream=row["waste_stream"],
            patch=row["patch"],
            lat=float(row["lat"]),
            lon=float(row["lon"]),
            capacity_l=float(row["capacity_l"]),
            threshold_pct=float(row["threshold_pct"]),
            # One generator per bin, seeded by position, so both policies start identical.
            model=dataclasses.replace(
                BinModel.create(
                    row["device_id"],
                    row["waste_stream"],
                    random.Random(config.seed * 100_003 + i),
                ),
                day_variation_sd=config.day_variation_sd,
            ),
        )
        for i, row in enumerate(rows)
    ]
    start = dt.datetime.combine(config.start, dt.time(), tzinfo=dt.UTC)
    centre = places.centre if places is not None else TOWN_CENTRE
    town = Town(
        bins, start - dt.timedelta(days=config.warmup_days), config.reading_interval, centre
    )
    town.advance_to(start, lambda _: None)
    for item in bins:
        # From here on, bins are emptied only when a planned route visits them.
        item.model.weekly_round = False
    return town


def scaled_fleet(fleet: FleetConfig, bins: int) -> FleetConfig:
    """``fleet`` with each stream's trucks scaled from the fleet file's town to ``bins`` bins.

    Trucks are what is available; the plans use as many as the day needs (truck-shifts).
    """
    scale = max(1.0, bins / FLEET_FILE_BINS)
    streams = tuple(
        dataclasses.replace(s, trucks=math.ceil(s.trucks * scale)) for s in fleet.streams
    )
    return dataclasses.replace(fleet, streams=streams)


@dataclass(frozen=True, slots=True)
class RoundSlot:
    """A bin's place in the fixed round: local weekdays, and which weeks (None: every week)."""

    frequency: str
    weekdays: frozenset[int]
    week_parity: int | None = None

    def due(self, day: dt.date) -> bool:
        if day.weekday() not in self.weekdays:
            return False
        return self.week_parity is None or day.isocalendar().week % 2 == self.week_parity


def _frequency(item: SimulatedBin, middle: dt.date, margin: float) -> str:
    rate = item.model.rate_pct_per_day * season_factor(item.stream, middle) * margin
    for name, gap_days in FREQUENCIES[:-1]:
        if rate * gap_days <= 100.0:
            return name
    return FREQUENCIES[-1][0]


def _sectors(items: Sequence[SimulatedBin], count: int, centre: LatLon) -> list[int]:
    """Split ``items`` into ``count`` sectors of the town of equal size, by bearing."""
    bearing = [math.atan2(b.lat - centre[0], (b.lon - centre[1]) * 0.6) for b in items]
    order = sorted(range(len(items)), key=lambda i: bearing[i])
    sector = [0] * len(items)
    for rank, i in enumerate(order):
        sector[i] = rank * count // len(items)
    return sector


def size_round(
    town: Town, start: dt.date, days: int, *, margin: float = FIXED_MARGIN
) -> dict[str, RoundSlot]:
    """The fixed round a council would run over ``days`` from ``start`` (see the module doc).

    Frequency from the bin's mean rate at the period's season, times ``margin``; days by
    area, per stream and frequency: weekly bins in five sectors (Monday to Friday),
    fortnightly in ten (five days, two weeks), twice-weekly in two (Monday and Thursday,
    Tuesday and Friday).
    """
    middle = start + dt.timedelta(days=days // 2)
    groups: dict[tuple[str, str], list[SimulatedBin]] = {}
    for item in town.bins:
        groups.setdefault((item.stream, _frequency(item, middle, margin)), []).append(item)
    slots: dict[str, RoundSlot] = {}
    for (_, frequency), items in groups.items():
        if frequency == "every working day":
            for item in items:
                slots[item.device_id] = RoundSlot(frequency, frozenset(range(5)))
            continue
        count = {"fortnightly": 10, "weekly": 5, "twice weekly": 2}[frequency]
        for item, sector in zip(items, _sectors(items, count, town.centre), strict=True):
            if frequency == "twice weekly":
                slot = RoundSlot(frequency, frozenset({sector, sector + 3}))
            elif frequency == "weekly":
                slot = RoundSlot(frequency, frozenset({sector}))
            else:
                slot = RoundSlot(frequency, frozenset({sector % 5}), week_parity=sector // 5)
            slots[item.device_id] = slot
    return slots


def _round_request(
    town: Town, fleet: FleetConfig, due: Callable[[SimulatedBin], bool]
) -> PlanRequest:
    """Every bin ``due`` today, must-collect, loaded at its last reading."""
    depots, tips = fleet.depots, fleet.tips
    stops: list[BinStop] = []
    vehicles: list[Vehicle] = []
    for stream in sorted({b.stream for b in town.bins}):
        stream_fleet = fleet.stream(stream)
        vehicles.extend(fleet.vehicles(stream))
        for item in town.bins:
            if item.stream != stream or not due(item):
                continue
            fill = min(max(item.fill_pct[-1], 0.0), 110.0)
            weight_kg, volume_l = stream_fleet.load_of(fill / 100.0 * item.capacity_l)
            stops.append(
                BinStop(
                    item.device_id,
                    item.lat,
                    item.lon,
                    stream,
                    round(weight_kg, 1),
                    round(volume_l, 1),
                    service_s=fleet.service_s(item.capacity_l),
                    must_collect=True,
                )
            )
    return PlanRequest(depots, tips, tuple(vehicles), tuple(stops), breaks=fleet.breaks)


@dataclass
class _Forecaster:
    """Fits kept between days (see :attr:`LoopConfig.refit_from_pct`)."""

    config: LoopConfig
    optional_min_pct: float
    fits: dict[str, BinFit] = field(default_factory=dict)
    fitted_at: dict[str, dt.datetime] = field(default_factory=dict)
    collected_at: dict[str, dt.datetime] = field(default_factory=dict)
    count: int = 0

    def _stale(self, device_id: str, now: dt.datetime, next_fill_pct: float | None) -> bool:
        fitted = self.fitted_at.get(device_id)
        margin = self.config.refit_margin_pct
        if fitted is None or margin is None:
            return True
        if self.collected_at.get(device_id, fitted) > fitted:
            return True
        if now - fitted >= dt.timedelta(days=self.config.refit_days):
            return True
        return next_fill_pct is None or next_fill_pct >= self.optional_min_pct - margin

    def forecasts(self, town: Town, fleet: FleetConfig, day: dt.date) -> list[BinForecast]:
        histories = [b.history(town.clock - DEFAULT_LOOKBACK) for b in town.bins]
        visit_at, next_visit_at = visit_times(fleet, day)
        kept = {
            f.device_id: f.forecast_at_next_pct
            for f in forecast_visits(
                histories, self.fits, visit_at=visit_at, next_visit_at=next_visit_at
            )
        }
        refit = [
            h for h in histories if self._stale(h.device_id, town.clock, kept.get(h.device_id))
        ]
        self.fits.update(fit_bins(refit))
        self.fitted_at.update((h.device_id, town.clock) for h in refit)
        self.count += len(refit)
        return forecast_visits(histories, self.fits, visit_at=visit_at, next_visit_at=next_visit_at)


def _dynamic_request(
    town: Town, fleet: FleetConfig, day: dt.date, forecaster: _Forecaster
) -> PlanRequest:
    """Forecast every bin from its readings so far and select stops per stream."""
    forecasts = forecaster.forecasts(town, fleet, day)
    requests = [
        build_request(select_stops(forecasts, fleet, stream=stream), fleet)
        for stream in sorted({b.stream for b in town.bins})
    ]
    return PlanRequest(
        depots=fleet.depots,
        tips=fleet.tips,
        vehicles=tuple(v for r in requests for v in r.vehicles),
        bins=tuple(b for r in requests for b in r.bins),
        breaks=fleet.breaks,
    )


def _policy_fleet(fleet: FleetConfig, threshold_pct: float | None) -> FleetConfig:
    if threshold_pct is None:
        return fleet
    selection = dataclasses.replace(
        fleet.selection,
        optional_min_pct=max(0.0, threshold_pct - OPTIONAL_BELOW_THRESHOLD),
    )
    return dataclasses.replace(fleet, selection=selection)


def _plan_day(
    request: PlanRequest, result: LoopResult, config: LoopConfig, travel: MatrixProvider
) -> Plan:
    """Solve and validate one day's request; add it to ``result``."""
    started = time.perf_counter()
    plan = plan_routes(
        request,
        time_limit_s=config.solve_seconds,
        matrix_provider=travel,
        engine=config.engine,
    )
    result.working_days += 1
    result.planning_s += time.perf_counter() - started
    result.plans.append(plan)
    result.km += plan.distance_m / 1000.0
    result.truck_shifts += sum(1 for route in plan.routes if route.bin_ids)
    result.must_unserved += sum(1 for u in plan.unserved if u.must_collect)
    result.invalid_plans += 0 if plan.is_valid else 1
    return plan


def _visits(plan: Plan, fleet: FleetConfig, day: dt.date) -> list[tuple[dt.datetime, str]]:
    """(ETA in UTC, bin) of every bin the plan's routes visit."""
    return [
        (fleet.local_time(day, stop.start_s).astimezone(dt.UTC), stop.stop_id)
        for route in plan.routes
        for stop in route.stops
        if stop.kind == "bin"
    ]


def simulate(
    town: Town,
    policy: Policy,
    config: LoopConfig,
    *,
    fleet: FleetConfig | None = None,
    travel: MatrixProvider | None = None,
    threshold_pct: float | None = None,
    progress: Callable[[str], None] | None = None,
) -> LoopResult:
    """Run ``config.days`` days of ``policy`` on ``town`` (which it advances).

    ``travel`` gives the plans' km and times (:attr:`RoadTown.travel` on real roads); None:
    the fleet's straight-line estimate. ``threshold_pct`` (dynamic only) sets every bin's
    collection threshold; None keeps the registry's.
    """
    if policy not in POLICIES:
        raise ValueError(f"unknown policy {policy!r}")
    if threshold_pct is not None and policy != "dynamic":
        raise ValueError("a collection threshold applies to the dynamic policy only")
    fleet = _policy_fleet(fleet or load_fleet(), threshold_pct)
    travel = travel or fleet.travel
    if threshold_pct is not None:
        for item in town.bins:
            item.threshold_pct = threshold_pct
    by_id = {b.device_id: b for b in town.bins}
    result = LoopResult(policy, config.days, 0, threshold_pct=threshold_pct)
    forecaster = _Forecaster(config, fleet.selection.optional_min_pct)
    slots = size_round(town, config.start, config.days) if policy == "fixed" else {}
    for slot in slots.values():
        result.round_sizes[slot.frequency] = result.round_sizes.get(slot.frequency, 0) + 1
    step_hours = town.reading_interval.total_seconds() / 3600.0

    def count_overflow(_: dt.datetime) -> None:
        result.overflow_hours += step_hours * sum(
            1 for b in town.bins if b.model.fill_pct >= OVERFLOW_PCT
        )

    def request_for(day: dt.date) -> PlanRequest:
        if policy == "dynamic":
            return _dynamic_request(town, fleet, day, forecaster)
        if policy == "fixed":
            return _round_request(town, fleet, lambda b: slots[b.device_id].due(day))
        return _round_request(town, fleet, lambda b: b.model.collection_weekday == day.weekday())

    for offset in range(config.days):
        day = config.start + dt.timedelta(days=offset)
        plan_at = fleet.local_time(day, PLAN_HOUR * 3600).astimezone(dt.UTC)
        town.advance_to(plan_at, count_overflow)
        visits: list[tuple[dt.datetime, str]] = []
        if day.weekday() in fleet.working_days:
            started = time.perf_counter()
            plan = _plan_day(request_for(day), result, config, travel)
            visits = _visits(plan, fleet, day)
            if progress is not None:
                trucks = sum(1 for r in plan.routes if r.bin_ids)
                progress(
                    f"{result.label} {day:%a %d %b}: {trucks} trucks, "
                    f"{len(visits)} collected, {plan.distance_m / 1000:.1f} km, "
                    f"{time.perf_counter() - started:.0f} s"
                )
        # Crews empty each bin at its ETA: the model is advanced to that instant first, so
        # the waste that arrived before the crew did is counted as collected.
        for eta, device_id in sorted(visits):
            town.advance_to(eta, count_overflow)
            item = by_id[device_id]
            item.model.advance(eta)
            result.fill_at_collection_pct.append(item.model.fill_pct)
            item.model.collect()
            forecaster.collected_at[device_id] = eta
            result.bins_collected += 1
            result.collections.append((device_id, eta))
        end_of_day = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
        town.advance_to(end_of_day, count_overflow)
    result.fits = forecaster.count
    return result


def run_closed_loop(
    config: LoopConfig,
    policies: Sequence[Policy] = POLICIES,
    *,
    fleet: FleetConfig | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[Policy, LoopResult]:
    """Each policy on its own copy of the same town (same seed, same warm-up); on
    ``config.town``'s roads when it is set."""
    fleet = fleet or load_fleet()
    roads = road_town(config, fleet) if config.town is not None else None
    return {
        policy: simulate(
            build_town(config, roads.places if roads else None),
            policy,
            config,
            fleet=roads.fleet if roads else fleet,
            travel=roads.travel if roads else None,
            progress=progress,
        )
        for policy in policies
    }
