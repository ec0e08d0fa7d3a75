"""Homes' readings past their retention period: dropped, or pseudonymised into hourly means;
street bins' readings and recent ones untouched."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from civic.cli import main
from firmware_contracts import Reading
from store.db import connect
from store.readings import PartitionGuard, prepare_session, write_batch
from store.retention import apply_home_retention, pseudonym
from tests.ingest.helpers import register_estate

NOW = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
OLD = NOW - timedelta(days=500)
KEY = b"k" * 32


def _estate(url: str) -> tuple[str, str]:
    estate = register_estate(url, bins=1, homes=1)
    home = next(r["device_id"] for r in estate if r["kind"] == "env")
    bin_ = next(r["device_id"] for r in estate if r["kind"] == "bin")
    readings = [
        # Two old hours of a home (3 readings, then 1), one recent; a bin's, old and recent.
        Reading(device_id=home, ts=OLD, seq=1, temp_c=18.0, rh_pct=60.0, co2_ppm=800.0),
        Reading(device_id=home, ts=OLD + timedelta(minutes=20), seq=2, temp_c=19.0, rh_pct=62.0),
        Reading(device_id=home, ts=OLD + timedelta(minutes=40), seq=3, temp_c=20.0, co2_ppm=1000),
        Reading(device_id=home, ts=OLD + timedelta(hours=1), seq=4, temp_c=17.0),
        Reading(device_id=home, ts=NOW - timedelta(days=1), seq=5, temp_c=21.0),
        Reading(device_id=bin_, ts=OLD, seq=1, fill_pct=40.0),
        Reading(device_id=bin_, ts=NOW - timedelta(days=1), seq=2, fill_pct=50.0),
    ]
    with connect(url) as conn:
        prepare_session(conn)
        write_batch(conn, readings, [], partitions=PartitionGuard())
    return home, bin_


def _kept(url: str) -> list[tuple[str, datetime]]:
    with connect(url) as conn:
        rows = conn.execute("SELECT device_id, ts FROM readings ORDER BY device_id, ts")
        return [(r["device_id"], r["ts"]) for r in rows]


def test_pseudonymise_keeps_hourly_means_under_a_pseudonym_and_drops_the_readings(
    database_url: str,
) -> None:
    home, bin_ = _estate(database_url)
    with connect(database_url) as conn:
        result = apply_home_retention(conn, now=NOW, days=400, mode="pseudonymise", key=lambda: KEY)
        hours = conn.execute("SELECT * FROM readings_pseudonymised ORDER BY hour").fetchall()
        patch = conn.execute("SELECT patch FROM devices WHERE device_id = %s", (home,)).fetchone()
    assert (result.homes, result.readings, result.pseudonymised_hours) == (1, 4, 2)
    assert _kept(database_url) == sorted(
        [(home, NOW - timedelta(days=1)), (bin_, OLD), (bin_, NOW - timedelta(days=1))]
    )
    first = hours[0]
    assert first["pseudonym"] == pseudonym(KEY, home) != home
    assert home not in first["pseudonym"]
    assert first["patch"] == patch["patch"]
    assert (first["n"], first["temp_c"], first["rh_pct"], first["co2_ppm"]) == (
        3,
        pytest.approx(19.0),
        pytest.approx(61.0),
        pytest.approx(900.0),
    )
    assert (hours[1]["n"], hours[1]["temp_c"], hours[1]["co2_ppm"]) == (1, 17.0, None)


def test_late_readings_for_an_hour_already_pseudonymised_are_merged(database_url: str) -> None:
    home, _ = _estate(database_url)
    with connect(database_url) as conn:
        apply_home_retention(conn, now=NOW, days=400, mode="pseudonymise", key=lambda: KEY)
        late = Reading(device_id=home, ts=OLD + timedelta(minutes=50), seq=9, temp_c=23.0)
        prepare_session(conn)
        write_batch(conn, [late], [], partitions=PartitionGuard())
        again = apply_home_retention(conn, now=NOW, days=400, mode="pseudonymise", key=lambda: KEY)
        row = conn.execute(
            "SELECT n, temp_c FROM readings_pseudonymised WHERE hour = %s", (OLD,)
        ).fetchone()
    assert again.readings == 1
    assert (row["n"], row["temp_c"]) == (4, pytest.approx((18 + 19 + 20 + 23) / 4))


def test_drop_deletes_homes_old_readings_only(database_url: str) -> None:
    home, bin_ = _estate(database_url)
    with connect(database_url) as conn:
        result = apply_home_retention(conn, now=NOW, days=400, mode="drop")
        hours = conn.execute("SELECT count(*) AS n FROM readings_pseudonymised").fetchone()["n"]
    assert (result.homes, result.readings, hours) == (1, 4, 0)
    assert (home, OLD) not in _kept(database_url)
    assert (bin_, OLD) in _kept(database_url)


def test_bad_settings_are_refused(database_url: str) -> None:
    with connect(database_url) as conn:
        with pytest.raises(ValueError, match="at least one day"):
            apply_home_retention(conn, now=NOW, days=0, mode="drop")
        with pytest.raises(ValueError, match="needs a key"):
            apply_home_retention(conn, now=NOW, days=30, mode="pseudonymise")


def test_civic_db_maintain_applies_the_homes_retention(civic_env, capsys) -> None:
    url, _mqtt = civic_env
    home, _ = _estate(url)
    assert main(["db", "maintain", "--home-retention-days", "30"]) == 0
    assert "4 from 1 homes pseudonymised (2 hourly rows)" in capsys.readouterr().out
    assert [ts for d, ts in _kept(url) if d == home] == [NOW - timedelta(days=1)]
    assert main(["db", "maintain", "--home-retention", "drop", "--home-retention-days", "0"]) == 2
    assert "at least one day" in capsys.readouterr().err
    # The subject access export still finds the home's pseudonymised hours.
    with connect(url) as conn:
        uprn = conn.execute("SELECT uprn FROM devices WHERE device_id = %s", (home,)).fetchone()
    assert main(["gdpr", "export", "--uprn", uprn["uprn"]]) == 0
    export = json.loads(capsys.readouterr().out)
    assert [row["n"] for row in export["readings_pseudonymised"]] == [3, 1]
    assert len(export["readings"]) == 1
