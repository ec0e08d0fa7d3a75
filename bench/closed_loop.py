"""Closed-loop simulation: simulated crews follow the plans, and the bins feel it.

The town is the demo estate (``device_sim.estate``) with one simulator bin model per bin
(``device_sim.models.BinModel``: fill by hour and weekday, noisy readings). Before the loop,
``warmup_days`` of history run under the council's old fixed weekly round, so the forecaster
has collections to learn from. Then, for ``days`` days, each working day at ``PLAN_HOUR`` one
plan is made for the whole estate (every stream at once), and every bin a planned route visits
is emptied (:meth:`BinModel.collect`) at its ETA. Two policies share everything but stop
selection:

* ``dynamic``: forecast every bin from its readings (:mod:`forecast.fit`), select stops as
  ``civic routes plan`` does (:func:`routing.planning.select_stops`);
* ``weekly``: every bin on its fixed weekday, whatever its fill (the status quo).

Measured: km driven, bins collected, overflow-hours (hours a bin's true level spent at or above
100 %, sampled every reading), must-collect bins the plans could not serve, and plans the
validator rejected. Pure in-process: no broker, no database.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal

import numpy as np

from device_sim.estate import generate_estate
from device_sim.models import BinModel
from forecast.bins import DEFAULT_LOOKBACK, BinHistory, forecast_visits
from forecast.fit import fit_bins
from routing.fleet import FleetConfig, load_fleet
from routing.model import BinStop, Plan, PlanRequest, Vehicle
from routing.planning import (
    OVERFLOW_PCT,
    build_request,
    select_stops,
    visit_times,
)
from routing.solver import RefuseEngine, plan_routes

__all__ = [
    "LoopConfig",
    "LoopResult",
    "Policy",
    "SimulatedBin",
    "Town",
    "build_town",
    "run_closed_loop",
    "simulate",
]

log = logging.getLogger(__name__)

Policy = Literal["dynamic", "weekly"]
POLICIES: Final = ("dynamic", "weekly")
# Plans are made before the shift, from the readings so far.
PLAN_HOUR: Final = 6
# Sensors report hourly: fine enough for overflow-hours, cheap enough for a month of a town.
READING_INTERVAL: Final = dt.timedelta(hours=1)


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

    def __post_init__(self) -> None:
        if self.bins < 1 or self.days < 1 or self.warmup_days < 0:
            raise ValueError("need bins >= 1, days >= 1 and warmup_days >= 0")
        if self.solve_seconds <= 0:
            raise ValueError("solve_seconds must be positive")


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

    def record(self, ts: dt.datetime) -> None:
        self.ts.append(ts)
        self.fill_pct.append(self.model.reading(ts)["fill_pct"])

    def history(self, since: dt.datetime) -> BinHistory:
        stamps = np.array([t.replace(tzinfo=None) for t in self.ts], dtype="datetime64[us]")
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

    def advance_to(self, until: dt.datetime, on_step: Callable[[dt.datetime], None]) -> None:
        """Take readings every READING_INTERVAL up to and including ``until``."""
        while self.clock + READING_INTERVAL <= until:
            self.clock += READING_INTERVAL
            for item in self.bins:
                item.record(self.clock)
            on_step(self.clock)


@dataclass
class LoopResult:
    policy: Policy
    days: int
    working_days: int
    km: float = 0.0
    bins_collected: int = 0
    overflow_hours: float = 0.0
    must_unserved: int = 0
    invalid_plans: int = 0
    fill_at_collection_pct: list[float] = field(default_factory=list)
    planning_s: float = 0.0
    collections: list[tuple[str, dt.datetime]] = field(default_factory=list)
    plans: list[Plan] = field(default_factory=list)

    @property
    def mean_fill_at_collection_pct(self) -> float:
        values = self.fill_at_collection_pct
        return float(np.mean(values)) if values else 0.0


def build_town(config: LoopConfig) -> Town:
    """The demo estate's bins with fresh models, warmed up under the fixed weekly round."""
    rows = [r for r in generate_estate(config.bins, 0, seed=config.seed) if r["kind"] == "bin"]
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
            model=BinModel.create(
                row["device_id"], row["waste_stream"], random.Random(config.seed * 100_003 + i)
            ),
        )
        for i, row in enumerate(rows)
    ]
    start = dt.datetime.combine(config.start, dt.time(), tzinfo=dt.UTC)
    town = Town(bins, start - dt.timedelta(days=config.warmup_days))
    town.advance_to(start, lambda _: None)
    for item in bins:
        # From here on, bins are emptied only when a planned route visits them.
        item.model.weekly_round = False
    return town


def _weekly_request(town: Town, fleet: FleetConfig, day: dt.date) -> PlanRequest:
    """Every bin whose round falls today, must-collect, loaded at its last reading."""
    depots, tips = fleet.depots, fleet.tips
    stops: list[BinStop] = []
    vehicles: list[Vehicle] = []
    for stream in sorted({b.stream for b in town.bins}):
        stream_fleet = fleet.stream(stream)
        vehicles.extend(fleet.vehicles(stream))
        for item in town.bins:
            if item.stream != stream or item.model.collection_weekday != day.weekday():
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


def _dynamic_request(town: Town, fleet: FleetConfig, day: dt.date) -> PlanRequest:
    """Forecast every bin from its readings so far and select stops per stream."""
    histories = [b.history(town.clock - DEFAULT_LOOKBACK) for b in town.bins]
    fits = fit_bins(histories)
    visit_at, next_visit_at = visit_times(fleet, day)
    forecasts = forecast_visits(histories, fits, visit_at=visit_at, next_visit_at=next_visit_at)
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


def simulate(
    town: Town,
    policy: Policy,
    config: LoopConfig,
    *,
    fleet: FleetConfig | None = None,
    progress: Callable[[str], None] | None = None,
) -> LoopResult:
    """Run ``config.days`` days of ``policy`` on ``town`` (which it advances)."""
    if policy not in POLICIES:
        raise ValueError(f"unknown policy {policy!r}")
    fleet = fleet or load_fleet()
    by_id = {b.device_id: b for b in town.bins}
    result = LoopResult(policy, config.days, 0)

    def count_overflow(_: dt.datetime) -> None:
        hours = READING_INTERVAL.total_seconds() / 3600.0
        result.overflow_hours += hours * sum(
            1 for b in town.bins if b.model.fill_pct >= OVERFLOW_PCT
        )

    for offset in range(config.days):
        day = config.start + dt.timedelta(days=offset)
        plan_at = fleet.local_time(day, PLAN_HOUR * 3600).astimezone(dt.UTC)
        town.advance_to(plan_at, count_overflow)
        visits: list[tuple[dt.datetime, str]] = []
        if day.weekday() in fleet.working_days:
            result.working_days += 1
            started = time.perf_counter()
            request = (
                _dynamic_request(town, fleet, day)
                if policy == "dynamic"
                else _weekly_request(town, fleet, day)
            )
            plan = plan_routes(
                request,
                time_limit_s=config.solve_seconds,
                matrix_provider=fleet.travel,
                engine=config.engine,
            )
            result.planning_s += time.perf_counter() - started
            result.plans.append(plan)
            result.km += plan.distance_m / 1000.0
            result.must_unserved += sum(1 for u in plan.unserved if u.must_collect)
            result.invalid_plans += 0 if plan.is_valid else 1
            for route in plan.routes:
                for stop in route.stops:
                    if stop.kind == "bin":
                        eta = fleet.local_time(day, stop.start_s).astimezone(dt.UTC)
                        visits.append((eta, stop.stop_id))
            if progress is not None:
                progress(
                    f"{policy} {day:%a %d %b}: {len(request.bins)} stops offered, "
                    f"{len(visits)} collected, {plan.distance_m / 1000:.1f} km"
                )
        # Crews empty each bin at its ETA: the model is advanced to that instant first, so
        # the waste that arrived before the crew did is counted as collected.
        for eta, device_id in sorted(visits):
            town.advance_to(eta, count_overflow)
            item = by_id[device_id]
            item.model.advance(eta)
            result.fill_at_collection_pct.append(item.model.fill_pct)
            item.model.collect()
            result.bins_collected += 1
            result.collections.append((device_id, eta))
        end_of_day = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
        town.advance_to(end_of_day, count_overflow)
    return result


def run_closed_loop(
    config: LoopConfig,
    policies: Sequence[Policy] = POLICIES,
    *,
    fleet: FleetConfig | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[Policy, LoopResult]:
    """Each policy on its own copy of the same town (same seed, same warm-up)."""
    return {
        policy: simulate(build_town(config), policy, config, fleet=fleet, progress=progress)
        for policy in policies
    }
