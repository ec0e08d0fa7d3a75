"""Bin fill forecasts: collections, fill rates with a weekly pattern, and when a bin will be full.

Pure numpy/scipy over one bin's readings; the store is read by :mod:`forecast.bins`.

How a bin's history becomes a forecast (:func:`fit_bin`):

1. **Clean.** Readings far from the median of their neighbours are echoes (an ultrasonic sensor
   sometimes reports 0 % or 100 % for one or two readings) and are ignored. A flat run lasting
   many hours is a stuck sensor repeating itself; it is left out of the fit, and a flat run of
   days up to the last reading sets :attr:`BinFit.stuck_since`.
2. **Collections.** A drop of at least ``collection_drop_pct`` between the median level of the
   hours before and the hours after a reading is a collection (also proof of service). Medians
   over hours, not single readings, so one echo never looks like an emptied bin.
3. **Pattern clock.** Fill rises at ``rate × weekday factor × hour factor``. The clock ``C(t)``
   counts pattern-weighted hours, so between two collections fill is a straight line in ``C``.
   The factors come from a Huber-loss least-squares fit over all segments (one intercept per
   segment), with a prior that shrinks them toward 1 when data is thin; the hour factors are only
   fitted once there is a week of history.
4. **Rate.** Theil–Sen per segment on the pattern clock, combined across segments with
   DerSimonian–Laird weights, so week-to-week differences widen the rate's standard error.
5. **Interval.** Normal, from the uncertainty of the current level, the rate's standard error
   times the pattern hours ahead, and the spread of 24-hour rises that the model does not explain
   (as a random walk, growing with the square root of the horizon).

A bin with little history borrows from similar bins (:func:`cold_start`): their pooled pattern,
and a rate that blends the bin's own estimate with the peers' by precision.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Literal, Protocol

import numpy as np
import numpy.typing as npt
from scipy import ndimage, stats

__all__ = [
    "DEFAULT_FIT_SETTINGS",
    "INTERVAL_Z_90",
    "OVERFLOW_CAP_PCT",
    "BinFit",
    "Collection",
    "FillPattern",
    "FillSeries",
    "FitSettings",
    "FitSource",
    "PeerPool",
    "cold_start",
    "detect_collections",
    "fit_bin",
    "fit_bins",
    "forecast_fill",
    "forecast_full_time",
    "pool_peers",
]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.intp]
FitSource = Literal["own", "peers", "blended"]

# Sensors read past 100 % when waste is heaped above the rim; past this the number means nothing.
OVERFLOW_CAP_PCT = 110.0
INTERVAL_Z_90 = 1.6449  # two-sided 90 % interval of a normal distribution
_WEEK_H = 168
_MONDAY_OFFSET_H = 72.0  # 1970-01-01 was a Thursday: the Monday 00:00 UTC before it is 72 h earlier
_MIN_NOISE_PCT = 0.2  # readings come rounded to 0.1 %; a smaller spread is rounding, not signal
_THEIL_SEN_MAX_POINTS = 120  # Theil-Sen is O(n²); this many points per segment pin the slope
_FULL_TIME_STEP_H = 0.25
_FULL_PCT = 100.0
_MIN_PLATEAU_READINGS = 6  # a few hours overflowing: enough to see where the level stops
_HUBER_K = 1.5  # in noise sds: quadratic for ordinary noise, linear for the rare bad reading


@dataclass(frozen=True, slots=True)
class FitSettings:
    """Tuning for :func:`fit_bin`; the defaults suit 15-60 minute readings with ±1.5 % noise."""

    outlier_min_pct: float = 8.0
    """A reading this far (and ``outlier_noise_k`` noise sds) from its neighbours' median is an
    echo. Above the most a fast bin rises in the ±1.5 h the median spans."""
    outlier_noise_k: float = 5.0
    collection_drop_pct: float = 10.0
    """Smallest level drop read as a collection; a slow garden bin still drops more in a week."""
    collection_window_h: float = 2.0
    """Hours of readings either side whose medians must differ by ``collection_drop_pct``."""
    collection_merge_h: float = 6.0
    """Drops closer than this are one collection (a crew empties a bin once per visit)."""
    flat_tolerance_pct: float = 1.0
    """Readings within this band are flat; same as the stuck-sensor alert's tolerance."""
    flat_ignore_after_h: float = 12.0
    """Flat runs at least this long are left out of the fit: a live sensor's noise moves more."""
    stuck_after_h: float = 48.0
    """A flat run reaching the last reading and lasting this long marks the sensor stuck."""
    saturation_pct: float = 100.0
    """Readings at or above this are a full bin: its rise no longer shows, so they do not fit."""
    min_segment_h: float = 6.0
    """Segments between collections shorter than this give no rate."""
    weekday_prior_sd: float = 0.25
    """Prior sd of log weekday factors: shrinks them toward 1 when few weeks are seen."""
    hour_prior_sd: float = 1.0
    hour_smooth_sd: float = 0.4
    """Prior sd of the change in log hour factor from one hour to the next."""
    hourly_min_history_h: float = 168.0
    """Hour factors are fitted only with at least a week of usable history."""
    level_window_h: float = 6.0
    """Recent readings projected to the last one to estimate the fill now."""
    cold_start_below_h: float = 96.0
    """Bins with less usable history than this borrow from peers (see :func:`cold_start`)."""
    peer_spread_floor: float = 0.35
    """Least relative spread assumed between a bin's rate and its peers' median, so that a few
    similar peers do not make a new bin's forecast look certain."""
    min_patch_peers: int = 3
    """Fewer peers than this in the same stream and patch: borrow from the whole stream."""
    rise_block_h: float = 3.0
    """Residuals are averaged over blocks this long before their 24-hour changes are measured
    (must divide 24): long enough to average reading noise away, short enough to keep days."""
    weekday_shrinkage_days: float = 0.5
    """How many days' worth the weekday prior counts for in the leave-one-out correction of the
    unexplained rise (see :func:`_unexplained_rise_sd`); it keeps one week of history finite."""
    min_rate_rel_se: float = 0.05
    """Least standard error of a rate, relative to it (from a week or more of history; more
    from less). Usage varies from week to week by more
    than this in practice; a few segments that happen to agree would otherwise claim a rate
    known almost exactly, and the interval would ignore errors in the weekly pattern."""

    def __post_init__(self) -> None:
        for name in (
            "outlier_min_pct",
            "outlier_noise_k",
            "collection_drop_pct",
            "collection_window_h",
            "collection_merge_h",
            "flat_ignore_after_h",
            "stuck_after_h",
            "saturation_pct",
            "min_segment_h",
            "weekday_prior_sd",
            "hour_prior_sd",
            "hour_smooth_sd",
            "level_window_h",
            "rise_block_h",
            "weekday_shrinkage_days",
        ):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"FitSettings.{name} must be a positive number, got {value!r}")
        for name in (
            "flat_tolerance_pct",
            "hourly_min_history_h",
            "cold_start_below_h",
            "min_rate_rel_se",
        ):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"FitSettings.{name} must be >= 0, got {value!r}")
        if self.min_patch_peers < 1:
            raise ValueError("FitSettings.min_patch_peers must be at least 1")
        if not 0 <= self.peer_spread_floor <= 5:
            raise ValueError(
                f"FitSettings.peer_spread_floor must be 0..5, got {self.peer_spread_floor}"
            )


DEFAULT_FIT_SETTINGS = FitSettings()


def _check_factors(name: str, factors: tuple[float, ...], length: int) -> None:
    if len(factors) != length:
        raise ValueError(f"FillPattern.{name} needs {length} values, got {len(factors)}")
    if not all(math.isfinite(f) and f > 0 for f in factors):
        raise ValueError(f"FillPattern.{name} must be positive and finite: {factors}")
    mean = sum(factors) / length
    if abs(mean - 1.0) > 1e-6:
        raise ValueError(f"FillPattern.{name} must average 1 (got {mean:.6f}); use normalised()")


@dataclass(frozen=True, slots=True)
class FillPattern:
    """Relative fill rate by weekday (Monday first) and by hour of day, both in UTC.

    Each averages 1, so over a week the bin rises ``rate_pct_per_h × 168``.
    """

    weekday_factor: tuple[float, ...] = (1.0,) * 7
    hour_factor: tuple[float, ...] = (1.0,) * 24

    def __post_init__(self) -> None:
        _check_factors("weekday_factor", self.weekday_factor, 7)
        _check_factors("hour_factor", self.hour_factor, 24)

    @classmethod
    def normalised(cls, weekday: Sequence[float], hour: Sequence[float]) -> FillPattern:
        """A pattern from factors of any scale (each rescaled to average 1)."""
        w = np.asarray(weekday, dtype=np.float64)
        h = np.asarray(hour, dtype=np.float64)
        return cls(tuple(float(v) for v in w / w.mean()), tuple(float(v) for v in h / h.mean()))

    def cell_factor(self) -> FloatArray:
        """Factor for each hour of the week (Monday 00:00 first), averaging 1."""
        return np.outer(self.weekday_factor, self.hour_factor).ravel()

    def clock_h(self, epoch_s: FloatArray) -> FloatArray:
        """Pattern-weighted hours from a fixed Monday to each instant (seconds since epoch).

        The difference between two instants is the number of "average hours" of filling between
        them, so fill rises by ``rate_pct_per_h × (clock_h(b) - clock_h(a))``.
        """
        cells = self.cell_factor()
        cumulative = np.concatenate(([0.0], np.cumsum(cells)))
        hours = np.asarray(epoch_s, dtype=np.float64) / 3600.0 + _MONDAY_OFFSET_H
        weeks = np.floor(hours / _WEEK_H)
        within = hours - weeks * _WEEK_H
        cell = np.minimum(np.floor(within).astype(np.intp), _WEEK_H - 1)
        frac = within - cell
        result: FloatArray = weeks * cumulative[-1] + cumulative[cell] + frac * cells[cell]
        return result


FLAT_PATTERN = FillPattern()


@dataclass(frozen=True, slots=True)
class Collection:
    """A detected emptying: between the last reading before the drop and ``ts``."""

    ts: datetime
    """The first reading that shows the bin emptied ("emptied by")."""
    before_ts: datetime
    """The last reading before the drop ("emptied after")."""
    fill_before_pct: float
    fill_after_pct: float

    def __post_init__(self) -> None:
        _require_utc("Collection.ts", self.ts)
        _require_utc("Collection.before_ts", self.before_ts)
        if self.before_ts > self.ts:
            raise ValueError("Collection.before_ts must not be after ts")
        if not self.fill_before_pct > self.fill_after_pct:
            raise ValueError("a collection must lower the fill level")


@dataclass(frozen=True, slots=True)
class BinFit:
    """What one bin's history says about its filling, ready for :func:`forecast_fill`."""

    rate_pct_per_h: float
    """Mean rise per hour over a week (the pattern averages 1)."""
    rate_se_pct_per_h: float
    pattern: FillPattern
    noise_pct: float
    """Standard deviation of one reading around the true level."""
    rise_sd_pct_per_24h: float
    """Spread of 24-hour rises the rate and pattern do not explain (day-to-day usage)."""
    history_h: float
    """Hours of usable history behind the rate (0: nothing learned from this bin itself)."""
    fill_now_pct: float
    """Estimated level at ``last_ts``, from the recent readings projected forward."""
    fill_now_sd_pct: float
    last_ts: datetime
    collections: tuple[Collection, ...] = ()
    stuck_since: datetime | None = None
    source: FitSource = "own"
    overflow_cap_pct: float = OVERFLOW_CAP_PCT
    """Highest level this bin shows: the plateau it read when overflowing, else the default."""
    overflow_plateau_seen: bool = False
    """``overflow_cap_pct`` was read from this bin; otherwise the plateau could be anywhere from
    full (100 %) to the default cap, and the interval says so."""

    def __post_init__(self) -> None:
        if not 0 < self.overflow_cap_pct <= OVERFLOW_CAP_PCT:
            raise ValueError(
                f"BinFit.overflow_cap_pct must be in (0, {OVERFLOW_CAP_PCT}], "
                f"got {self.overflow_cap_pct!r}"
            )
        for name in (
            "rate_pct_per_h",
            "rate_se_pct_per_h",
            "rise_sd_pct_per_24h",
            "history_h",
            "fill_now_sd_pct",
        ):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"BinFit.{name} must be finite and >= 0, got {value!r}")
        if not (math.isfinite(self.noise_pct) and self.noise_pct > 0):
            raise ValueError(f"BinFit.noise_pct must be positive, got {self.noise_pct!r}")
        if not math.isfinite(self.fill_now_pct):
            raise ValueError("BinFit.fill_now_pct must be finite")
        _require_utc("BinFit.last_ts", self.last_ts)
        if self.stuck_since is not None:
            _require_utc("BinFit.stuck_since", self.stuck_since)
        if any(a.ts > b.ts for a, b in zip(self.collections, self.collections[1:], strict=False)):
            raise ValueError("BinFit.collections must be in time order")

    @property
    def stuck(self) -> bool:
        """The sensor has repeated a flat value for days: do not trust its level blindly."""
        return self.stuck_since is not None


@dataclass(frozen=True, slots=True)
class PeerPool:
    """What similar bins say about a bin that has little history of its own."""

    rate_pct_per_h: float
    rate_spread_pct_per_h: float
    """How far one bin's rate typically sits from the peers' median."""
    pattern: FillPattern
    rise_sd_pct_per_24h: float
    peer_count: int

    def __post_init__(self) -> None:
        for name in ("rate_pct_per_h", "rate_spread_pct_per_h", "rise_sd_pct_per_24h"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"PeerPool.{name} must be finite and >= 0, got {value!r}")
        if self.peer_count < 1:
            raise ValueError("PeerPool needs at least one peer")


def _require_utc(name: str, ts: datetime) -> None:
    if ts.tzinfo is None or ts.utcoffset() != timedelta(0):
        raise ValueError(f"{name} must be a UTC datetime, got {ts!r}")


def _as_utc(name: str, ts: datetime) -> datetime:
    if ts.tzinfo is None:
        raise ValueError(f"{name} must be timezone-aware, got {ts!r}")
    return ts.astimezone(UTC)


def _epoch_s(ts: npt.ArrayLike) -> FloatArray:
    arr = np.asarray(ts)
    if not np.issubdtype(arr.dtype, np.datetime64):
        raise TypeError(f"timestamps must be numpy datetime64 in UTC, got dtype {arr.dtype}")
    micros = arr.astype("datetime64[us]").astype(np.int64)
    result: FloatArray = micros.astype(np.float64) / 1e6
    return result


def _to_datetime(epoch_s: float) -> datetime:
    return datetime.fromtimestamp(round(epoch_s, 6), tz=UTC)


def _robust_sd(values: FloatArray) -> float:
    if values.size == 0:
        return 0.0
    return float(1.4826 * np.median(np.abs(values - np.median(values))))


def _noise_pct(fill: FloatArray) -> float:
    """Reading noise from successive differences: the fill trend over one interval is tiny."""
    if fill.size < 3:
        return 1.5 if fill.size < 2 else max(abs(float(fill[1] - fill[0])), _MIN_NOISE_PCT)
    diffs = np.diff(fill)
    diffs = diffs[diffs != 0] if np.count_nonzero(diffs) > diffs.size // 2 else diffs
    return max(float(1.4826 * np.median(np.abs(diffs))) / math.sqrt(2), _MIN_NOISE_PCT)


def _echoes(fill: FloatArray, noise_pct: float, settings: FitSettings) -> BoolArray:
    """Hampel filter: far from the median of the seven readings around it.

    A median of seven keeps a collection's step in place (the low readings after a step
    outnumber the high ones from the reading after the step on), so only isolated readings, or
    pairs, are flagged. Mirror padding keeps a stray last reading from voting for itself.
    """
    if fill.size < 4:
        return np.zeros(fill.size, dtype=np.bool_)
    local = ndimage.median_filter(fill, size=7, mode="mirror")
    limit = max(settings.outlier_min_pct, settings.outlier_noise_k * noise_pct)
    flagged: BoolArray = np.abs(fill - local) > limit
    return flagged


def _flat_runs(
    t_h: FloatArray, fill: FloatArray, settings: FitSettings
) -> tuple[BoolArray, int | None]:
    """Readings in long flat runs, and the start index of a flat run reaching the last reading
    that lasts ``stuck_after_h`` (a stuck sensor), if any."""
    n = fill.size
    flat = np.zeros(n, dtype=np.bool_)
    stuck_start: int | None = None
    if n < 3:
        return flat, stuck_start
    near = np.abs(np.diff(fill)) <= settings.flat_tolerance_pct
    # Candidate stretches: consecutive readings each within tolerance of the one before. Only
    # stretches long enough to matter get the exact (range within tolerance) scan.
    edges = np.flatnonzero(np.diff(np.concatenate(([0], near.astype(np.int8), [0]))))
    for start, stop in zip(edges[::2], edges[1::2], strict=True):
        first, last = int(start), int(stop)  # readings first..last inclusive
        if t_h[last] - t_h[first] < settings.flat_ignore_after_h:
            continue
        i = first
        while i < last:
            low = high = fill[i]
            j = i
            while j + 1 <= last:
                v = fill[j + 1]
                lo2, hi2 = min(low, v), max(high, v)
                if hi2 - lo2 > settings.flat_tolerance_pct:
                    break
                low, high, j = lo2, hi2, j + 1
            if t_h[j] - t_h[i] >= settings.flat_ignore_after_h:
                flat[i + 1 : j + 1] = True  # the run's first reading was still live
                if j == n - 1 and t_h[j] - t_h[i] >= settings.stuck_after_h:
                    stuck_start = i
            i = j + 1
    return flat, stuck_start


def _detect(
    t_h: FloatArray, fill: FloatArray, settings: FitSettings
) -> list[tuple[int, float, float]]:
    """Collections as (index of the first low reading, level before, level after)."""
    if fill.size < 2:
        return []
    smooth = ndimage.median_filter(fill, size=5, mode="mirror")
    step = smooth[:-1] - smooth[1:]
    candidates = np.flatnonzero(step >= settings.collection_drop_pct / 2) + 1
    window = settings.collection_window_h
    found: list[tuple[int, float, float]] = []
    for i in candidates:
        # At least the readings either side, should a gap be longer than the window.
        lo = min(int(np.searchsorted(t_h, t_h[i] - window, side="left")), i - 1)
        hi = max(int(np.searchsorted(t_h, t_h[i] + window, side="left")), i + 1)
        before = float(np.median(fill[lo:i]))
        after = float(np.median(fill[i:hi]))
        if before - after < settings.collection_drop_pct:
            continue
        if found and t_h[i] - t_h[found[-1][0]] < settings.collection_merge_h:
            if before - after > found[-1][1] - found[-1][2]:
                found[-1] = (int(i), before, after)
            continue
        found.append((int(i), before, after))
    return found


def _clean(ts: npt.ArrayLike, fill_pct: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    t_s = _epoch_s(ts)
    fill = np.asarray(fill_pct, dtype=np.float64)
    if t_s.shape != fill.shape or t_s.ndim != 1:
        raise ValueError(f"ts and fill_pct must be 1-D and equal length: {t_s.shape}, {fill.shape}")
    keep = np.isfinite(fill)
    t_s, fill = t_s[keep], fill[keep]
    order = np.argsort(t_s, kind="stable")
    return t_s[order], fill[order]


def detect_collections(
    ts: npt.ArrayLike, fill_pct: npt.ArrayLike, *, settings: FitSettings = DEFAULT_FIT_SETTINGS
) -> list[Collection]:
    """Collections (sharp, lasting drops) in one bin's readings, oldest first.

    ``ts`` is numpy ``datetime64`` in UTC. Echo readings are removed first, so a single 0 %
    reading is not a collection; a collection at the very last reading is confirmed by the next.
    """
    t_s, fill = _clean(ts, fill_pct)
    noise = _noise_pct(fill)
    live = ~_echoes(fill, noise, settings)
    t_s, fill = t_s[live], fill[live]
    return [
        Collection(_to_datetime(t_s[i]), _to_datetime(t_s[i - 1]), before, after)
        for i, before, after in _detect(t_s / 3600.0, fill, settings)
    ]


def _cell_exposure(t_h: FloatArray) -> FloatArray:
    """Hours spent in each hour-of-week cell from the reference Monday to each instant."""
    hours = t_h + _MONDAY_OFFSET_H
    weeks = np.floor(hours / _WEEK_H)
    within = hours - weeks * _WEEK_H
    cell = np.minimum(np.floor(within).astype(np.intp), _WEEK_H - 1)
    cells = np.arange(_WEEK_H)
    exposure: FloatArray = weeks[:, None] + (cells[None, :] < cell[:, None]).astype(np.float64)
    exposure[np.arange(t_h.size), cell] += within - cell
    return exposure


def _huber_gauss_newton(
    residuals: Callable[[FloatArray], FloatArray],
    jacobian: Callable[[FloatArray], FloatArray],
    x0: FloatArray,
    *,
    data_rows: int,
    huber_k: float = _HUBER_K,
    max_iterations: int = 40,
) -> FloatArray:
    """Levenberg-Marquardt on Huber-reweighted residuals (the first ``data_rows``; prior rows
    stay quadratic so the shrinkage does not weaken for large factors).

    Normal equations on a few dozen parameters: a fraction of a millisecond per step, where a
    general trust-region solver's SVD of the full Jacobian costs far more on a busy machine.
    """

    def weights(r: FloatArray) -> FloatArray:
        w = np.ones_like(r)
        a = np.abs(r[:data_rows])
        w[:data_rows] = np.where(a <= huber_k, 1.0, huber_k / np.maximum(a, 1e-12))
        return w

    def cost(r: FloatArray) -> float:
        a = np.abs(r[:data_rows])
        data = np.where(a <= huber_k, 0.5 * a**2, huber_k * a - 0.5 * huber_k**2)
        return float(data.sum() + 0.5 * np.sum(r[data_rows:] ** 2))

    x = x0.copy()
    r = residuals(x)
    current = cost(r)
    damping = 1e-3
    for _ in range(max_iterations):
        jac = jacobian(x)
        w = weights(r)
        normal = jac.T @ (w[:, None] * jac)
        gradient = jac.T @ (w * r)
        improved = False
        for _ in range(10):
            lhs = normal + damping * np.diag(np.diag(normal) + 1e-9)
            step = np.linalg.solve(lhs, -gradient)
            trial = x + step
            trial_r = residuals(trial)
            trial_cost = cost(trial_r)
            if trial_cost <= current:
                improved = True
                break
            damping *= 4.0
        if not improved:
            break
        gain = current - trial_cost
        x, r, current = trial, trial_r, trial_cost
        damping = max(damping / 3.0, 1e-9)
        if gain <= 1e-8 * max(current, 1.0) or float(np.max(np.abs(step))) < 1e-7:
            break
    return x


def _fit_pattern(
    t_h: FloatArray,
    fill: FloatArray,
    segment: IntArray,
    segment_start_h: FloatArray,
    noise_pct: float,
    hourly: bool,
    prior: FillPattern,
    settings: FitSettings,
) -> FillPattern:
    """Weekday (and hour) factors by Huber least squares, one intercept per segment.

    The parameters are log deviations from ``prior``, shrunk toward it; without hour factors
    the prior's are kept.

    Readings are first averaged per segment and clock hour: the same information in fewer rows,
    and independent of how often the sensor reports.
    """
    hour_index = np.floor(t_h).astype(np.int64)
    key = segment.astype(np.int64) * (int(hour_index.max() - hour_index.min()) + 1) + (
        hour_index - hour_index.min()
    )
    _, group, counts = np.unique(key, return_inverse=True, return_counts=True)
    mean_fill = np.bincount(group, weights=fill) / counts
    mean_t = np.bincount(group, weights=t_h) / counts
    group_segment = np.bincount(group, weights=segment) / counts
    seg_ids, seg_of_row = np.unique(np.rint(group_segment).astype(np.intp), return_inverse=True)
    n_seg = seg_ids.size
    exposure = _cell_exposure(mean_t) - _cell_exposure(segment_start_h[seg_ids][seg_of_row])
    weight = np.sqrt(counts) / noise_pct
    rows = mean_fill.size
    n_hour = 24 if hourly else 0
    n_par = 1 + 7 + n_hour + n_seg

    span = float(exposure.sum(axis=1).max())
    start_rate = max(float(np.ptp(mean_fill)) / max(span, 1.0), 1e-3)
    x0 = np.zeros(n_par)
    x0[0] = math.log(start_rate)
    for k in range(n_seg):
        rows_k = seg_of_row == k
        x0[1 + 7 + n_hour + k] = float(
            np.median(mean_fill[rows_k] - start_rate * exposure[rows_k].sum(axis=1))
        )

    seg_onehot = np.zeros((rows, n_seg))
    seg_onehot[np.arange(rows), seg_of_row] = 1.0
    prior_rows = 7 + 2 * n_hour
    prior_jac = np.zeros((prior_rows, n_par))
    prior_jac[np.arange(7), 1 + np.arange(7)] = 1.0 / settings.weekday_prior_sd
    if hourly:
        hours = np.arange(24)
        prior_jac[7 + hours, 8 + hours] = 1.0 / settings.hour_prior_sd
        prior_jac[7 + 24 + hours, 8 + (hours + 1) % 24] += 1.0 / settings.hour_smooth_sd
        prior_jac[7 + 24 + hours, 8 + hours] -= 1.0 / settings.hour_smooth_sd

    prior_log_w = np.log(np.asarray(prior.weekday_factor))
    prior_log_h = np.log(np.asarray(prior.hour_factor))

    def cells(x: FloatArray) -> tuple[float, FloatArray, FloatArray]:
        log_h = prior_log_h + x[8 : 8 + n_hour] if hourly else prior_log_h
        return math.exp(x[0]), np.exp(prior_log_w + x[1:8]), np.exp(log_h)

    def residuals(x: FloatArray) -> FloatArray:
        rate, w, h = cells(x)
        predicted = x[8 + n_hour :][seg_of_row] + rate * (exposure @ np.outer(w, h).ravel())
        return np.concatenate((weight * (predicted - mean_fill), prior_jac[:, 1:] @ x[1:]))

    def jacobian(x: FloatArray) -> FloatArray:
        rate, w, h = cells(x)
        weighted = (exposure * np.outer(w, h).ravel()).reshape(rows, 7, 24)
        data_jac = np.empty((rows, n_par))
        data_jac[:, 0] = rate * weighted.sum(axis=(1, 2))
        data_jac[:, 1:8] = rate * weighted.sum(axis=2)
        if hourly:
            data_jac[:, 8 : 8 + n_hour] = rate * weighted.sum(axis=1)
        data_jac[:, 8 + n_hour :] = seg_onehot
        return np.vstack((weight[:, None] * data_jac, prior_jac))

    solution = _huber_gauss_newton(residuals, jacobian, x0, data_rows=rows)
    _, w, h = cells(solution)
    return FillPattern.normalised(w.tolist(), h.tolist())


def _segment_rate(clock: FloatArray, fill: FloatArray, noise_pct: float) -> tuple[float, float]:
    """Theil-Sen slope of fill on the pattern clock, with a standard error."""
    if clock.size > _THEIL_SEN_MAX_POINTS:
        pick = np.linspace(0, clock.size - 1, _THEIL_SEN_MAX_POINTS).round().astype(np.intp)
        clock, fill = clock[pick], fill[pick]
    result = stats.theilslopes(fill, clock, alpha=0.95)
    se = (float(result.high_slope) - float(result.low_slope)) / (2 * 1.96)
    # Least-squares slope error as a floor: Theil-Sen's interval collapses on tied slopes.
    spread = float(np.sqrt(np.sum((clock - clock.mean()) ** 2)))
    floor = noise_pct / spread if spread > 0 else math.inf
    return float(result.slope), max(se, floor)


def _combine_rates(rates: FloatArray, ses: FloatArray) -> tuple[float, float]:
    """DerSimonian-Laird random-effects mean: segments that disagree widen the error."""
    weights = 1.0 / ses**2
    mean = float(np.sum(weights * rates) / np.sum(weights))
    if rates.size > 1:
        q = float(np.sum(weights * (rates - mean) ** 2))
        scale = float(np.sum(weights) - np.sum(weights**2) / np.sum(weights))
        between = max(0.0, (q - (rates.size - 1)) / scale) if scale > 0 else 0.0
        weights = 1.0 / (ses**2 + between)
        mean = float(np.sum(weights * rates) / np.sum(weights))
    return mean, float(math.sqrt(1.0 / np.sum(weights)))


def fit_bin(
    ts: npt.ArrayLike,
    fill_pct: npt.ArrayLike,
    *,
    settings: FitSettings = DEFAULT_FIT_SETTINGS,
    pattern: FillPattern | None = None,
    prior_pattern: FillPattern | None = None,
) -> BinFit:
    """Fit one bin's fill rate, weekly pattern and current level from its readings.

    ``ts`` is numpy ``datetime64`` (UTC, any order), ``fill_pct`` the readings (NaN ignored).
    With ``pattern`` given (for instance pooled from peers), only the rate is fitted; otherwise
    the pattern is fitted, shrunk toward ``prior_pattern`` (flat by default; the pattern pooled
    over the bin's stream is better: a fast bin that overflows by Friday never shows its
    weekend, and its peers' weekend is a better guess than an average day).

    Raises
    ------
    ValueError
        No finite readings, or arrays of different shapes.
    """
    t_s, raw_fill = _clean(ts, fill_pct)
    if raw_fill.size == 0:
        raise ValueError("fit_bin needs at least one finite reading")
    noise = _noise_pct(raw_fill)
    live = ~_echoes(raw_fill, noise, settings)
    t_s, fill = t_s[live], raw_fill[live]
    t_h = t_s / 3600.0
    n = fill.size
    flat, stuck_start = _flat_runs(t_h, fill, settings)
    drops = _detect(t_h, fill, settings)
    collections = tuple(
        Collection(_to_datetime(t_s[i]), _to_datetime(t_s[i - 1]), before, after)
        for i, before, after in drops
    )
    bounds = [0, *(i for i, _, _ in drops), n]
    segment = np.zeros(n, dtype=np.intp)
    for k, (a, b) in enumerate(itertools.pairwise(bounds)):
        segment[a:b] = k
    segment_start_h = t_h[np.asarray(bounds[:-1], dtype=np.intp)]
    usable = ~flat & (fill < settings.saturation_pct)

    # Segments long enough to show a rate.
    long_segments = [
        k
        for k in range(len(bounds) - 1)
        if np.count_nonzero(usable & (segment == k)) >= 4
        and float(np.ptp(t_h[usable & (segment == k)])) >= settings.min_segment_h
    ]
    history_h = sum(float(np.ptp(t_h[usable & (segment == k)])) for k in long_segments)
    in_long = usable & np.isin(segment, long_segments)

    if pattern is None:
        if long_segments:
            pattern = _fit_pattern(
                t_h[in_long],
                fill[in_long],
                segment[in_long],
                segment_start_h,
                noise,
                hourly=history_h >= settings.hourly_min_history_h,
                prior=prior_pattern or FLAT_PATTERN,
                settings=settings,
            )
        else:
            pattern = prior_pattern or FLAT_PATTERN

    clock = pattern.clock_h(t_s)
    rate, rate_se = 0.0, 0.0
    rise_sd = 0.0
    if long_segments:
        estimates = [
            _segment_rate(clock[usable & (segment == k)], fill[usable & (segment == k)], noise)
            for k in long_segments
        ]
        rate, rate_se = _combine_rates(
            np.array([e[0] for e in estimates]), np.array([e[1] for e in estimates])
        )
        rate = max(rate, 0.0)  # fill only falls at collections
        # Less than a week of history averages over fewer days: the floor grows accordingly.
        weeks_seen = min(history_h / _WEEK_H, 1.0)
        rate_se = max(rate_se, settings.min_rate_rel_se * rate / math.sqrt(weeks_seen))
        rise_sd = _unexplained_rise_sd(t_h, fill, clock, segment, in_long, rate, noise, settings)

    cap, plateau_seen = _overflow_cap(fill[~flat], noise, settings)
    level, level_sd = _level_now(t_h, fill, clock, segment, rate, rate_se, noise, settings)
    return BinFit(
        rate_pct_per_h=rate,
        rate_se_pct_per_h=rate_se,
        pattern=pattern,
        noise_pct=noise,
        rise_sd_pct_per_24h=rise_sd,
        history_h=history_h,
        fill_now_pct=min(level, cap),
        fill_now_sd_pct=level_sd,
        last_ts=_to_datetime(t_s[-1]),
        collections=collections,
        stuck_since=None if stuck_start is None else _to_datetime(t_s[stuck_start]),
        overflow_cap_pct=cap,
        overflow_plateau_seen=plateau_seen,
    )


def _overflow_cap(fill: FloatArray, noise_pct: float, settings: FitSettings) -> tuple[float, bool]:
    """The level an overflowing bin plateaus at, if its history shows one.

    Waste heaped above the rim stops rising at some level that depends on the bin and the
    sensor's mounting; the readings near the top of the saturated ones are that plateau.
    """
    saturated = fill[fill >= settings.saturation_pct]
    if saturated.size < _MIN_PLATEAU_READINGS:
        return OVERFLOW_CAP_PCT, False
    top = saturated[saturated >= saturated.max() - 4 * noise_pct]
    return float(np.clip(np.median(top), settings.saturation_pct, OVERFLOW_CAP_PCT)), True


def _unexplained_rise_sd(
    t_h: FloatArray,
    fill: FloatArray,
    clock: FloatArray,
    segment: IntArray,
    use: BoolArray,
    rate: float,
    noise_pct: float,
    settings: FitSettings,
) -> float:
    """Spread of 24-hour rises the fit does not explain, as it would be on a day not yet seen.

    Two corrections make it honest (without them a 90 % interval covered about two thirds of
    next-day levels of bins whose filling varies 10 % from day to day):

    * Residuals are averaged over blocks of ``rise_block_h`` before their 24-hour changes are
      taken. From single readings the change is mostly reading noise, and what is left after
      subtracting the noise is a small difference of two large, uncertain numbers.
    * The weekday factors were fitted to the very days whose residuals are measured, so they
      have absorbed part of each day's variation: with k days of a weekday seen, a day's
      in-sample residual is about (1 - h) of its error on a new day, h = 1 / (k + shrinkage).
      Each change is scaled up by 1 / (1 - h), a leave-one-out (PRESS) residual.
    """
    t, y, c, seg = t_h[use], fill[use], clock[use], segment[use]
    if t.size == 0:
        return 0.0
    residual = y - rate * c
    block = np.floor(t / settings.rise_block_h).astype(np.int64)
    key = seg.astype(np.int64) * (int(block.max() - block.min()) + 1) + (block - block.min())
    keys, group, counts = np.unique(key, return_inverse=True, return_counts=True)
    mean_residual = np.bincount(group, weights=residual) / counts
    mean_t = np.bincount(group, weights=t) / counts
    steps = round(24.0 / settings.rise_block_h)
    later = np.searchsorted(keys, keys + steps)
    ok = later < keys.size
    idx = np.flatnonzero(ok)
    later = later[ok]
    ok = (keys[later] == keys[idx] + steps) & (counts[idx] >= 2) & (counts[later] >= 2)
    if np.count_nonzero(ok) < 4:
        return 0.0
    first, second = idx[ok], later[ok]
    change = mean_residual[second] - mean_residual[first]
    noise_var = noise_pct**2 * (1.0 / counts[first] + 1.0 / counts[second])
    # Days of each weekday seen (local to the fit: UTC weekdays, as the pattern's clock).
    day = np.floor((t + _MONDAY_OFFSET_H) / 24.0).astype(np.int64)
    seen = np.bincount(np.unique(day) % 7, minlength=7)
    later_day = np.floor((mean_t[second] + _MONDAY_OFFSET_H) / 24.0).astype(np.int64) % 7
    leverage = 1.0 / (seen[later_day] + settings.weekday_shrinkage_days)
    # Conformal-style: the 90 % quantile of the bin's own unexplained 24-hour changes, as the
    # sd a normal distribution would need to reach it. Day-to-day variation has heavier tails
    # than a normal one, and a median-based sd (what this was before) sets the interval's
    # middle, not its edge.
    scaled = np.abs(change) / (1.0 - leverage)
    edge = float(np.quantile(scaled, 0.9))
    excess = (edge / INTERVAL_Z_90) ** 2 - float(np.mean(noise_var))
    return math.sqrt(excess) if excess > 0 else 0.0


def _level_now(
    t_h: FloatArray,
    fill: FloatArray,
    clock: FloatArray,
    segment: IntArray,
    rate: float,
    rate_se: float,
    noise_pct: float,
    settings: FitSettings,
) -> tuple[float, float]:
    """Recent readings since the last collection, each carried forward to the last reading by
    the fitted rate; their median is the level now. Smooths the sensor without lagging it."""
    last = t_h.size - 1
    recent = (segment == segment[last]) & (t_h >= t_h[last] - settings.level_window_h)
    ahead = clock[last] - clock[recent]
    projected = fill[recent] + rate * ahead
    level = min(float(np.median(projected)), OVERFLOW_CAP_PCT)
    count = projected.size
    # A median of n normal readings has about 1.25 / sqrt(n) of one reading's spread.
    level_sd = math.hypot(1.2533 * noise_pct / math.sqrt(count), rate_se * float(ahead.mean()))
    return level, level_sd


def pool_peers(
    peers: Sequence[BinFit], *, settings: FitSettings = DEFAULT_FIT_SETTINGS
) -> PeerPool | None:
    """Pool similar bins with enough history of their own (stuck sensors left out).

    Median rate, geometric-mean pattern, and the peers' spread of rates (at least
    ``peer_spread_floor`` of the median) as the uncertainty for a bin that joins them.
    """
    usable = [p for p in peers if p.history_h >= settings.cold_start_below_h and not p.stuck]
    if not usable:
        return None
    rates = np.array([p.rate_pct_per_h for p in usable])
    median_rate = float(np.median(rates))
    spread = max(_robust_sd(rates), settings.peer_spread_floor * median_rate)
    weekday = np.exp(np.mean([np.log(p.pattern.weekday_factor) for p in usable], axis=0))
    hour = np.exp(np.mean([np.log(p.pattern.hour_factor) for p in usable], axis=0))
    return PeerPool(
        rate_pct_per_h=median_rate,
        rate_spread_pct_per_h=spread,
        pattern=FillPattern.normalised(weekday.tolist(), hour.tolist()),
        rise_sd_pct_per_24h=float(np.median([p.rise_sd_pct_per_24h for p in usable])),
        peer_count=len(usable),
    )


def cold_start(
    ts: npt.ArrayLike,
    fill_pct: npt.ArrayLike,
    peers: Sequence[BinFit],
    *,
    settings: FitSettings = DEFAULT_FIT_SETTINGS,
) -> BinFit:
    """Fit a bin with little history by borrowing from similar bins.

    The bin's own rate is fitted on the peers' pattern (a day or two cannot show a weekly
    pattern, and without one the hours seen bias the rate), then blended with the peers' median
    rate by precision: the more history the bin has, the more its own rate counts. Without
    usable peers this is :func:`fit_bin`.
    """
    pool = pool_peers(peers, settings=settings)
    if pool is None:
        return fit_bin(ts, fill_pct, settings=settings)
    own = fit_bin(ts, fill_pct, settings=settings, pattern=pool.pattern)
    peer_var = pool.rate_spread_pct_per_h**2
    source: FitSource
    if own.history_h <= 0 or peer_var == 0:
        rate, rate_se, source = pool.rate_pct_per_h, pool.rate_spread_pct_per_h, "peers"
    else:
        own_var = max(own.rate_se_pct_per_h, 1e-9) ** 2
        precision = 1.0 / own_var + 1.0 / peer_var
        rate = (own.rate_pct_per_h / own_var + pool.rate_pct_per_h / peer_var) / precision
        rate_se, source = math.sqrt(1.0 / precision), "blended"
    return replace(
        own,
        rate_pct_per_h=max(rate, 0.0),
        rate_se_pct_per_h=rate_se,
        rise_sd_pct_per_24h=max(own.rise_sd_pct_per_24h, pool.rise_sd_pct_per_24h),
        source=source,
    )


def _forecast_arrays(
    fit: BinFit,
    last_fill: float,
    last_ts: datetime,
    at_s: FloatArray,
    level_sd_pct: float,
    interval_z: float,
    cap_pct: float | None,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    last_s = last_ts.timestamp()
    pattern_h = fit.pattern.clock_h(at_s) - fit.pattern.clock_h(np.array([last_s]))
    hours = (at_s - last_s) / 3600.0
    mean = last_fill + fit.rate_pct_per_h * pattern_h
    sd = np.sqrt(
        level_sd_pct**2
        + (fit.rate_se_pct_per_h * pattern_h) ** 2
        + fit.rise_sd_pct_per_24h**2 * hours / 24.0
    )
    cap = fit.overflow_cap_pct if cap_pct is None else cap_pct
    # The plateau itself is only known to about the level's uncertainty.
    cap_band = interval_z * level_sd_pct
    cap_low = cap - cap_band if fit.overflow_plateau_seen else min(_FULL_PCT, cap - cap_band)
    lo = np.clip(np.minimum(mean - interval_z * sd, cap_low), 0.0, cap)
    hi = np.clip(np.minimum(mean + interval_z * sd, cap + cap_band), 0.0, OVERFLOW_CAP_PCT)
    return np.clip(mean, 0.0, cap), lo, hi


def forecast_fill(
    fit: BinFit,
    last_fill: float,
    last_ts: datetime,
    at: datetime,
    *,
    level_sd_pct: float | None = None,
    interval_z: float = INTERVAL_Z_90,
    cap_pct: float | None = None,
) -> tuple[float, float, float]:
    """Fill expected at ``at`` if nobody empties the bin first, with a prediction interval.

    ``last_fill`` is the level at ``last_ts`` (normally ``fit.fill_now_pct`` and
    ``fit.last_ts``); ``level_sd_pct`` is its uncertainty, by default ``fit.fill_now_sd_pct``
    (pass ``fit.noise_pct`` for a single raw reading). Returns ``(fill_pct, lo, hi)``; the fill
    is capped at ``cap_pct`` (by default the bin's own overflow plateau,
    ``fit.overflow_cap_pct``); the interval is two-sided at ``interval_z`` (90 % by default).

    Raises
    ------
    ValueError
        ``at`` before ``last_ts``, naive datetimes, or a non-finite level.
    """
    last_ts, at = _as_utc("last_ts", last_ts), _as_utc("at", at)
    if at < last_ts:
        raise ValueError(f"at ({at.isoformat()}) is before last_ts ({last_ts.isoformat()})")
    if not math.isfinite(last_fill):
        raise ValueError("last_fill must be finite")
    sd = fit.fill_now_sd_pct if level_sd_pct is None else level_sd_pct
    mean, lo, hi = _forecast_arrays(
        fit, last_fill, last_ts, np.array([at.timestamp()]), sd, interval_z, cap_pct
    )
    return float(mean[0]), float(lo[0]), float(hi[0])


def _first_crossing(at_s: FloatArray, values: FloatArray, threshold: float) -> datetime | None:
    above = np.flatnonzero(values >= threshold)
    if above.size == 0:
        return None
    i = int(above[0])
    if i == 0:
        return _to_datetime(float(at_s[0]))
    # Linear between grid points: the pattern is piecewise linear within an hour.
    v0, v1 = float(values[i - 1]), float(values[i])
    frac = (threshold - v0) / (v1 - v0) if v1 > v0 else 1.0
    return _to_datetime(float(at_s[i - 1] + frac * (at_s[i] - at_s[i - 1])))


def forecast_full_time(
    fit: BinFit,
    last_fill: float,
    last_ts: datetime,
    threshold_pct: float,
    *,
    horizon: timedelta = timedelta(days=28),
    level_sd_pct: float | None = None,
    interval_z: float = INTERVAL_Z_90,
) -> tuple[datetime | None, datetime | None, datetime | None]:
    """When the bin is forecast to reach ``threshold_pct`` ("forecast full", as LwM2M 3435 and
    FIWARE WasteContainer expose it): ``(expected, earliest, latest)``.

    ``earliest`` is when the interval's upper edge reaches the threshold, ``latest`` its lower
    edge. Each is None if not reached within ``horizon``; ``last_ts`` if already there.
    """
    if not 0 < threshold_pct <= OVERFLOW_CAP_PCT:
        raise ValueError(f"threshold_pct must be in (0, {OVERFLOW_CAP_PCT}], got {threshold_pct}")
    last_ts = _as_utc("last_ts", last_ts)
    steps = int(horizon.total_seconds() / 3600.0 / _FULL_TIME_STEP_H) + 1
    at_s = last_ts.timestamp() + np.arange(steps, dtype=np.float64) * (_FULL_TIME_STEP_H * 3600.0)
    sd = fit.fill_now_sd_pct if level_sd_pct is None else level_sd_pct
    mean, lo, hi = _forecast_arrays(fit, last_fill, last_ts, at_s, sd, interval_z, None)
    return (
        _first_crossing(at_s, mean, threshold_pct),
        _first_crossing(at_s, hi, threshold_pct),
        _first_crossing(at_s, lo, threshold_pct),
    )


class FillSeries(Protocol):
    """One bin's readings and what makes bins similar (``forecast.bins.BinHistory`` is one)."""

    @property
    def device_id(self) -> str: ...
    @property
    def waste_stream(self) -> str: ...
    @property
    def patch(self) -> str | None: ...
    @property
    def ts(self) -> npt.NDArray[np.datetime64]: ...
    @property
    def fill_pct(self) -> FloatArray: ...


def fit_bins(
    series: Sequence[FillSeries], *, settings: FitSettings = DEFAULT_FIT_SETTINGS
) -> dict[str, BinFit]:
    """Fit a fleet of bins, each helped by the others. Bins without readings are left out.

    1. Fit every bin on its own.
    2. Pool each waste stream's pattern over its bins with enough history, and refit those bins
       shrunk toward it (a bin's gaps, such as a weekend it is always full by, take the
       stream's shape instead of a flat one).
    3. Cold-start the bins with little history from their peers: same stream and patch, or the
       whole stream when the patch has fewer than ``min_patch_peers``.
    """
    first: dict[str, BinFit] = {}
    for item in series:
        if np.isfinite(np.asarray(item.fill_pct, dtype=np.float64)).any():
            first[item.device_id] = fit_bin(item.ts, item.fill_pct, settings=settings)
    fitted = [item for item in series if item.device_id in first]
    streams = {item.waste_stream for item in fitted}
    pools = {
        stream: pool_peers(
            [first[i.device_id] for i in fitted if i.waste_stream == stream], settings=settings
        )
        for stream in streams
    }
    fits: dict[str, BinFit] = {}
    thin: list[FillSeries] = []
    for item in fitted:
        own = first[item.device_id]
        pool = pools[item.waste_stream]
        if own.history_h < settings.cold_start_below_h:
            thin.append(item)
        elif pool is None:
            fits[item.device_id] = own
        else:
            fits[item.device_id] = fit_bin(
                item.ts, item.fill_pct, settings=settings, prior_pattern=pool.pattern
            )
    for item in thin:
        stream_peers = [
            (other, fits[other.device_id])
            for other in fitted
            if other.device_id in fits and other.waste_stream == item.waste_stream
        ]
        patch_peers = [fit for other, fit in stream_peers if other.patch == item.patch]
        peers = (
            patch_peers
            if len(patch_peers) >= settings.min_patch_peers
            else [fit for _, fit in stream_peers]
        )
        fits[item.device_id] = cold_start(item.ts, item.fill_pct, peers, settings=settings)
    return fits
