"""From bin forecasts to a day's :class:`~routing.model.PlanRequest`.

The council's rule (``DOMAIN.md``): collect a bin when its *forecast* fill at the planned visit
reaches its threshold, not its fill now. The visit is planned somewhere in the shift, so the
forecast is taken at the shift's end, the latest a crew could arrive today. A bin is also a
must-collect stop when it is overflowing now, when it would overflow before the next working
day's round, or when someone has reported it. Other bins are optional stops, worth a detour
in proportion to their forecast fill (:func:`~routing.model.drop_penalty_for_fill`), so a
nearly full bin next door is taken; bins well below that are left out to keep the model small.

Pure functions over plain values, apart from :func:`forecast_from_store`, which reads the fill
history through :mod:`routing.history`.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import psycopg

from routing.fleet import FleetConfig
from routing.forecast import BinFit, fit_bins, forecast_fill
from routing.history import DEFAULT_LOOKBACK, BinHistory, load_fill_history
from routing.model import BinStop, PlanRequest, drop_penalty_for_fill

__all__ = [
    "OVERFLOW_PCT",
    "SelectedStop",
    "Selection",
    "StopForecast",
    "build_request",
    "forecast_from_store",
    "forecast_stops",
    "select_stops",
    "visit_times",
]

# A bin at 100 % is full to the rim: anything more is on the pavement.
OVERFLOW_PCT: Final = 100.0
# Sensors read up to about 110 % when waste is heaped; more than that is not in the bin.
MAX_LOAD_PCT: Final = 110.0


@dataclass(frozen=True, slots=True)
class StopForecast:
    """One bin's forecast, as stop selection needs it.

    ``forecast_at_visit_pct`` is the expected fill at today's latest visit if nobody empties
    the bin first; ``forecast_at_next_pct`` the same at the next working day's latest visit
    (None when not computed).
    """

    device_id: str
    lat: float
    lon: float
    stream: str
    capacity_l: float
    threshold_pct: float
    fill_now_pct: float
    forecast_at_visit_pct: float
    lo_pct: float
    hi_pct: float
    forecast_at_next_pct: float | None = None
    stuck: bool = False

    def __post_init__(self) -> None:
        for name in ("fill_now_pct", "forecast_at_visit_pct", "lo_pct", "hi_pct"):
            if not math.isfinite(getattr(self, name)):
                raise ValueError(f"StopForecast {self.device_id}: {name} must be finite")
        if self.capacity_l <= 0:
            raise ValueError(f"StopForecast {self.device_id}: capacity_l must be positive")


@dataclass(frozen=True, slots=True)
class SelectedStop:
    """A bin offered to the solver, the forecast behind it, and why (in words)."""

    stop: BinStop
    forecast: StopForecast
    reason: str


@dataclass(frozen=True, slots=True)
class Selection:
    """The stops offered for one stream's day, and how many bins were left out as too low."""

    stream: str
    stops: tuple[SelectedStop, ...]
    left_out: int

    @property
    def must_collect(self) -> int:
        return sum(1 for s in self.stops if s.stop.must_collect)


def visit_times(fleet: FleetConfig, plan_date: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """Latest visit today (shift end) and at the next working day's round, both in UTC."""
    today = fleet.local_time(plan_date, fleet.shift.end_s)
    following = fleet.local_time(fleet.next_working_day(plan_date), fleet.shift.end_s)
    return today.astimezone(dt.UTC), following.astimezone(dt.UTC)


def forecast_stops(
    histories: Sequence[BinHistory],
    fits: Mapping[str, BinFit],
    *,
    visit_at: dt.datetime,
    next_visit_at: dt.datetime | None = None,
) -> list[StopForecast]:
    """Forecast each fitted bin at ``visit_at`` (and ``next_visit_at``).

    A bin whose last reading is later than ``visit_at`` is forecast at its last reading.
    """
    forecasts = []
    for history in histories:
        fit = fits.get(history.device_id)
        if fit is None:
            continue
        at = max(visit_at, fit.last_ts)
        fill, lo, hi = forecast_fill(fit, fit.fill_now_pct, fit.last_ts, at)
        following = None
        if next_visit_at is not None:
            following = forecast_fill(
                fit, fit.fill_now_pct, fit.last_ts, max(next_visit_at, fit.last_ts)
            )[0]
        forecasts.append(
            StopForecast(
                device_id=history.device_id,
                lat=history.lat,
                lon=history.lon,
                stream=history.waste_stream,
                capacity_l=history.capacity_l,
                threshold_pct=history.threshold_pct,
                fill_now_pct=fit.fill_now_pct,
                forecast_at_visit_pct=fill,
                lo_pct=lo,
                hi_pct=hi,
                forecast_at_next_pct=following,
                stuck=fit.stuck,
            )
        )
    return forecasts


def forecast_from_store(
    conn: psycopg.Connection[dict[str, Any]],
    fleet: FleetConfig,
    plan_date: dt.date,
    *,
    stream: str,
    as_of: dt.datetime,
    lookback: dt.timedelta = DEFAULT_LOOKBACK,
) -> list[StopForecast]:
    """Forecast the ``stream``'s bins for ``plan_date`` from readings before ``as_of``."""
    histories = load_fill_history(conn, since=as_of - lookback, until=as_of)
    mine = [h for h in histories.values() if h.waste_stream == stream]
    fits = fit_bins(mine)
    visit_at, next_visit_at = visit_times(fleet, plan_date)
    return forecast_stops(mine, fits, visit_at=visit_at, next_visit_at=next_visit_at)


def _pct(value: float) -> str:
    return f"{value:.0f} %"


def _must_reason(forecast: StopForecast, urgent: bool) -> str | None:
    if urgent:
        return "reported: collect today"
    if forecast.fill_now_pct >= OVERFLOW_PCT:
        return f"overflowing now ({_pct(forecast.fill_now_pct)})"
    if forecast.forecast_at_visit_pct >= forecast.threshold_pct:
        return (
            f"forecast {_pct(forecast.forecast_at_visit_pct)} by the end of the shift, "
            f"threshold {_pct(forecast.threshold_pct)}"
        )
    if forecast.forecast_at_next_pct is not None and forecast.forecast_at_next_pct >= OVERFLOW_PCT:
        return (
            f"would overflow ({_pct(forecast.forecast_at_next_pct)}) before the next working "
            "day's round"
        )
    return None


def select_stops(
    forecasts: Sequence[StopForecast],
    fleet: FleetConfig,
    *,
    stream: str,
    urgent: Collection[str] = (),
) -> Selection:
    """Turn forecasts into the day's stops for ``stream`` (see the module docstring).

    ``urgent`` device ids (reported overflowing, fire, fly-tipping) are must-collect whatever
    their forecast. Loads are the forecast contents at the visit: fill × bin capacity gives
    loose litres, which the stream's density and compaction turn into kg and body litres.
    """
    stream_fleet = fleet.stream(stream)
    settings = fleet.selection
    stops: list[SelectedStop] = []
    left_out = 0
    for forecast in forecasts:
        if forecast.stream != stream:
            continue
        reason = _must_reason(forecast, forecast.device_id in urgent)
        fill = max(forecast.forecast_at_visit_pct, forecast.fill_now_pct)
        if reason is None and forecast.stuck:
            # A stuck sensor says nothing about the bin: offer it as if at the stuck level.
            fill = max(fill, settings.stuck_as_pct)
            reason = f"optional: sensor stuck, offered as if at {_pct(settings.stuck_as_pct)}"
        elif reason is None:
            if forecast.forecast_at_visit_pct < settings.optional_min_pct:
                left_out += 1
                continue
            reason = f"optional: forecast {_pct(forecast.forecast_at_visit_pct)}"
        fill = min(max(fill, 0.0), MAX_LOAD_PCT)
        if forecast.device_id in urgent:
            fill = max(fill, OVERFLOW_PCT)  # a reported bin is full whatever its sensor says
        weight_kg, volume_l = stream_fleet.load_of(fill / 100.0 * forecast.capacity_l)
        must = not reason.startswith("optional")
        threshold = min(max(forecast.threshold_pct / 100.0, 0.01), 1.0)
        stop = BinStop(
            id=forecast.device_id,
            lat=forecast.lat,
            lon=forecast.lon,
            stream=stream,
            weight_kg=round(weight_kg, 1),
            volume_l=round(volume_l, 1),
            service_s=fleet.service_s(forecast.capacity_l),
            must_collect=must,
            drop_penalty=drop_penalty_for_fill(
                min(fill / 100.0, 2.0),
                threshold=threshold,
                metres_at_threshold=settings.metres_at_threshold,
            ),
        )
        stops.append(SelectedStop(stop, forecast, reason))
    return Selection(stream, tuple(stops), left_out)


def build_request(selection: Selection, fleet: FleetConfig) -> PlanRequest:
    """The day's request: the stream's trucks from the first depot, tips that take the stream."""
    tips = tuple(t for t in fleet.tips if t.accepts(selection.stream))
    return PlanRequest(
        depots=fleet.depots,
        tips=tips,
        vehicles=fleet.vehicles(selection.stream),
        bins=tuple(s.stop for s in selection.stops),
        breaks=fleet.breaks,
    )
