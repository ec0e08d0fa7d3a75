"""The hourly rollup (store migration 011) says what the readings say, whatever happens to them."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from firmware_contracts import METRICS, Reading
from store.db import connect
from store.readings import PartitionGuard, prepare_session, write_batch

from .helpers import refresh_rollup, register_devices

BASE = datetime(2025, 3, 4, 10, 7, tzinfo=UTC)
# The rollup's hours, recomputed from the readings themselves.
_SUMS = ", ".join(f"round(sum({m})::numeric, 6) AS {m}, count({m}) AS {m}_n" for m in METRICS)
FROM_READINGS = f"""
SELECT device_id, date_bin(interval '1 hour', ts, TIMESTAMPTZ '2000-01-03 00:00+00') AS bucket,
       count(*) AS n, {_SUMS}
FROM readings GROUP BY 1, 2 ORDER BY 1, 2"""
_ROLLED = ", ".join(
    f"CASE WHEN {m}_n > 0 THEN round({m}_sum::numeric, 6) END AS {m}, {m}_n" for m in METRICS
)
FROM_ROLLUP = f"SELECT device_id, bucket, n, {_ROLLED} FROM readings_rollup_hourly ORDER BY 1, 2"


def _readings(rng: random.Random, device_ids: list[str], count: int) -> list[Reading]:
    out = []
    for k in range(count):
        device_id = rng.choice(device_ids)
        ts = BASE + timedelta(minutes=rng.randrange(0, 60 * 30))  # 30 hours, some repeats
        if device_id.startswith("env"):
            out.append(Reading(device_id, ts, seq=k, temp_c=rng.uniform(5, 25), rh_pct=None))
        else:
            out.append(Reading(device_id, ts, seq=k, fill_pct=rng.uniform(0, 100), battery_v=3.6))
    return out


def _same(url: str) -> None:
    with connect(url) as conn:
        expected = conn.execute(FROM_READINGS).fetchall()
        rolled = conn.execute(FROM_ROLLUP).fetchall()
    assert rolled == expected
    assert expected  # the comparison was not between two empty tables


def test_the_rollup_follows_inserts_duplicates_updates_and_deletes(
    any_mode_database_url: str,
) -> None:
    url = any_mode_database_url
    devices = ["bin-1", "bin-2", "env-1"]
    register_devices(url, devices)
    rng = random.Random(7)
    with connect(url) as conn:
        prepare_session(conn)
        guard = PartitionGuard()
        for _ in range(3):  # later batches repeat some (device, time) pairs: stored once
            write_batch(conn, _readings(rng, devices, 300), [], partitions=guard)
    # On TimescaleDB the aggregate's policy may have run between two batches (it materialises
    # all history on its first run), leaving the later batches' hours for its next run.
    refresh_rollup(url)
    _same(url)
    with connect(url) as conn:
        conn.execute("UPDATE readings SET fill_pct = fill_pct / 2 WHERE device_id = 'bin-1'")
        conn.execute(  # into the next hour (never onto a stored reading: those are on the minute)
            "UPDATE readings SET ts = ts + interval '1 hour 30 seconds' WHERE device_id = 'bin-2'"
        )
        conn.execute(
            "DELETE FROM readings WHERE device_id = 'env-1' AND ts < %s", (BASE.replace(hour=20),)
        )
        conn.execute("UPDATE readings SET temp_c = NULL WHERE device_id = 'env-1' AND seq % 3 = 0")
    refresh_rollup(url)
    _same(url)


def test_an_update_of_other_columns_writes_no_hour(native_database_url: str) -> None:
    url = native_database_url
    register_devices(url, ["bin-1"])
    with connect(url) as conn:
        prepare_session(conn)
        batch = _readings(random.Random(3), ["bin-1"], 50)
        write_batch(conn, batch, [], partitions=PartitionGuard())
        versions = "SELECT bucket, xmin::text AS v FROM readings_rollup_hourly ORDER BY 1"
        before = conn.execute(versions).fetchall()
        conn.execute("UPDATE readings SET received_at = received_at + interval '1 second'")
        after = conn.execute(versions).fetchall()
    assert after == before
    assert before


def test_retention_drops_the_rollups_hours_with_the_weeks(native_database_url: str) -> None:
    url = native_database_url
    register_devices(url, ["bin-1"])
    old = datetime(2019, 6, 5, 9, tzinfo=UTC)
    kept = datetime(2020, 2, 5, 9, tzinfo=UTC)
    with connect(url) as conn:
        prepare_session(conn)
        batch = [Reading("bin-1", t, seq=1, fill_pct=10.0) for t in (old, kept)]
        write_batch(conn, batch, [], partitions=PartitionGuard())
        conn.execute("SELECT civic_drop_partitions_before('2020-01-01')")
        hours = conn.execute("SELECT bucket FROM readings_rollup_hourly").fetchall()
        conn.execute("TRUNCATE readings")
        after_truncate = conn.execute("SELECT count(*) AS n FROM readings_rollup_hourly").fetchone()
    assert [h["bucket"] for h in hours] == [kept]
    assert after_truncate["n"] == 0


@pytest.mark.parametrize("hours", [1, 24])
def test_the_rollup_answers_a_series_like_the_raw_readings(
    native_database_url: str, hours: int
) -> None:
    """The API's series SQL (rollup for whole hours, raw readings at the edges) against a plain
    average of the raw readings, for windows that start and end mid-hour."""
    from api.series import series_query

    url = native_database_url
    register_devices(url, ["bin-1"])
    rng = random.Random(hours)
    with connect(url) as conn:
        prepare_session(conn)
        write_batch(conn, _readings(rng, ["bin-1"], 400), [], partitions=PartitionGuard())
        for since, until in (
            (BASE + timedelta(minutes=13), BASE + timedelta(hours=27, minutes=41)),
            (BASE - timedelta(days=1), None),
            (BASE + timedelta(minutes=5), BASE + timedelta(minutes=50)),
        ):
            width = timedelta(hours=hours)
            rolled = conn.execute(*series_query("bin-1", width, since, until, 1000)).fetchall()
            raw = conn.execute(
                "SELECT to_char(b AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') AS ts,"
                " n AS count, fill_pct FROM (SELECT date_bin(%s, ts, TIMESTAMPTZ"
                " '2000-01-03 00:00+00') AS b, count(*) AS n,"
                " round(avg(fill_pct)::numeric, 3)::float8 AS fill_pct FROM readings"
                " WHERE device_id = 'bin-1' AND ts >= %s AND (%s::timestamptz IS NULL OR ts < %s)"
                " GROUP BY 1 ORDER BY 1) t",
                (width, since, until, until),
            ).fetchall()
            assert [(r["ts"], r["count"], r["fill_pct"]) for r in rolled] == [
                (r["ts"], r["count"], r["fill_pct"]) for r in raw
            ]
            assert raw
