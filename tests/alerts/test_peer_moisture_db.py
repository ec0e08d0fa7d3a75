"""Homes compared with their neighbours through the real evaluator: the database's day means
are the rules' arithmetic, and a live run gives what a backfill gives."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from alerts.psychrometrics import absolute_humidity_g_m3, saturation_vapour_pressure_hpa
from alerts.service import Evaluator, EvaluatorConfig
from alerts.store import moisture_means
from firmware_contracts import Reading
from store.db import connect
from store.registry import Device, upsert_devices
from tests.alerts.test_service_db import backfill, insert, snapshot

START = datetime(2025, 11, 3, 0, 20, tzinfo=UTC)
ORDINARY = [f"env-home-{n:02d}" for n in range(24)]
WET = "env-home-wet"  # far more moisture than the others, every day
LAUNDRY = "env-home-laundry"  # as much, but only on two days a week
VOID = "env-home-void"  # empty: nobody's peer


def _rh(temp_c: float, water_g_m3: float) -> float:
    """The RH at which air at ``temp_c`` holds ``water_g_m3``."""
    return 100.0 * water_g_m3 / absolute_humidity_g_m3(temp_c, 100.0)


def _estate(days: int) -> list[Reading]:
    """Hourly readings; outdoor air's water swings by the day, each home adds its own."""
    readings = []
    for hour in range(days * 24):
        ts = START + timedelta(hours=hour)
        outdoor = 5.0 + 1.5 * math.sin(hour / 24 * 2 * math.pi / 5)
        for n, device_id in enumerate([*ORDINARY, WET, LAUNDRY, VOID]):
            temp_c = 18.5 + 0.1 * (n % 7) + (0.7 if hour % 24 in range(7, 22) else 0.0)
            added = 1.5 + 2.0 * (n % 12) / 11
            if device_id == WET:
                added = 6.0
            elif device_id == LAUNDRY:
                added = 6.0 if (hour // 24) % 7 in (1, 4) else 2.5
            elif device_id == VOID:
                added, temp_c = 0.3, 13.5
            rh = round(_rh(temp_c, outdoor + added), 1)
            readings.append(
                Reading(device_id, ts, seq=hour, temp_c=temp_c, rh_pct=rh, battery_v=3.5)
            )
    return readings


def _register(url: str) -> None:
    devices = [
        Device(
            device_id,
            "env",
            52.63,
            -1.13,
            uprn=str(100_000_000_100 + n),
            address=f"{n} Test Road",
            patch="north",
            void=device_id == VOID,
        )
        for n, device_id in enumerate([*ORDINARY, WET, LAUNDRY, VOID])
    ]
    with connect(url) as conn:
        upsert_devices(conn, devices)


def test_the_databases_day_means_are_the_rules_absolute_humidity(database_url: str) -> None:
    _register(database_url)
    readings = _estate(days=2)
    insert(database_url, readings)
    until = START + timedelta(days=1, hours=12)
    after = until - timedelta(days=1)
    with connect(database_url) as conn:
        means = moisture_means(conn, [WET, VOID], after, until, timedelta(hours=18))
        # A home whose readings span less of the day than asked is left out.
        assert moisture_means(conn, [WET], after, until, timedelta(hours=24)) == {}
    for device_id in (WET, VOID):
        day = [r for r in readings if r.device_id == device_id and after < r.ts <= until]
        expected = sum(
            absolute_humidity_g_m3(r.temp_c, r.rh_pct)
            for r in day
            if r.temp_c is not None and r.rh_pct is not None
        ) / len(day)
        assert means[device_id] == pytest.approx(expected, rel=1e-9)
    # The formula is the one the rules use, not merely self-consistent.
    assert saturation_vapour_pressure_hpa(20.0) == pytest.approx(23.37, abs=0.05)


def test_a_home_wetter_than_its_neighbours_all_week_is_found_live_as_in_backfill(
    database_url: str,
) -> None:
    _register(database_url)
    readings = _estate(days=9)
    config = EvaluatorConfig()
    with connect(database_url) as conn:
        evaluator = Evaluator(conn, config)
        for half_day in range(18):
            lo = START + timedelta(hours=12 * half_day)
            insert(database_url, [r for r in readings if lo <= r.ts < lo + timedelta(hours=12)])
            evaluator.run_cycle(notify=False)
        evaluator.close()
    live = snapshot(database_url)
    found = [e for e in live["events"] if e[1] == "damp_moisture_excess"]
    assert {e[0] for e in found} == {WET}, found
    assert found[0][5] == "act"
    # Five days far above its peers take five days: not before the sixth day.
    assert found[0][3] >= START + timedelta(days=5)
    with connect(database_url) as conn:
        alert = conn.execute(
            "SELECT alert_type, statutory_clock_started_at FROM alerts a JOIN devices d"
            " ON d.uprn = a.uprn WHERE d.device_id = %s",
            (WET,),
        ).fetchall()
    # Persistence over days starts the Awaab's Law clock when the rule turns on.
    clocks = {a["statutory_clock_started_at"] for a in alert if a["alert_type"] == "damp_mould"}
    assert found[0][3] in clocks
    backfill(database_url, config, since=START)
    assert snapshot(database_url) == live
