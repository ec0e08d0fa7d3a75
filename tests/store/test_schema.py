"""Migrations and the query surface in both storage modes."""

from __future__ import annotations

import os
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from common.services import postgres_bindir
from firmware_contracts import Reading
from store.db import StoreMode, connect, current_mode, info, migrate
from store.readings import PartitionGuard, prepare_session, write_batch

from .helpers import refresh_rollup, register_devices


def _reading(device_id: str, ts: datetime, **metrics: float) -> Reading:
    return Reading(device_id=device_id, ts=ts, seq=1, **metrics)


def test_the_local_server_is_in_the_storage_mode_asked_for(services, database_url: str) -> None:
    """CI runs the suite once as the machine allows (TimescaleDB where installed) and once with
    CIVIC_TIMESCALEDB=off: a silent fallback to the other mode would leave one path untested."""
    if services.local is None:
        pytest.skip("CIVIC_TIMESCALEDB steers only the project-local PostgreSQL")
    wanted = os.environ.get("CIVIC_TIMESCALEDB", "auto").strip().lower() or "auto"
    bindir = postgres_bindir()
    assert bindir is not None
    installed = Path(
        subprocess.run(
            [str(bindir / "pg_config"), "--sharedir"], capture_output=True, text=True, check=True
        ).stdout.strip(),
        "extension",
        "timescaledb.control",
    ).exists()
    timescale = wanted == "on" or (wanted == "auto" and installed)
    expected = StoreMode.TIMESCALEDB if timescale else StoreMode.NATIVE
    with connect(database_url) as conn:
        assert current_mode(conn) is expected, (wanted, installed)
    assert info(database_url)["mode"] == expected.value


def test_migrate_is_idempotent(any_mode_database_url: str) -> None:
    mode, applied = migrate(any_mode_database_url)
    assert applied == []
    assert info(any_mode_database_url)["mode"] == mode.value


def test_same_query_surface_in_both_modes(any_mode_database_url: str) -> None:
    url = any_mode_database_url
    register_devices(url, ["bin-1", "bin-2"])
    base = datetime(2025, 3, 4, 10, 0, tzinfo=UTC)  # long before the partitions made ahead
    readings = [
        _reading("bin-1", base + timedelta(minutes=15 * i), fill_pct=10.0 + i) for i in range(8)
    ]
    readings.append(_reading("bin-2", base, fill_pct=50.0))
    with connect(url) as conn:
        prepare_session(conn)
        first = write_batch(conn, readings, [], partitions=PartitionGuard())
        again = write_batch(conn, readings[:3], [], partitions=PartitionGuard())
        hourly = conn.execute(
            "SELECT bucket, n, fill_pct_sum / fill_pct_n AS fill_pct_avg"
            " FROM readings_rollup_hourly WHERE device_id = 'bin-1' ORDER BY bucket"
        ).fetchall()
    assert (first.stored, first.duplicates) == (9, 0)
    assert (again.stored, again.duplicates) == (0, 3)
    assert [(r["n"], r["fill_pct_avg"]) for r in hourly] == [(4, 11.5), (4, 15.5)]
    assert hourly[0]["bucket"] == base


def test_native_partitions_are_created_for_any_week(native_database_url: str) -> None:
    url = native_database_url
    with connect(url) as conn:
        register_devices(url, ["env-1"])
        prepare_session(conn)
        ts = datetime(2019, 6, 5, tzinfo=UTC)
        write_batch(
            conn,
            [_reading("env-1", ts, rh_pct=60.0)],
            [],
            partitions=PartitionGuard(),
        )
        part = conn.execute(
            "SELECT tableoid::regclass::text AS part FROM readings WHERE device_id = 'env-1'"
        ).fetchone()
        dropped = conn.execute("SELECT civic_drop_partitions_before('2020-01-01') AS n").fetchone()
        left = conn.execute("SELECT count(*) AS n FROM readings").fetchone()
    assert part["part"] == "readings_p20190603"  # the Monday of that week
    assert dropped["n"] == 1
    assert left["n"] == 0


def test_retention_removes_the_hourly_rollup_of_the_readings_it_removes(
    any_mode_database_url: str,
) -> None:
    """A week's partition or a chunk dropped past the retention takes its hours out of the
    rollup: neither a dropped partition nor a dropped chunk tells the rollup by itself."""
    url = any_mode_database_url
    register_devices(url, ["env-1"])
    cutoff = datetime(2020, 1, 1, tzinfo=UTC)
    # Ten days before the cutoff (in a week the retention drops whole), and after it.
    old, recent = cutoff - timedelta(days=10), cutoff + timedelta(days=400)
    with connect(url) as conn:
        prepare_session(conn)
        readings = [_reading("env-1", ts, rh_pct=60.0) for ts in (old, recent)]
        write_batch(conn, readings, [], partitions=PartitionGuard())
    refresh_rollup(url)  # TimescaleDB: the old hour materialised, as its policy would have
    with connect(url) as conn:
        conn.execute("SELECT civic_drop_partitions_before(%s)", (cutoff,))
        left = conn.execute("SELECT ts FROM readings WHERE device_id = 'env-1'").fetchall()
        hours = conn.execute(
            "SELECT bucket FROM readings_rollup_hourly WHERE device_id = 'env-1' ORDER BY 1"
        ).fetchall()
    assert [r["ts"] for r in left] == [recent]
    assert [h["bucket"] for h in hours] == [recent]


@pytest.mark.timescaledb
def test_timescaledb_hypertable_with_policies(timescale_database_url: str) -> None:
    with connect(timescale_database_url) as conn:
        hypertable = conn.execute(
            "SELECT compression_enabled FROM timescaledb_information.hypertables"
            " WHERE hypertable_name = 'readings'"
        ).fetchone()
        jobs = {
            (r["hypertable_name"], r["proc_name"])
            for r in conn.execute(
                "SELECT hypertable_name, proc_name FROM timescaledb_information.jobs"
                " WHERE hypertable_name IN ('readings', 'readings_rollup_hourly')"
            )
        }
        cagg = conn.execute(
            "SELECT materialized_only FROM timescaledb_information.continuous_aggregates"
            " WHERE view_name = 'readings_rollup_hourly'"
        ).fetchone()
    assert hypertable is not None
    assert hypertable["compression_enabled"]
    assert jobs == {
        ("readings", "policy_compression"),
        ("readings", "policy_retention"),
        ("readings_rollup_hourly", "policy_refresh_continuous_aggregate"),
        ("readings_rollup_hourly", "policy_retention"),
    }
    assert cagg is not None
    assert cagg["materialized_only"] is False


@pytest.mark.timescaledb
def test_timescaledb_compressed_chunks_still_dedup(timescale_database_url: str) -> None:
    url = timescale_database_url
    register_devices(url, ["bin-9"])
    ts = datetime(2025, 1, 7, 8, 0, tzinfo=UTC)
    with connect(url) as conn:
        prepare_session(conn)
        write_batch(
            conn,
            [_reading("bin-9", ts, fill_pct=5.0)],
            [],
            partitions=PartitionGuard(),
        )
        conn.execute("SELECT compress_chunk(c) FROM show_chunks('readings') c")
        late = write_batch(
            conn,
            [
                _reading("bin-9", ts, fill_pct=5.0),
                _reading("bin-9", ts + timedelta(hours=1), fill_pct=6.0),
            ],
            [],
            partitions=PartitionGuard(),
        )
        total = conn.execute("SELECT count(*) AS n FROM readings").fetchone()
    assert (late.stored, late.duplicates) == (1, 1)
    assert total["n"] == 2


def test_mode_cannot_change_after_first_migration(any_mode_database_url: str) -> None:
    with connect(any_mode_database_url) as conn:
        mode = current_mode(conn)
    other = StoreMode.NATIVE if mode is StoreMode.TIMESCALEDB else StoreMode.TIMESCALEDB
    with pytest.raises(Exception, match="already in"):
        migrate(any_mode_database_url, mode=other)


def test_bad_url_is_a_clear_error() -> None:
    from store.db import StoreError

    with pytest.raises(StoreError, match="cannot connect"):
        connect("postgresql://nobody@127.0.0.1:1/none")
