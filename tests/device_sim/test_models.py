"""The simulated devices behave like the real ones the rules and forecasts are built for."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from device_sim import BinModel, HomeModel, generate_estate
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
