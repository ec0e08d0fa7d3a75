"""Ground truth: labels at their stated base rates, and homes that behave as labelled."""

from __future__ import annotations

import io
import json
import random
from datetime import UTC, datetime, timedelta

import pytest

from device_sim import truth
from device_sim.models import HomeModel, saturation_ah_g_m3
from device_sim.population import populate
from device_sim.truth import Episode, HomeTruth, draw_home_truth, write_labels
from device_sim.weather import Weather

START = datetime(2026, 1, 5, tzinfo=UTC)


def test_labels_are_drawn_at_the_stated_base_rates():
    rng = random.Random(7)
    homes = [draw_home_truth(rng, False, START, 30) for _ in range(20_000)]
    share = lambda flag: sum(flag(h) for h in homes) / len(homes)  # noqa: E731
    assert share(lambda h: h.damp_prone) == pytest.approx(truth.DAMP_PRONE, abs=0.006)
    assert share(lambda h: h.under_heated) == pytest.approx(truth.UNDER_HEATED, abs=0.005)
    assert share(lambda h: h.first("leak") is not None) == pytest.approx(truth.LEAK, abs=0.003)
    assert share(lambda h: h.first("away_week") is not None) == pytest.approx(
        truth.AWAY_WEEK, abs=0.006
    )
    voids = [draw_home_truth(rng, True, START, 30) for _ in range(4_000)]
    failed = sum(v.first("void_heating_failed") is not None for v in voids) / len(voids)
    assert failed == pytest.approx(truth.VOID_HEATING_FAILS, abs=0.03)
    assert not any(v.damp_prone or v.under_heated for v in voids)


def _mean(home: HomeModel, days: int, key: str) -> float:
    values = [home.reading(START + timedelta(minutes=30 * k))[key] for k in range(48 * days)][48:]
    return sum(values) / len(values)


def test_homes_behave_as_labelled_in_winter():
    winter = Weather.named("winter", seed=3)
    ordinary = HomeModel.create("env-a", False, random.Random(1), weather=winter)
    damp = HomeModel.create(
        "env-b", False, random.Random(1), weather=winter, truth=HomeTruth(damp_prone=True)
    )
    cold = HomeModel.create(
        "env-c", False, random.Random(1), weather=winter, truth=HomeTruth(under_heated=True)
    )
    assert _mean(damp, 5, "rh_pct") > _mean(ordinary, 5, "rh_pct") + 10
    temps = [cold.reading(START + timedelta(minutes=30 * k))["temp_c"] for k in range(48 * 7)]
    last_day = temps[-48:]
    assert max(last_day) < 18.0  # it heats, but never to 18 °C
    assert max(last_day) - min(last_day) > 2.0  # and it does heat


def test_a_leak_adds_water_to_the_air_while_it_lasts():
    leak = Episode("leak", START + timedelta(days=3), START + timedelta(days=5))
    home = HomeModel.create(
        "env-l",
        False,
        random.Random(2),
        weather=Weather.named("winter"),
        truth=HomeTruth(episodes=[leak]),
    )

    vapour = []
    for k in range(48 * 5):
        values = home.reading(START + timedelta(minutes=30 * k))
        vapour.append(values["rh_pct"] / 100 * saturation_ah_g_m3(values["temp_c"]))
    before = sum(vapour[96:144]) / 48  # day 2
    during = sum(vapour[192:240]) / 48  # day 4
    assert during > before + 6  # the leak's 8 g/m³, less the weather's swing


def test_the_truth_file_names_each_subject_label_and_span():
    estate = [
        {"device_id": "env-1", "kind": "env", "uprn": "100000000001", "void": "true"},
        {"device_id": "bin-1", "kind": "bin", "waste_stream": "general"},
    ]
    _, labels = populate(estate, seed=1, start=START, duration=timedelta(days=30))
    out = io.StringIO()
    assert write_labels(labels, out) == len(labels)
    rows = [json.loads(line) for line in out.getvalue().splitlines()]
    void = next(r for r in rows if r["label"] == "void")
    assert (void["subject_kind"], void["subject_id"], void["device_id"]) == (
        "home",
        "100000000001",
        "env-1",
    )
    assert void["start"] == "2026-01-05T00:00:00Z"
    assert void["end"] is None
    assert void["hazard"] is False
