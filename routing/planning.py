"""From bin forecasts to a day's :class:`~routing.model.PlanRequest`.

The council's rule (``DOMAIN.md``): collect a bin when its *forecast* fill at the planned visit
reaches its threshold, not its fill now. The visit is planned somewhere in the shift, so the
forecast is taken at the shift's end, the latest a crew could arrive today. A bin is also a
must-collect stop when it is overflowing now, when it would overflow before the next working
day's round, or when someone has reported it. Other bins are optional stops, worth a detour
in proportion to their forecast fill (:func:`~routing.model.drop_penalty_for_fill`), so a
nearly full bin next door is taken; bins well below that are left out to keep the model small.

Pure functions over plain values, apart from :func:`forecast_from_store`, which reads the fill
history through :mod:`forecast.bins`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any, Final

import psycopg

from forecast.bins import DEFAULT_LOOKBACK, BinForecast, forecast_visits, load_fill_history
from forecast.fit import fit_bins
from routing.fleet import FleetConfig
from routing.model import BinStop, PlanRequest, drop_penalty_for_fill

__all__ = [
    "OVERFLOW_PCT",
    "SelectedStop",
    "Selection",
    "build_request",
    "forecast_from_store",
    "select_stops",
    "visit_times",
]

# A bin at 100 % is full to the rim: anything more is on the pavement.
OVERFLOW_PCT: Final = 100.0
# Sensors read up to about 110 % when waste is heaped; more than that is not in the bin.
MAX_LOAD_PCT: Final = 110.0


@dataclass(frozen=True, slots=True)
class SelectedStop:
    """A bin offered to the solver, the forecast behind it, and why (in words)."""

    stop: BinStop
    forecast: BinForecast
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


def forecast_from_store(
    conn: psycopg.Connection[dict[str, Any]],
    fleet: FleetConfig,
    plan_date: dt.date,
    *,
    stream: str,
    as_of: dt.datetime,
    lookback: dt.timedelta = DEFAULT_LOOKBACK,
) -> list[BinForecast]:
    """Forecast the ``stream``'s bins for ``plan_date`` from readings before ``as_of``."""
    histories = load_fill_history(conn, since=as_of - lookback, until=as_of)
    mine = [h for h in histories.values() if h.waste_stream == stream]
    fits = fit_bins(mine)
    visit_at, next_visit_at = visit_times(fleet, plan_date)
    return forecast_visits(mine, fits, visit_at=visit_at, next_visit_at=next_visit_at)


def _pct(value: float) -> str:
    return f"{value:.0f} %"


def _must_reason(forecast: BinForecast, urgent: bool) -> str | None:
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
    forecasts: Sequence[BinForecast],
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
