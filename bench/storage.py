"""Readings on disk: bytes per reading, uncompressed and compressed, in both storage modes.

    .venv/bin/python -m bench.storage [--devices 200] [--days 7] [--interval-s 60]

On the project-local PostgreSQL (started under .civic/bench): half bins, half homes from the
simulator's models (their noise, their fields), reporting every ``--interval-s`` for
``--days``, loaded through ingest's write path (``store.readings.write_batch``) into a fresh
database per storage mode. Size = the readings table with its indexes (TimescaleDB:
``hypertable_size``; native: every partition's ``pg_total_relation_size``), before and after
TimescaleDB compresses every chunk (the migration's policy does so after 30 days, segmented
by device, ordered by time). Bytes per reading scale to the estate: see docs/SCALING.md.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from common.services import LocalServices
from device_sim.models import BinModel, HomeModel
from firmware_contracts import Reading
from store.db import StoreMode, connect, migrate, timescaledb_usable
from store.readings import PartitionGuard, prepare_session, write_batch

ROOT = Path(__file__).resolve().parents[1]
BATCH = 20_000


def readings(devices: int, days: int, interval_s: int) -> Iterator[Reading]:
    models: list[Any] = []
    for i in range(devices):
        rng = random.Random(i)
        if i % 2:
            models.append(HomeModel.create(f"env-{i:06d}", False, rng))
        else:
            models.append(BinModel.create(f"bin-{i:06d}", "general", rng))
    start = datetime(2025, 11, 3, tzinfo=UTC)
    step = timedelta(seconds=interval_s)
    for k in range(int(timedelta(days=days) / step)):
        for i, model in enumerate(models):
            ts = start + k * step + timedelta(seconds=i * interval_s / devices)
            yield Reading(model.device_id, ts, seq=k, **model.reading(ts))


def size_bytes(conn: Any, mode: StoreMode) -> int:
    if mode is StoreMode.TIMESCALEDB:
        row = conn.execute("SELECT hypertable_size('readings') AS b").fetchone()
    else:
        row = conn.execute(
            "SELECT sum(pg_total_relation_size(inhrelid)) AS b FROM pg_inherits"
            " WHERE inhparent = 'readings'::regclass"
        ).fetchone()
    return int(row["b"])


def measure(admin: str, mode: StoreMode, args: argparse.Namespace) -> dict[str, Any]:
    name = f"bench_storage_{mode.value}"
    with connect(admin) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")
    url = admin.rsplit("/", 1)[0] + f"/{name}"
    migrate(url, mode=mode)
    stored = 0
    began = time.perf_counter()
    with connect(url) as conn:
        prepare_session(conn)
        guard = PartitionGuard()
        batch: list[Reading] = []
        for reading in readings(args.devices, args.days, args.interval_s):
            batch.append(reading)
            if len(batch) == BATCH:
                stored += write_batch(conn, batch, [], partitions=guard).stored
                batch = []
        stored += write_batch(conn, batch, [], partitions=guard).stored
        conn.execute("VACUUM ANALYZE readings")
        raw = size_bytes(conn, mode)
        compressed = None
        if mode is StoreMode.TIMESCALEDB:
            conn.execute("SELECT compress_chunk(c) FROM show_chunks('readings') c").fetchall()
            compressed = size_bytes(conn, mode)
    result = {
        "mode": mode.value,
        "readings": stored,
        "load_s": time.perf_counter() - began,
        "raw_bytes": raw,
        "compressed_bytes": compressed,
    }
    print(result, flush=True)
    return result


def markdown(argv: list[str], results: list[dict[str, Any]], args: argparse.Namespace) -> str:
    lines = [
        "# Readings on disk",
        "",
        f"Command: `.venv/bin/python -m bench.storage {' '.join(argv)}`",
        "",
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores (shared). "
        f"{args.devices} devices (half bins, half homes, the simulator's models), one reading "
        f"every {args.interval_s} s for {args.days} days, loaded through ingest's write path. "
        "Size: the readings table with its primary key and received_at index, after VACUUM; "
        "compressed: after TimescaleDB compresses every chunk (segment by device, order by "
        "time, as the migration's 30-day policy does).",
        "",
        "| storage mode | readings | size MB | bytes/reading | compressed MB "
        "| compressed bytes/reading | ratio |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        raw, comp, n = r["raw_bytes"], r["compressed_bytes"], r["readings"]
        lines.append(
            f"| {r['mode']} | {n:,} | {raw / 1e6:,.1f} | {raw / n:.0f} | "
            + (
                f"{comp / 1e6:,.1f} | {comp / n:.1f} | {raw / comp:.1f}x |"
                if comp
                else "- | - | - |"
            )
        )
    if not any(r["compressed_bytes"] for r in results):
        lines += [
            "",
            "TimescaleDB is not installed in this PostgreSQL, so compressed sizes were not "
            "measured in this run; docs/SCALING.md uses TimescaleDB's published compression "
            "ratios for them.",
        ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--devices", type=int, default=200)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--interval-s", type=int, default=60)
    parser.add_argument("--no-write", action="store_true", help="do not write the results file")
    args = parser.parse_args()
    state = LocalServices(ROOT / ".civic" / "bench").up()
    admin = state.database_url.rsplit("/", 1)[0] + "/postgres"
    modes = [StoreMode.NATIVE]
    with connect(admin) as conn:
        if timescaledb_usable(conn):
            modes.insert(0, StoreMode.TIMESCALEDB)
    results = [measure(admin, mode, args) for mode in modes]
    text = markdown(sys.argv[1:], results, args)
    print("\n" + text)
    if not args.no_write:
        (ROOT / "bench" / "results" / "storage.md").write_text(text)


if __name__ == "__main__":
    main()
