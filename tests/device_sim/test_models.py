"""The simulated devices behave like the real ones the rules and forecasts are built for."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta

import pytest

from device_sim import BinModel, HomeModel, generate_estate
from device_sim.models import HOURLY_FACTOR, STREAM_FILL_DAYS, season_factor
from device_sim.truth import Episode, HomeTruth
from firmware_contracts import TopicLayout, decode_telemetry

MONDAY = datetime(2026, 11, 16, tzinfo=UTC)


def _series(model, days: float, step_min: int = 15) -> list[tuple[datetime, dict]]:
    steps = int(days * 24 * 60 / step_min)
    return [
        (ts, model.reading(ts))
        for ts in (MONDAY + timedelta(minutes=step_min * i) for i in range(steps))
    ]


def test_bins_fill_by_day_and_are_emptied_by_the_weekly_round() -> None:
    model = BinModel.create("bin-1", "general", random.Random(5))
    series = _series(model, 8)
    fills = [v["fill_pct"] for _, v in series]
    drops = [i for i in range(1, len(fills)) if fills[i - 1] - fills[i] > 20]
    assert drops, "a weekly collection shows as a sharp drop"
    # The crew's round sheet has the collection, within the reporting step before the drop.
    assert len(model.rounds) == len(drops) == 1
    dropped_at = series[drops[0]][0]
    assert dropped_at - timedelta(minutes=15) < model.rounds[0] <= dropped_at
    # It fills mostly by day: compare the true rise over night hours with late morning.
    model.weekly_round = False
    model.advance(MONDAY + timedelta(days=9))
    model.fill_pct = 0.0
    rise = {"night": 0.0, "day": 0.0}
    for ts in (MONDAY + timedelta(days=9, minutes=15 * i) for i in range(96)):
        before = model.fill_pct
        model.advance(ts)
        if ts.hour < 5:
            rise["night"] += model.fill_pct - before
        elif 9 <= ts.hour < 14:
            rise["day"] += model.fill_pct - before
    assert rise["day"] > 5 * rise["night"] > 0


def test_collect_empties_a_bin() -> None:
    model = BinModel.create("bin-2", "recycling", random.Random(1))
    model.weekly_round = False
    model.reading(MONDAY)
    model.reading(MONDAY + timedelta(days=3))
    assert model.fill_pct > 10
    model.collect()
    assert model.fill_pct <= 3


def test_void_homes_run_colder_and_damper_than_occupied_ones() -> None:
    rng = random.Random(2)
    occupied = [HomeModel.create(f"env-{i}", False, rng) for i in range(20)]
    failed = HomeTruth(void=True, episodes=[Episode("void_heating_failed", MONDAY)])
    void = [HomeModel.create(f"env-v{i}", True, rng, truth=failed) for i in range(20)]
    kept = [HomeModel.create(f"env-k{i}", True, rng) for i in range(20)]

    def means(homes: list[HomeModel]) -> tuple[float, float]:
        temps, rhs = [], []
        for home in homes:
            for _, values in _series(home, 3, step_min=60)[24:]:
                temps.append(values["temp_c"])
                rhs.append(values["rh_pct"])
        return sum(temps) / len(temps), sum(rhs) / len(rhs)

    occupied_t, occupied_rh = means(occupied)
    void_t, void_rh = means(void)
    kept_t, _ = means(kept)
    assert void_t < 12 < kept_t < occupied_t  # background heat keeps a void above 12 °C
    assert void_rh > occupied_rh


def test_heating_command_warms_a_void_home() -> None:
    failed = HomeTruth(void=True, episodes=[Episode("void_heating_failed", MONDAY)])
    home = HomeModel.create("env-1", True, random.Random(3), truth=failed)
    _series(home, 2)
    cold = home.temp_c
    home.set_heating(16.0)
    home.reading(MONDAY + timedelta(days=2, hours=6))
    assert home.temp_c > cold + 3


def test_estate_is_deterministic_and_registry_shaped() -> None:
    first, second = generate_estate(50, 20, seed=4), generate_estate(50, 20, seed=4)
    assert first == second
    assert sum(r["kind"] == "bin" for r in first) == 50
    homes = [r for r in first if r["kind"] == "env"]
    assert all(len(r["uprn"]) == 12 and r["patch"] for r in homes)


def test_simulated_readings_satisfy_the_contract() -> None:
    import json

    layout = TopicLayout()
    rng = random.Random(9)
    for model in (BinModel.create("bin-7", "garden", rng), HomeModel.create("env-7", False, rng)):
        for seq, (ts, values) in enumerate(_series(model, 2)):
            doc = {"v": 1, "device_id": model.device_id, "seq": seq, "ts": ts.isoformat(), **values}
            topic = layout.telemetry(model.device_id)
            assert decode_telemetry(topic, json.dumps(doc), now=MONDAY + timedelta(days=3))


def test_fill_times_follow_the_stated_heavy_tailed_model() -> None:
    """Days to fill, drawn over many bins, match each stream's stated mixture: some bins fill
    within a day, most general-waste bins in one to three weeks."""
    for stream, model in STREAM_FILL_DAYS.items():
        rng = random.Random(f"fill-days:{stream}")
        days = [BinModel.create(f"bin-{i}", stream, rng).days_to_fill for i in range(4000)]
        for low, high in ((0.0, 1.0), (1.0, 7.0), (7.0, 21.0), (21.0, 1e9)):
            share = sum(low <= d < high for d in days) / len(days)
            assert share == pytest.approx(model.share_within(low, high), abs=0.025), (
                stream,
                low,
                high,
            )
    general = STREAM_FILL_DAYS["general"]
    assert general.share_within(0.0, 1.0) >= 0.03  # some bins fill in a day
    assert general.share_within(7.0, 21.0) > 0.5  # most in one to three weeks


def test_a_bin_fills_at_its_rate_shaped_by_season() -> None:
    """A week's true rise is the bin's rate times the season's factor; garden waste grows in
    summer and nearly stops in winter."""
    rng = random.Random(12)
    for stream, start in (("general", MONDAY), ("garden", datetime(2026, 6, 1, tzinfo=UTC))):
        model = BinModel.create("bin-r", stream, rng)
        model.weekly_round, model.fill_pct, model.rate_pct_per_day = False, 0.0, 5.0
        model.advance(start)
        model.advance(start + timedelta(days=7))
        season = sum(season_factor(stream, (start + timedelta(days=d)).date()) for d in range(7))
        assert model.fill_pct == pytest.approx(5.0 * season, rel=0.05)
    winter = season_factor("garden", date(2026, 1, 15))
    assert season_factor("garden", date(2026, 6, 15)) > 3 * winter


def _rise_by_utc_hour(model: BinModel, monday: datetime) -> list[float]:
    rise = [0.0] * 24
    model.weekly_round = False
    model.advance(monday)
    for ts in (monday + timedelta(hours=h + 1) for h in range(7 * 24)):
        model.fill_pct = 0.0
        model.advance(ts)
        rise[(ts - timedelta(hours=1)).hour] += model.fill_pct
    return rise


def test_fill_follows_local_time_across_the_clock_change() -> None:
    """In summer time (BST, UTC+1) the daily pattern runs an hour earlier in UTC than in
    winter, as people live by the local clock; so does the weekly round."""
    model = BinModel.create("bin-t", "general", random.Random(3))
    summer = _rise_by_utc_hour(model, datetime(2025, 10, 13, tzinfo=UTC))  # before 26 Oct
    winter = _rise_by_utc_hour(model, datetime(2025, 11, 3, tzinfo=UTC))
    peak_local = HOURLY_FACTOR.index(max(HOURLY_FACTOR))
    assert summer.index(max(summer)) == peak_local - 1
    assert winter.index(max(winter)) == peak_local
    # Shape for shape, summer is winter an hour earlier.
    total_s, total_w = sum(summer), sum(winter)
    for hour in range(24):
        assert summer[hour] / total_s == pytest.approx(winter[(hour + 1) % 24] / total_w, rel=0.02)
    # The weekly round keeps its local hour: an hour earlier in UTC in summer.
    model = BinModel.create("bin-u", "general", random.Random(4))
    model.collection_weekday, model.collection_hour = 2, 9.0
    for week in (datetime(2025, 10, 20, tzinfo=UTC), datetime(2025, 10, 27, tzinfo=UTC)):
        for hour in range(0, 7 * 24, 1):
            model.advance(week + timedelta(hours=hour))
    assert [(r.weekday(), r.hour) for r in model.rounds] == [(2, 8), (2, 9)]
