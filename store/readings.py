"""Writing readings with COPY (exactly once per (device_id, ts)) and reading them back."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg

from firmware_contracts import METRICS, Reading
from store.deadletters import DeadLetter, copy_deadletters

log = logging.getLogger(__name__)

READING_COLUMNS = ("device_id", "ts", "seq", *METRICS)
EXPORT_COLUMNS = ("device_id", "ts", *METRICS, "seq", "uprn", "received_at")
_COPY_TYPES = ["text", "timestamptz", "int8"] + ["float8"] * len(METRICS)
_STAGE = "readings_stage"
_WEEK = timedelta(days=7)


@dataclass(frozen=True, slots=True)
class WriteResult:
    stored: int
    duplicates: int
    deadlettered: int


def week_start(ts: datetime) -> datetime:
    day = ts.replace(hour=0, minute=0, second=0, microsecond=0)
    return day - timedelta(days=day.weekday())


def prepare_session(conn: psycopg.Connection[Any]) -> None:
    """Per-connection staging table: COPY lands here, then merges with ON CONFLICT."""
    conn.execute(
        f"CREATE TEMP TABLE IF NOT EXISTS {_STAGE} "
        f"(LIKE readings INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
    )
    conn.commit()


def copy_to_stage(cur: psycopg.Cursor[Any], readings: Sequence[Reading]) -> None:
    with cur.copy(
        f"COPY {_STAGE} ({', '.join(READING_COLUMNS)}) FROM STDIN (FORMAT BINARY)"
    ) as copy:
        copy.set_types(_COPY_TYPES)
        for r in readings:
            copy.write_row(
                (
                    r.device_id,
                    r.ts,
                    r.seq,
                    r.fill_pct,
                    r.temp_c,
                    r.battery_v,
                    r.rh_pct,
                    r.co2_ppm,
                    r.tilt_deg,
                    r.rssi_dbm,
                )
            )


def merge_stage(cur: psycopg.Cursor[Any]) -> int:
    """Move staged rows into readings; the first copy of a (device_id, ts) wins. Each
    device's newest reading is kept in ``latest_readings`` too.

    ``received_at`` is stamped with the clock at insert time, moments before COMMIT, so
    ``received_at - ts`` is the reading's end-to-end latency. The staging table empties itself
    at commit (ON COMMIT DELETE ROWS).
    """
    cur.execute(
        f"INSERT INTO readings ({', '.join(READING_COLUMNS)}, received_at)"
        f" SELECT DISTINCT ON (device_id, ts) {', '.join(READING_COLUMNS)}, clock_timestamp()"
        f" FROM {_STAGE} ORDER BY device_id, ts, seq"
        f" ON CONFLICT (device_id, ts) DO NOTHING"
    )
    stored = cur.rowcount
    columns = ", ".join(READING_COLUMNS)
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in READING_COLUMNS if c != "device_id")
    cur.execute(
        f"INSERT INTO latest_readings ({columns}, received_at)"
        f" SELECT DISTINCT ON (device_id) {columns}, clock_timestamp() FROM {_STAGE}"
        f" ORDER BY device_id, ts DESC, seq"
        f" ON CONFLICT (device_id) DO UPDATE SET {updates}, received_at = EXCLUDED.received_at"
        f" WHERE latest_readings.ts < EXCLUDED.ts"
    )
    return stored


class PartitionGuard:
    """Makes sure a partition exists for every week a batch touches (native mode).

    Remembers weeks already ensured so the common case costs nothing; TimescaleDB mode's
    ``civic_ensure_partitions`` is a no-op, so this is safe there too.
    """

    def __init__(self) -> None:
        self._weeks: set[datetime] = set()

    def ensure(self, cur: psycopg.Cursor[Any], readings: Sequence[Reading]) -> None:
        """Create missing partitions in the caller's transaction."""
        weeks = {week_start(r.ts) for r in readings} - self._weeks
        if not weeks:
            return
        cur.execute("SELECT civic_ensure_partitions(%s, %s)", (min(weeks), max(weeks) + _WEEK / 2))
        self._weeks |= weeks


def write_batch(
    conn: psycopg.Connection[Any],
    readings: Sequence[Reading],
    deadletters: Sequence[DeadLetter],
    *,
    partitions: PartitionGuard,
    statuses: Sequence[DeviceStatus] = (),
) -> WriteResult:
    """Store one batch in one transaction. Returns only after COMMIT succeeded."""
    with conn.transaction(), conn.cursor() as cur:
        # Own transaction: creating a partition locks the parent table until commit.
        partitions.ensure(cur, readings)
    with conn.transaction(), conn.cursor() as cur:
        stored = 0
        if readings:
            copy_to_stage(cur, readings)
            stored = merge_stage(cur)
        copy_deadletters(cur, deadletters)
        upsert_statuses(cur, statuses)
    return WriteResult(stored, len(readings) - stored, len(deadletters))


def iter_readings(
    conn: psycopg.Connection[Any],
    *,
    since: datetime,
    until: datetime | None = None,
    device_id: str | None = None,
    by: str = "ts",
) -> Iterator[dict[str, Any]]:
    """Readings in a window, oldest first, streamed from a server-side cursor.

    ``by="received"`` selects on arrival time instead, so a repeated "everything since T"
    extract also picks up late data.
    """
    column = {"ts": "r.ts", "received": "r.received_at"}[by]
    query = (
        f"SELECT r.device_id, r.ts, {', '.join('r.' + m for m in METRICS)}, r.seq, d.uprn,"
        f" r.received_at FROM readings r LEFT JOIN devices d USING (device_id)"
        f" WHERE {column} >= %(since)s"
        f" AND (%(until)s::timestamptz IS NULL OR {column} < %(until)s)"
        f" AND (%(device)s::text IS NULL OR r.device_id = %(device)s)"
        f" ORDER BY {column}, r.device_id"
    )
    with conn.transaction(), conn.cursor(name="export_readings") as cur:
        cur.itersize = 5000
        cur.execute(query, {"since": since, "until": until, "device": device_id})
        yield from cur


@dataclass(frozen=True, slots=True)
class DeviceStatus:
    device_id: str
    state: str
    fw: str | None
    payload: str  # the JSON the device sent


def upsert_statuses(cur: psycopg.Cursor[Any], statuses: Sequence[DeviceStatus]) -> None:
    if statuses:
        cur.executemany(
            "INSERT INTO device_status (device_id, state, fw, payload, updated_at)"
            " VALUES (%s, %s, %s, %s, now())"
            " ON CONFLICT (device_id) DO UPDATE SET state = EXCLUDED.state,"
            " fw = coalesce(EXCLUDED.fw, device_status.fw), payload = EXCLUDED.payload,"
            " updated_at = now()",
            [(s.device_id, s.state, s.fw, s.payload) for s in statuses],
        )


def seq_gaps(conn: psycopg.Connection[Any], since: datetime) -> dict[str, int]:
    """Messages missing per device since ``since``, from the contract's ``seq`` counters: the
    numbers between a device's lowest and highest ``seq`` that never arrived (a broker that
    dropped queued messages, a device that lost its buffer). Only devices with a gap."""
    rows = conn.execute(
        """SELECT device_id, max(seq) - min(seq) + 1 - count(DISTINCT seq) AS missing
           FROM readings WHERE ts >= %s AND seq IS NOT NULL
           GROUP BY device_id HAVING max(seq) - min(seq) + 1 > count(DISTINCT seq)
           ORDER BY device_id""",
        (since,),
    ).fetchall()
    return {r["device_id"]: int(r["missing"]) for r in rows}
