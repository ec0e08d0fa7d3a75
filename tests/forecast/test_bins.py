"""Fill history from the real store, and forecasts for stop selection."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from firmware_contracts import Reading
from forecast.bins import forecast_bins, load_fill_history
from store.db import connect
from store.readings import PartitionGuard, prepare_session, write_batch
from store.registry import Device, upsert_devices

START = datetime(2025, 10, 6, tzinfo=UTC)  # a Monday
STEP = timedelta(minutes=30)
RATE_PCT_PER_H = 0.5


def _bin(device_id: str, *, patch: str = "north", stream: str = "general") -> Device:
    return Device(
        device_id,
        "bin",
        52.63,
        -1.13,
        patch=patch,
        waste_stream=stream,
        capacity_l=1100,
        threshold_pct=80,
    )


def _readings(device_id: str, start: datetime, hours: float, seed: int) -> list[Reading]:
    """Linear filling at RATE_PCT_PER_H with ±1.5 % noise, emptied every Wednesday at 10:00."""
    rng = np.random.default_rng(seed)
    readings, level, ts = [], 10.0, start
    while ts < start + timedelta(hours=hours):
        level = min(level + RATE_PCT_PER_H * 0.5, 108.0)
        if ts.weekday() == 2 and ts.hour == 10 and ts.minute == 0:
            level = 1.0
        fill = round(level + float(rng.normal(0, 1.5)), 1)
        readings.append(Reading(device_id=device_id, ts=ts, seq=1, fill_pct=fill))
        ts += STEP
    return readings


def _store(url: str, devices: list[Device], readings: list[Reading]) -> None:
    with connect(url) as conn:
        upsert_devices(conn, devices)
        prepare_session(conn)
        write_batch(conn, readings, [], partitions=PartitionGuard())


@pytest.fixture
def fleet(database_url: str) -> str:
    """Three bins with two weeks of history, one new since yesterday, one silent, one home."""
    devices = [
        _bin("b1"),
        _bin("b2"),
        _bin("b3"),
        _bin("new"),
        _bin("silent"),
        _bin("glass", stream="glass"),
    ]
    devices.append(
        Device("env-1", "env", 52.6, -1.1, uprn="100000000001", patch="north", void=False)
    )
    readings = []
    for seed, device_id in enumerate(("b1", "b2", "b3")):
        readings += _readings(device_id, START, 14 * 24, seed)
    readings += _readings("new", START + timedelta(days=13), 24, 9)
    readings += _readings("glass", START, 14 * 24, 10)
    readings.append(Reading(device_id="env-1", ts=START, seq=1, rh_pct=60.0))
    _store(database_url, devices, readings)
    return database_url


def test_load_fill_history_returns_arrays_and_registry_attributes(fleet: str) -> None:
    with connect(fleet) as conn:
        histories = load_fill_history(conn, since=START)
        window = load_fill_history(
            conn,
            since=START + timedelta(days=1),
            until=START + timedelta(days=2),
            device_ids=["b1", "new"],
        )
    assert sorted(histories) == ["b1", "b2", "b3", "glass", "new"]  # no home, no silent bin
    b1 = histories["b1"]
    assert (b1.waste_stream, b1.patch, b1.capacity_l, b1.threshold_pct) == (
        "general",
        "north",
        1100,
        80,
    )
    assert b1.ts.dtype == np.dtype("datetime64[us]")
    assert b1.ts.size == b1.fill_pct.size == 14 * 48
    assert b1.ts[0] == np.datetime64("2025-10-06T00:00:00")
    assert bool(np.all(np.diff(b1.ts) == np.timedelta64(30, "m")))
    with pytest.raises(ValueError, match="read-only"):
        b1.fill_pct[0] = 1.0
    assert list(window) == ["b1"]
    assert window["b1"].ts.size == 48
    assert window["b1"].ts[0] == np.datetime64("2025-10-07T00:00:00")


def test_forecast_bins_at_the_visit(fleet: str) -> None:
    now = START + timedelta(days=14)
    visit = now + timedelta(hours=10)
    with connect(fleet) as conn:
        forecasts = {f.device_id: f for f in forecast_bins(conn, visit, now=now)}
    assert sorted(forecasts) == ["b1", "b2", "b3", "glass", "new"]
    b1 = forecasts["b1"]
    # Emptied on Wednesday 15 October at 10:00, filling since until the last reading.
    filled_h = (now - STEP - datetime(2025, 10, 15, 10, tzinfo=UTC)) / timedelta(hours=1)
    assert b1.fill_now_pct == pytest.approx(min(1.0 + RATE_PCT_PER_H * filled_h, 108.0), abs=2.5)
    assert b1.lo_pct <= b1.forecast_at_visit_pct <= b1.hi_pct
    assert b1.stream == "general"
    assert (b1.lat, b1.lon, b1.capacity_l, b1.threshold_pct) == (52.63, -1.13, 1100, 80)
    assert b1.fit_source == "own"
    assert not b1.stuck
    assert b1.must_collect == (b1.forecast_at_visit_pct >= 80)
    new = forecasts["new"]
    assert new.fit_source in {"peers", "blended"}
    assert new.history_h < 30
    # A day in at 0.5 %/h from 10 %: about 22 % now, crossing 80 % some 115 h later.
    assert new.fill_now_pct == pytest.approx(22.0, abs=3.0)
    assert new.forecast_full_time is not None
    expected = new.last_reading_ts + timedelta(hours=(80 - new.fill_now_pct) / RATE_PCT_PER_H)
    assert abs(new.forecast_full_time - expected) < timedelta(hours=12)
    assert new.full_earliest is not None
    assert new.full_earliest <= new.forecast_full_time
    assert new.full_latest is None or new.forecast_full_time <= new.full_latest
    # Glass has no peers in its stream: its own history only.
    assert forecasts["glass"].fit_source == "own"


def test_forecast_bins_rejects_a_visit_before_now(fleet: str) -> None:
    now = START + timedelta(days=14)
    with connect(fleet) as conn, pytest.raises(ValueError, match="before now"):
        forecast_bins(conn, now - timedelta(hours=1), now=now)
