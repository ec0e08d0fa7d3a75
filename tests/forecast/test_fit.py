"""The bin fill forecast on synthetic series whose truth is known."""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from device_sim.models import BinModel
from forecast.fit import (
    OVERFLOW_CAP_PCT,
    BinFit,
    FillPattern,
    FitSettings,
    cold_start,
    detect_collections,
    fit_bin,
    fit_bins,
    forecast_fill,
    forecast_full_time,
)

START = datetime(2025, 10, 6, tzinfo=UTC)  # a Monday
STEP = timedelta(minutes=30)
WEEKDAY = (1.2, 0.9, 0.85, 0.9, 1.0, 1.3, 0.85)  # deliberately uneven, averages 1.0


def as_datetime64(times: list[datetime]) -> np.ndarray:
    return np.array([t.replace(tzinfo=None) for t in times], dtype="datetime64[us]")


@dataclass
class Series:
    ts: np.ndarray
    fill_pct: np.ndarray
    truth_pct: np.ndarray
    collections: list[datetime]


def synthetic(
    *,
    days: float = 28,
    rate_pct_per_h: float = 0.5,
    weekday: tuple[float, ...] = WEEKDAY,
    collect_weekday: int = 2,
    collect_hour: float = 10.0,
    noise_pct: float = 1.5,
    echoes: int = 0,
    seed: int = 1,
    start_fill: float = 20.0,
) -> Series:
    """Linear filling scaled by weekday, emptied weekly, with noise and echo readings."""
    rng = np.random.default_rng(seed)
    times = [START + i * STEP for i in range(int(days * 24 / 0.5))]
    level, truth, collections = start_fill, [], []
    for i, ts in enumerate(times):
        if i:
            level = min(level + rate_pct_per_h * weekday[ts.weekday()] * 0.5, 108.0)
        hour = ts.hour + ts.minute / 60
        if ts.weekday() == collect_weekday and collect_hour <= hour < collect_hour + 0.5:
            level = float(rng.uniform(0, 3))
            collections.append(ts)
        truth.append(level)
    truth_arr = np.array(truth)
    fill = np.round(truth_arr + rng.normal(0, noise_pct, truth_arr.size), 1)
    # Echoes: single 0 % and 100 % readings, and one pair of zeros, away from collections.
    spots = rng.choice(np.arange(10, fill.size - 10), size=echoes, replace=False)
    for n, spot in enumerate(spots):
        fill[spot] = 0.0 if n % 2 == 0 else 100.0
    if echoes:
        fill[spots[0] + 1] = 0.0
    return Series(as_datetime64(times), fill, truth_arr, collections)


def to_datetime(value: np.datetime64) -> datetime:
    return value.astype("datetime64[us]").item().replace(tzinfo=UTC)


def test_collections_found_despite_noise_and_echoes() -> None:
    series = synthetic(echoes=12, seed=3)
    found = detect_collections(series.ts, series.fill_pct)
    assert len(found) == len(series.collections) == 4
    for collection, true_ts in zip(found, series.collections, strict=True):
        assert abs(collection.ts - true_ts) <= timedelta(hours=1)
        assert collection.before_ts < collection.ts
        assert collection.fill_before_pct - collection.fill_after_pct > 30


def test_a_single_zero_echo_is_not_a_collection_but_a_lasting_drop_is() -> None:
    series = synthetic(days=5, collect_weekday=6, seed=4)  # no round in these five days
    fill = series.fill_pct.copy()
    fill[100] = 0.0
    assert detect_collections(series.ts, fill) == []
    fill[150:] -= 40.0
    found = detect_collections(series.ts, fill)
    assert [to_datetime(series.ts[150])] == [c.ts for c in found]


def test_an_emptying_at_the_last_readings_waits_for_confirmation() -> None:
    series = synthetic(days=5, collect_weekday=6, seed=12)
    fill = series.fill_pct.copy()
    fill[-2:] = [1.0, 2.0]  # emptied an hour ago, or two echoes
    held = fit_bin(series.ts, fill)
    assert held.collections == ()
    assert held.fill_now_pct > 40
    fill[-3:] = [1.0, 2.0, 1.5]  # a third low reading: emptied
    confirmed = fit_bin(series.ts, fill)
    assert [c.ts for c in confirmed.collections] == [to_datetime(series.ts[-3])]
    assert confirmed.fill_now_pct < 5


def test_rate_and_weekday_pattern_recovered() -> None:
    series = synthetic(echoes=8, seed=5, rate_pct_per_h=0.45)
    fit = fit_bin(series.ts, series.fill_pct)
    assert fit.rate_pct_per_h == pytest.approx(0.45, rel=0.05)
    np.testing.assert_allclose(fit.pattern.weekday_factor, WEEKDAY, atol=0.08)
    assert not fit.stuck
    assert fit.source == "own"
    assert fit.noise_pct == pytest.approx(1.5, rel=0.2)
    assert fit.fill_now_pct == pytest.approx(series.truth_pct[-1], abs=1.5)
    assert len(fit.collections) == 4


def test_weekday_factors_shrink_toward_one_when_history_is_thin() -> None:
    long_fit = fit_bin(*_arrays(synthetic(days=28, seed=6)))
    short_fit = fit_bin(*_arrays(synthetic(days=8, seed=6)))
    long_spread = np.ptp(long_fit.pattern.weekday_factor)
    short_spread = np.ptp(short_fit.pattern.weekday_factor)
    assert short_spread < long_spread
    assert long_spread == pytest.approx(np.ptp(WEEKDAY), abs=0.1)


def test_an_hourly_pattern_is_learned_from_the_simulator() -> None:
    model = BinModel.create("bin-1", "general", random.Random(11))
    times = [START + i * STEP for i in range(28 * 48)]
    fill = [model.reading(t)["fill_pct"] for t in times]
    fit = fit_bin(as_datetime64(times), np.array(fill))
    hours = np.array(fit.pattern.hour_factor)
    # The simulator fills almost nothing at night and most around midday and early evening.
    assert hours[1:5].mean() < 0.5
    assert hours[10:13].mean() > 1.3


def _arrays(series: Series) -> tuple[np.ndarray, np.ndarray]:
    return series.ts, series.fill_pct


def test_stuck_sensor_is_flagged_only_after_days_flat() -> None:
    series = synthetic(days=14, seed=7)
    fill = series.fill_pct.copy()
    fill[-3 * 48 :] = fill[-3 * 48]  # three days repeating one value
    stuck = fit_bin(series.ts, fill)
    assert stuck.stuck
    assert stuck.stuck_since == to_datetime(series.ts[-3 * 48])

    fill = series.fill_pct.copy()
    fill[-24:] = fill[-24]  # half a day: not yet stuck
    assert not fit_bin(series.ts, fill).stuck
    assert not fit_bin(series.ts, series.fill_pct).stuck


def test_flat_stretches_are_left_out_of_the_rate() -> None:
    series = synthetic(days=21, seed=8, rate_pct_per_h=0.4)
    fill = series.fill_pct.copy()
    fill[200:300] = fill[200]  # two days stuck in the middle, then working again
    fit = fit_bin(series.ts, fill)
    assert not fit.stuck
    assert fit.rate_pct_per_h == pytest.approx(0.4, rel=0.08)


def _peer(rate: float, *, history_h: float = 500.0) -> BinFit:
    return BinFit(
        rate_pct_per_h=rate,
        rate_se_pct_per_h=0.01,
        pattern=FillPattern.normalised(WEEKDAY, [1.0] * 24),
        noise_pct=1.5,
        rise_sd_pct_per_24h=1.0,
        history_h=history_h,
        fill_now_pct=40.0,
        fill_now_sd_pct=0.5,
        last_ts=START,
    )


def test_cold_start_borrows_the_peers_rate() -> None:
    # Two readings: nothing to learn a rate from.
    series = synthetic(days=0.05, seed=9)
    fast = cold_start(series.ts, series.fill_pct, [_peer(0.8), _peer(0.9), _peer(1.0)])
    slow = cold_start(series.ts, series.fill_pct, [_peer(0.2), _peer(0.3), _peer(0.25)])
    assert fast.source == slow.source == "peers"
    assert fast.rate_pct_per_h == pytest.approx(0.9)
    assert slow.rate_pct_per_h == pytest.approx(0.25)
    assert fast.pattern.weekday_factor == pytest.approx(WEEKDAY, abs=1e-6)
    # Peers with little history of their own, or a stuck sensor, are no help.
    thin = cold_start(series.ts, series.fill_pct, [_peer(0.9, history_h=10.0)])
    assert thin.source == "own"


def test_cold_start_blends_own_history_with_peers() -> None:
    series = synthetic(days=1.5, seed=10, rate_pct_per_h=0.6)
    peers = [_peer(0.3), _peer(0.32), _peer(0.28)]
    own = fit_bin(series.ts, series.fill_pct)
    blended = cold_start(series.ts, series.fill_pct, peers)
    assert blended.source == "blended"
    assert 0.3 < blended.rate_pct_per_h < 0.6 + 0.05
    assert blended.rate_se_pct_per_h <= max(own.rate_se_pct_per_h, 0.3 * 0.35)


def test_fit_bins_cold_starts_a_new_bin_from_its_stream() -> None:
    @dataclass
    class Item:
        device_id: str
        waste_stream: str
        patch: str | None
        ts: np.ndarray
        fill_pct: np.ndarray

    items = [
        Item(f"b{i}", "general", "north", *_arrays(synthetic(seed=20 + i, rate_pct_per_h=0.5)))
        for i in range(4)
    ]
    new = synthetic(days=1, seed=30, rate_pct_per_h=0.5)
    items.append(Item("new", "general", "north", new.ts[-24:], new.fill_pct[-24:]))
    items.append(Item("empty", "general", "north", new.ts[:2], np.array([np.nan, np.nan])))
    fits = fit_bins(items)
    assert set(fits) == {"b0", "b1", "b2", "b3", "new"}
    assert fits["new"].source in {"peers", "blended"}
    assert fits["b0"].source == "own"
    assert fits["new"].rate_pct_per_h == pytest.approx(0.5, rel=0.25)


def _flat_fit(rate: float, *, rate_se: float = 0.0, level_sd: float = 0.5) -> BinFit:
    return BinFit(
        rate_pct_per_h=rate,
        rate_se_pct_per_h=rate_se,
        pattern=FillPattern(),
        noise_pct=1.5,
        rise_sd_pct_per_24h=0.0,
        history_h=300.0,
        fill_now_pct=50.0,
        fill_now_sd_pct=level_sd,
        last_ts=START,
    )


def test_forecast_fill_follows_the_pattern_and_is_capped() -> None:
    fit = replace(_flat_fit(1.0), pattern=FillPattern.normalised(WEEKDAY, [1.0] * 24))
    fill, lo, hi = forecast_fill(fit, 20.0, START, START + timedelta(days=1))
    assert fill == pytest.approx(20.0 + 24 * WEEKDAY[0])  # a heavy Monday
    assert lo < fill < hi
    fill, _, _ = forecast_fill(fit, 20.0, START + timedelta(days=2), START + timedelta(days=3))
    assert fill == pytest.approx(20.0 + 24 * WEEKDAY[2])
    capped, lo, hi = forecast_fill(fit, 20.0, START, START + timedelta(days=10))
    assert capped == OVERFLOW_CAP_PCT == hi
    assert lo < capped
    with pytest.raises(ValueError, match="before last_ts"):
        forecast_fill(fit, 20.0, START, START - timedelta(hours=1))


def test_forecast_full_time_and_its_interval() -> None:
    fit = _flat_fit(1.0, rate_se=0.05)
    expected, earliest, latest = forecast_full_time(fit, 50.0, START, 80.0)
    assert expected is not None
    assert earliest is not None
    assert latest is not None
    assert abs(expected - (START + timedelta(hours=30))) < timedelta(minutes=5)
    assert earliest < expected < latest
    assert forecast_full_time(fit, 85.0, START, 80.0)[0] == START
    never = forecast_full_time(_flat_fit(0.0), 50.0, START, 80.0, horizon=timedelta(days=7))
    assert never == (None, None, None)


@pytest.mark.parametrize(("day_variation", "bins"), [(0.0, 8), (0.1, 16)])
def test_prediction_interval_covers_the_truth_on_simulated_bins(
    day_variation: float, bins: int
) -> None:
    """Bins from the project's simulator: forecast +24 h from several cuts and check the 90 %
    interval against the noise-free level (a copy of the model with the round switched off).
    With filling that varies 10 % from day to day the interval must widen to match: measured
    in-sample from single readings it covered about two thirds.

    Cuts just after a round are left out: one or two low readings are held as possible echoes
    until confirmed (see the test below), so there the forecast is knowingly still "full".
    """
    covered, errors = [], []
    for seed in range(bins):
        model = BinModel.create(f"bin-{seed}", "general", random.Random(100 + seed))
        model = replace(model, day_variation_sd=day_variation)
        times, fill = [], []
        for cut_day in (10.3, 15.6, 20.9):
            cut = START + timedelta(days=cut_day)
            while not times or times[-1] + STEP < cut:
                ts = START if not times else times[-1] + STEP
                fill.append(model.reading(ts)["fill_pct"])
                times.append(ts)
            shadow = replace(model, rng=random.Random(0), weekly_round=False)
            ts = times[-1]
            while ts < cut + timedelta(hours=24):
                ts += STEP
                shadow.advance(ts)
            truth = shadow.fill_pct
            last = times[-1]
            hour = last.hour + last.minute / 60
            if last.weekday() == model.collection_weekday and 0 <= hour - model.collection_hour < 1:
                continue
            fit = fit_bin(as_datetime64(times), np.array(fill))
            value, lo, hi = forecast_fill(fit, fit.fill_now_pct, fit.last_ts, ts)
            covered.append(lo <= truth <= hi)
            errors.append(abs(value - truth))
    assert len(covered) >= 20
    assert np.mean(covered) >= 0.85
    assert np.mean(errors) < 2.5 + 10 * day_variation  # % of the bin: noise alone is ±1.5


def test_settings_and_values_are_validated() -> None:
    with pytest.raises(ValueError, match="collection_drop_pct"):
        FitSettings(collection_drop_pct=0)
    with pytest.raises(ValueError, match="average 1"):
        FillPattern(weekday_factor=(2.0,) * 7)
    with pytest.raises(ValueError, match="rate_pct_per_h"):
        _flat_fit(-0.1)
    with pytest.raises(ValueError, match="UTC"):
        replace(_flat_fit(1.0), last_ts=datetime(2025, 1, 1))
    with pytest.raises(ValueError, match="at least one"):
        fit_bin(np.array([], dtype="datetime64[us]"), np.array([]))
    with pytest.raises(TypeError, match="datetime64"):
        fit_bin(np.array([1.0, 2.0]), np.array([1.0, 2.0]))
