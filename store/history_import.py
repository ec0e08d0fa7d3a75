"""``civic readings import``: bulk-load history exported from a council's old system.

Rows go through the firmware contract's validation (ranges, timestamps) and the registry check,
like live telemetry. By default a file with any bad row imports nothing and lists every bad
line; ``skip_invalid`` stores the good rows and dead-letters the bad ones (source ``import``).
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TextIO

import psycopg

from firmware_contracts import METRICS, ContractError, Reading, Reason, validate_record
from store.deadletters import DeadLetter, copy_deadletters
from store.readings import PartitionGuard, copy_to_stage, merge_stage, prepare_session
from store.registry import known_device_ids

log = logging.getLogger(__name__)
CHUNK_ROWS = 20_000  # rows per COPY into the staging table


@dataclass
class ImportReport:
    rows: int = 0
    stored: int = 0
    duplicates: int = 0
    errors: list[str] | None = None
    deadlettered: int = 0


def _row_to_record(row: dict[str, str]) -> dict[str, Any]:
    record: dict[str, Any] = {"ts": row.get("ts", "")}
    seq = (row.get("seq") or "").strip()
    if seq:
        record["seq"] = int(seq) if seq.isdigit() else seq
    for name in METRICS:
        cell = (row.get(name) or "").strip()
        if cell:
            try:
                record[name] = float(cell)
            except ValueError:
                record[name] = cell  # the contract reports it as a schema error
    return record


def _import(
    conn: psycopg.Connection[Any],
    stream: TextIO,
    *,
    skip_invalid: bool = False,
    now: datetime | None = None,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    now = now or datetime.now(UTC)
    reader = csv.DictReader(stream)
    header = reader.fieldnames or []
    if header[:2] != ["device_id", "ts"] or not set(header) & set(METRICS):
        raise ValueError(
            "header must start with device_id,ts and name at least one metric column "
            f"({', '.join(METRICS)}); got {','.join(header)}"
        )
    devices = known_device_ids(conn)
    report = ImportReport(errors=[])
    errors: list[str] = []
    letters: list[DeadLetter] = []
    chunk: list[Reading] = []
    partitions = PartitionGuard()
    prepare_session(conn)
    with conn.transaction(), conn.cursor() as cur:
        for row in reader:
            report.rows += 1
            device_id = (row.get("device_id") or "").strip()
            try:
                if device_id not in devices:
                    raise ContractError(Reason.UNKNOWN_DEVICE, f"{device_id!r} is not registered")
                chunk.append(validate_record(device_id, _row_to_record(row), now=now))
            except ContractError as exc:
                errors.append(f"line {reader.line_num}: {exc.reason.value}: {exc.detail}")
                letters.append(
                    DeadLetter(
                        now, exc.reason.value, exc.detail, json.dumps(row).encode(), source="import"
                    )
                )
            if len(chunk) >= CHUNK_ROWS:
                partitions.ensure(cur, chunk)
                copy_to_stage(cur, chunk)
                chunk.clear()
                if progress:
                    progress(report.rows)
        if errors and not skip_invalid:
            report.errors = errors
            raise _RollbackError(report)
        partitions.ensure(cur, chunk)
        copy_to_stage(cur, chunk)
        report.stored = merge_stage(cur)
        copy_deadletters(cur, letters)
    report.duplicates = report.rows - len(errors) - report.stored
    report.errors = errors
    report.deadlettered = len(letters)
    return report


class _RollbackError(Exception):
    def __init__(self, report: ImportReport) -> None:
        super().__init__("import rolled back")
        self.report = report


def import_readings_csv(
    conn: psycopg.Connection[Any], stream: TextIO, **kwargs: Any
) -> ImportReport:
    """Import a history CSV in one transaction; the report lists every rejected line.

    Without ``skip_invalid``, any rejected line rolls the whole import back (``stored == 0``).
    """
    try:
        return _import(conn, stream, **kwargs)
    except _RollbackError as rollback:
        return rollback.report
