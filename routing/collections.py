"""Crew collection records: which bins a crew emptied and when, imported from round sheets.

The records close the loop with the sensors: the alerts service flags an emptying the sensor
saw with no record near it, and a recorded collection of a bin that was nearly empty (a wasted
stop). Imports are all-or-nothing with every bad line reported, like the device registry.

CSV header: ``device_id,ts`` and optionally ``crew``; ``ts`` is RFC 3339 with an offset.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TextIO

import psycopg

from firmware_contracts import parse_rfc3339
from store.registry import RegistryImportError, RowError, csv_rows

__all__ = ["CollectionRecordRow", "ImportedCollections", "import_collections", "parse_collections"]

REQUIRED_COLUMNS = ("device_id", "ts")


@dataclass(frozen=True, slots=True)
class CollectionRecordRow:
    device_id: str
    ts: datetime
    crew: str | None = None


@dataclass(frozen=True, slots=True)
class ImportedCollections:
    rows: int
    new: int
    """Rows not already recorded (the same bin and time imported twice counts once)."""


def parse_collections(stream: TextIO) -> list[CollectionRecordRow]:
    """Every record in the CSV, or :class:`RegistryImportError` listing every bad line."""
    reader = csv.DictReader(stream)
    missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise RegistryImportError(
            [RowError(1, f"header is missing column(s): {', '.join(missing)}")]
        )
    rows: list[CollectionRecordRow] = []
    errors: list[RowError] = []
    for row in csv_rows(reader):
        device_id = (row.get("device_id") or "").strip()
        stamp = (row.get("ts") or "").strip()
        if not device_id:
            errors.append(RowError(reader.line_num, "device_id is empty"))
            continue
        try:
            ts = parse_rfc3339(stamp)
        except ValueError as exc:
            errors.append(RowError(reader.line_num, f"ts {stamp!r}: {exc}"))
            continue
        rows.append(CollectionRecordRow(device_id, ts, (row.get("crew") or "").strip() or None))
    if errors:
        raise RegistryImportError(errors)
    return rows


def import_collections(
    conn: psycopg.Connection[dict[str, Any]],
    rows: list[CollectionRecordRow],
    *,
    source: str = "import",
) -> ImportedCollections:
    """Store the records in one transaction; unknown or non-bin devices fail the whole import."""
    with conn.transaction():
        ids = sorted({r.device_id for r in rows})
        found = conn.execute(
            "SELECT device_id, kind FROM devices WHERE device_id = ANY(%s)", (ids,)
        ).fetchall()
        known = {r["device_id"]: r["kind"] for r in found}
        errors = [
            RowError(n + 2, f"{r.device_id} is not a registered bin")
            for n, r in enumerate(rows)
            if known.get(r.device_id) != "bin"
        ]
        if errors:
            raise RegistryImportError(errors)
        new = 0
        with conn.cursor() as cur:
            for r in rows:
                cur.execute(
                    "INSERT INTO collection_records (device_id, ts, crew, source)"
                    " VALUES (%s, %s, %s, %s) ON CONFLICT (device_id, ts) DO NOTHING",
                    (r.device_id, r.ts, r.crew, source),
                )
                new += max(cur.rowcount, 0)
    return ImportedCollections(rows=len(rows), new=new)
