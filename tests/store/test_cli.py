"""``civic db maintain`` and ``civic deadletters --format table`` against a real database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from civic.cli import main
from firmware_contracts import Reading
from store.db import StoreMode, connect, current_mode
from store.deadletters import DeadLetter, copy_deadletters
from store.readings import PartitionGuard, prepare_session, write_batch

from .helpers import register_devices


def test_db_maintain_drops_what_is_past_retention_and_makes_weeks_ahead(
    any_mode_database_url: str, monkeypatch, capsys
) -> None:
    url = any_mode_database_url
    monkeypatch.setenv("CIVIC_DATABASE_URL", url)
    register_devices(url, ["bin-1"])
    now = datetime.now(UTC)
    old, recent = now - timedelta(days=3 * 365), now - timedelta(days=1)
    guard = PartitionGuard()
    with connect(url) as conn:
        prepare_session(conn)
        for ts in (old, recent):  # one batch each: a batch makes every week it spans
            write_batch(conn, [Reading("bin-1", ts, seq=1, fill_pct=50.0)], [], partitions=guard)
        native = current_mode(conn) is StoreMode.NATIVE
        if native:  # the furthest week made ahead at migration goes missing
            last = conn.execute(
                "SELECT max(c.relname) AS name FROM pg_inherits i"
                " JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'readings'::regclass"
            ).fetchone()["name"]
            conn.execute(f"DROP TABLE {last}")
    capsys.readouterr()
    assert main(["db", "maintain", "--retention-days", "730"]) == 0
    created = 1 if native else 0  # TimescaleDB makes chunks on demand
    assert capsys.readouterr().out == (
        f"partitions created: {created}; dropped past 730 days: 1\n"
        "homes' readings past 400 days: 0 from 0 homes pseudonymised (0 hourly rows)\n"
    )
    with connect(url) as conn:
        left = [r["ts"] for r in conn.execute("SELECT ts FROM readings")]
        ahead = conn.execute(
            "SELECT civic_ensure_partitions(now(), now() + interval '4 weeks') AS n"
        ).fetchone()["n"]
    assert left == [recent]
    assert ahead == 0  # every week up to four ahead is there
    assert main(["db", "maintain", "--retention-days", "730", "--home-retention", "off"]) == 0
    assert capsys.readouterr().out == "partitions created: 0; dropped past 730 days: 0\n"


def test_deadletters_table_since(civic_env, capsys) -> None:
    url, _ = civic_env
    letters = [
        DeadLetter(datetime(2026, 1, 4, 9, 0, tzinfo=UTC), "schema", "fill_pct: missing", b"{}"),
        DeadLetter(
            datetime(2026, 1, 5, 10, 0, tzinfo=UTC),
            "invalid_json",
            "Expecting value",
            b"not json",
            topic="civic/v1/devices/bin-1/telemetry",
        ),
    ]
    with connect(url) as conn, conn.transaction(), conn.cursor() as cur:
        copy_deadletters(cur, letters)
    capsys.readouterr()
    assert main(["deadletters", "--format", "table", "--since", "2026-01-05"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["id", "received_at", "reason", "topic", "detail", "payload"]
    assert len(lines) == 3
    assert lines[1].split()[1:] == [
        "2026-01-05T10:00:00Z",
        "invalid_json",
        "civic/v1/devices/bin-1/telemetry",
        "Expecting",
        "value",
        "not",
        "json",
    ]
    assert lines[2] == "(1 rows)"
    assert main(["deadletters", "--format", "table", "--since", "2026-01-04"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "(2 rows)"
    assert main(["deadletters", "--format", "table", "--since", "soon"]) == 2
    assert "is not a time" in capsys.readouterr().err
