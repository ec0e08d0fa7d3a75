"""Bin fill history from the store, and each bin's forecast at a visit time.

The only part of the forecast that does I/O: :func:`load_fill_history` reads readings joined to
the device registry into numpy arrays; :func:`forecast_bins` fits them with
:func:`forecast.fit.fit_bins` and forecasts each bin at a time; :func:`forecast_visits` does the
same for already fitted bins at a visit and the next one (stop selection in routing).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg

from forecast.fit import (
    DEFAULT_FIT_SETTINGS,
    BinFit,
    FitSettings,
    FitSource,
    fit_bins,
    forecast_fill,
    forecast_full_time,
)

__all__ = [
    "DEFAULT_LOOKBACK",
    "BinForecast",
    "BinHistory",
    "forecast_bins",
    "forecast_visits",
    "load_fill_history",
]

log = logging.getLogger(__name__)

DEFAULT_LOOKBACK = timedelta(days=28)  # four weekly rounds: each weekday seen four times

_HISTORY_QUERY = """
SELECT d.device_id, d.waste_stream, d.patch, d.capacity_l, d.threshold_pct, d.lat, d.lon,
       r.epoch_s, r.fill_pct
FROM devices d
JOIN LATERAL (
    SELECT array_agg(extract(epoch FROM ts)::float8 ORDER BY ts) AS epoch_s,
           array_agg(fill_pct ORDER BY ts) AS fill_pct
    FROM readings
    WHERE device_id = d.device_id AND fill_pct IS NOT NULL
      AND ts >= %(since)s AND (%(until)s::timestamptz IS NULL OR ts < %(until)s)
) r ON r.epoch_s IS NOT NULL
WHERE d.kind = 'bin' AND (%(ids)s::text[] IS NULL OR d.device_id = ANY(%(ids)s))
ORDER BY d.device_id
"""


def _readonly(array: npt.NDArray[Any]) -> None:
    array.setflags(write=False)


@dataclass(frozen=True, slots=True, eq=False)
class BinHistory:
    """One bin's fill readings (oldest first, read-only arrays) and its registry attributes."""

    device_id: str
    waste_stream: str
    patch: str | None
    capacity_l: float
    threshold_pct: float
    lat: float
    lon: float
    ts: npt.NDArray[np.datetime64]
    """UTC, ``datetime64[us]``."""
    fill_pct: npt.NDArray[np.float64]

    def __post_init__(self) -> None:
        if self.ts.ndim != 1 or self.ts.shape != self.fill_pct.shape:
            raise ValueError(
                f"BinHistory {self.device_id}: ts and fill_pct must be 1-D and equal length"
            )
        if not np.issubdtype(self.ts.dtype, np.datetime64):
            raise ValueError(f"BinHistory {self.device_id}: ts must be datetime64")
        if self.ts.size > 1 and bool(np.any(np.diff(self.ts) <= np.timedelta64(0, "us"))):
            raise ValueError(f"BinHistory {self.device_id}: ts must be strictly increasing")
        if not (math.isfinite(self.capacity_l) and self.capacity_l > 0):
            raise ValueError(f"BinHistory {self.device_id}: capacity_l must be positive")
        if not 0 < self.threshold_pct <= 100:
            raise ValueError(f"BinHistory {self.device_id}: threshold_pct must be in (0, 100]")
        _readonly(self.ts)
        _readonly(self.fill_pct)


@dataclass(frozen=True, slots=True)
class BinForecast:
    """One bin's forecast: its fill now and at a visit time, for alerts and stop selection.

    ``forecast_at_visit_pct`` is the expected fill at the visit if nobody empties the bin
    first; ``forecast_at_next_pct`` the same at the next working day's visit. Fields left at
    their defaults were not computed (stop selection needs no full time; alerts no next visit).
    """

    device_id: str
    lat: float
    lon: float
    stream: str
    capacity_l: float
    threshold_pct: float
    fill_now_pct: float
    """Smoothed level at ``last_reading_ts``."""
    forecast_at_visit_pct: float
    lo_pct: float
    hi_pct: float
    """The 90 % prediction interval of the fill at the visit."""
    forecast_at_next_pct: float | None = None
    stuck: bool = False
    """The sensor has repeated a flat value for days: its level is not to be trusted."""
    last_reading_ts: datetime | None = None
    forecast_full_time: datetime | None = None
    """When the fill is expected to reach ``threshold_pct`` (None: not within four weeks)."""
    full_earliest: datetime | None = None
    full_latest: datetime | None = None
    fit_source: FitSource = "own"
    """``own`` history, or ``peers`` / ``blended`` for a bin with little history."""
    history_h: float = 0.0
    last_collection_ts: datetime | None = None
    """When the bin was last seen emptied (the newest collection detected in the history)."""

    def __post_init__(self) -> None:
        for name in ("fill_now_pct", "forecast_at_visit_pct", "lo_pct", "hi_pct"):
            if not math.isfinite(getattr(self, name)):
                raise ValueError(f"BinForecast {self.device_id}: {name} must be finite")
        if self.capacity_l <= 0:
            raise ValueError(f"BinForecast {self.device_id}: capacity_l must be positive")
        if not self.lo_pct <= self.forecast_at_visit_pct <= self.hi_pct:
            raise ValueError(
                f"BinForecast {self.device_id}: need lo <= forecast <= hi, got "
                f"{self.lo_pct}, {self.forecast_at_visit_pct}, {self.hi_pct}"
            )

    @property
    def must_collect(self) -> bool:
        """Forecast to reach its threshold by the visit (the council's collection rule)."""
        return self.forecast_at_visit_pct >= self.threshold_pct


def _datetime64(epoch_s: Sequence[float]) -> npt.NDArray[np.datetime64]:
    micros = np.rint(np.asarray(epoch_s, dtype=np.float64) * 1e6).astype(np.int64)
    return micros.astype("datetime64[us]")


def load_fill_history(
    conn: psycopg.Connection[dict[str, Any]],
    *,
    since: datetime,
    until: datetime | None = None,
    device_ids: Sequence[str] | None = None,
) -> dict[str, BinHistory]:
    """Fill readings of bins in ``[since, until)`` with their registry attributes, by device id.

    Bins without a fill reading in the window are left out. Readings come back as arrays built
    in the database (one row per bin), not one Python row per reading.
    """
    for name, value in (("since", since), ("until", until)):
        if value is not None and value.tzinfo is None:
            raise ValueError(f"{name} must be timezone-aware")
    ids = list(device_ids) if device_ids is not None else None
    rows = conn.execute(_HISTORY_QUERY, {"since": since, "until": until, "ids": ids}).fetchall()
    histories: dict[str, BinHistory] = {}
    for row in rows:
        histories[row["device_id"]] = BinHistory(
            device_id=row["device_id"],
            waste_stream=row["waste_stream"],
            patch=row["patch"],
            capacity_l=float(row["capacity_l"]),
            threshold_pct=float(row["threshold_pct"]),
            lat=float(row["lat"]),
            lon=float(row["lon"]),
            ts=_datetime64(row["epoch_s"]),
            fill_pct=np.asarray(row["fill_pct"], dtype=np.float64),
        )
    return histories


def forecast_bins(
    conn: psycopg.Connection[dict[str, Any]],
    at: datetime,
    *,
    now: datetime | None = None,
    lookback: timedelta = DEFAULT_LOOKBACK,
    device_ids: Sequence[str] | None = None,
    settings: FitSettings = DEFAULT_FIT_SETTINGS,
) -> list[BinForecast]:
    """Forecast every bin (or ``device_ids``) at the planned visit time ``at``.

    Fits the readings in ``[now - lookback, now)``; ``now`` defaults to the current time, and a
    past ``now`` replays what was known then. Bins with little history borrow from peers in
    the same stream and patch. Bins with no reading in the window are left out (nothing to
    forecast from); they are logged.
    """
    now = datetime.now(UTC) if now is None else now
    if at.tzinfo is None or now.tzinfo is None:
        raise ValueError("at and now must be timezone-aware")
    if at < now:
        raise ValueError(f"at ({at.isoformat()}) is before now ({now.isoformat()})")
    histories = load_fill_history(conn, since=now - lookback, until=now, device_ids=device_ids)
    if device_ids is not None:
        missing = sorted(set(device_ids) - set(histories))
        if missing:
            log.warning("no fill readings in the window for %d bin(s): %s", len(missing), missing)
    fits = fit_bins(list(histories.values()), settings=settings)
    forecasts = forecast_visits(list(histories.values()), fits, visit_at=at.astimezone(UTC))
    return [_with_full_time(f, fits[f.device_id]) for f in forecasts]


def _with_full_time(forecast: BinForecast, fit: BinFit) -> BinForecast:
    """``forecast`` with when its bin is expected to reach its threshold."""
    full, earliest, latest = forecast_full_time(
        fit, fit.fill_now_pct, fit.last_ts, forecast.threshold_pct
    )
    return dataclasses.replace(
        forecast, forecast_full_time=full, full_earliest=earliest, full_latest=latest
    )


def forecast_visits(
    histories: Sequence[BinHistory],
    fits: Mapping[str, BinFit],
    *,
    visit_at: datetime,
    next_visit_at: datetime | None = None,
) -> list[BinForecast]:
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
            BinForecast(
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
                last_reading_ts=fit.last_ts,
                fit_source=fit.source,
                history_h=fit.history_h,
                last_collection_ts=fit.collections[-1].ts if fit.collections else None,
            )
        )
    return forecasts
