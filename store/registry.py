"""The device/asset registry: bins and the homes environment sensors live in.

``civic devices import FILE.csv`` goes through :func:`parse_devices_csv` (pure: every bad row
reported with its line number) and :func:`upsert_devices` (one transaction: all or nothing).
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, TextIO

import psycopg

from firmware_contracts import DEVICE_CSV_COLUMNS, WasteStream
from store.db import StoreError

WASTE_STREAMS = frozenset(WasteStream)
DEFAULT_THRESHOLD_PCT = 80.0  # FIWARE binFullnessThreshold default used by councils (*default*)
_DEVICE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_UPRN = re.compile(r"^[0-9]{1,12}$")
_TRUE = frozenset({"true", "t", "yes", "y", "1"})
_FALSE = frozenset({"false", "f", "no", "n", "0", ""})


@dataclass(frozen=True, slots=True)
class Device:
    device_id: str
    kind: Literal["bin", "env"]
    lat: float
    lon: float
    uprn: str | None = None
    address: str | None = None
    patch: str | None = None
    void: bool | None = None
    waste_stream: str | None = None
    capacity_l: float | None = None
    threshold_pct: float | None = None
    extra: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RowError:
    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


class RegistryImportError(StoreError):
    def __init__(self, errors: list[RowError]) -> None:
        super().__init__(f"{len(errors)} bad row(s); nothing imported")
        self.errors = errors


def _number(row: dict[str, str], name: str, lo: float, hi: float, problems: list[str]) -> float:
    raw = (row.get(name) or "").strip()
    try:
        value = float(raw)
    except ValueError:
        problems.append(f"{name} must be a number (got {raw!r})")
        return 0.0
    if not lo <= value <= hi:
        problems.append(f"{name} must be between {lo:g} and {hi:g} (got {raw})")
    return value


def parse_device_row(row: dict[str, str]) -> Device:
    """One CSV row to a Device, or ValueError listing every problem in the row."""
    problems: list[str] = []

    def cell(name: str) -> str:
        return (row.get(name) or "").strip()

    device_id = cell("device_id")
    if not _DEVICE_ID.match(device_id):
        problems.append(f"device_id {device_id!r} must be 1-64 letters, digits, '.', '_' or '-'")
    kind = cell("kind")
    if kind not in ("bin", "env"):
        problems.append(f"kind must be 'bin' or 'env' (got {kind!r})")
    lat = _number(row, "lat", -90, 90, problems)
    lon = _number(row, "lon", -180, 180, problems)
    uprn = cell("uprn") or None
    if uprn is not None and not _UPRN.match(uprn):
        problems.append(f"uprn must be 1-12 digits (got {uprn!r})")
    void_text = cell("void").lower()
    if void_text not in _TRUE | _FALSE:
        problems.append(f"void must be true/false (got {cell('void')!r})")
    values: dict[str, Any] = {}
    if kind == "bin":
        stream = cell("waste_stream").lower()
        if stream not in WASTE_STREAMS:
            names = sorted(s.value for s in WASTE_STREAMS)
            problems.append(f"waste_stream must be one of {names} (got {stream!r})")
        values["waste_stream"] = stream
        values["capacity_l"] = _number(row, "capacity_l", 1, 100_000, problems)
        values["threshold_pct"] = (
            _number(row, "threshold_pct", 1, 100, problems)
            if cell("threshold_pct")
            else DEFAULT_THRESHOLD_PCT
        )
    elif kind == "env":
        if uprn is None:
            problems.append("uprn is required for a home sensor (kind env)")
        if not cell("patch"):
            problems.append("patch is required for a home sensor (kind env)")
        values["void"] = void_text in _TRUE
    if problems:
        raise ValueError("; ".join(problems))
    extra = {k: v for k, v in row.items() if k not in DEVICE_CSV_COLUMNS and k and v}
    return Device(
        device_id=device_id,
        kind=kind,  # type: ignore[arg-type]
        lat=lat,
        lon=lon,
        uprn=uprn,
        address=cell("address") or None,
        patch=cell("patch") or None,
        extra=extra,
        **values,
    )


def csv_rows(reader: csv.DictReader[str]) -> Iterator[dict[str, str]]:
    """The reader's rows; a file that is not CSV at all is a :class:`RegistryImportError`
    naming the line, not a traceback."""
    try:
        yield from reader
    except csv.Error as exc:
        raise RegistryImportError([RowError(reader.line_num, f"not CSV: {exc}")]) from exc


def parse_devices_csv(stream: TextIO) -> list[Device]:
    """All devices in a registry CSV, or RegistryImportError with every bad row."""
    reader = csv.DictReader(stream)
    header = reader.fieldnames or []
    missing = [c for c in DEVICE_CSV_COLUMNS if c not in header]
    if missing:
        raise RegistryImportError(
            [RowError(1, f"header is missing column(s): {', '.join(missing)}")]
        )
    devices: list[Device] = []
    errors: list[RowError] = []
    first_line: dict[str, int] = {}
    for row in csv_rows(reader):
        line = reader.line_num
        try:
            device = parse_device_row(row)
        except ValueError as exc:
            errors.append(RowError(line, str(exc)))
            continue
        if device.device_id in first_line:
            errors.append(
                RowError(
                    line,
                    f"device_id {device.device_id} repeats line {first_line[device.device_id]}",
                )
            )
            continue
        first_line[device.device_id] = line
        devices.append(device)
    if errors:
        raise RegistryImportError(errors)
    return devices


_UPSERT = """
INSERT INTO devices (device_id, kind, lat, lon, uprn, address, patch, void, waste_stream,
                     capacity_l, threshold_pct, extra)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (device_id) DO UPDATE SET
    kind = EXCLUDED.kind, lat = EXCLUDED.lat, lon = EXCLUDED.lon, uprn = EXCLUDED.uprn,
    address = EXCLUDED.address, patch = EXCLUDED.patch, void = EXCLUDED.void,
    waste_stream = EXCLUDED.waste_stream, capacity_l = EXCLUDED.capacity_l,
    threshold_pct = EXCLUDED.threshold_pct, extra = EXCLUDED.extra, updated_at = now()
RETURNING (xmax = 0) AS inserted
"""


def upsert_devices(conn: psycopg.Connection[Any], devices: Iterable[Device]) -> tuple[int, int]:
    """Insert or update devices in one transaction; returns (inserted, updated)."""
    inserted = updated = 0
    with conn.transaction(), conn.cursor() as cur:
        for d in devices:
            cur.execute(
                _UPSERT,
                (
                    d.device_id,
                    d.kind,
                    d.lat,
                    d.lon,
                    d.uprn,
                    d.address,
                    d.patch,
                    d.void,
                    d.waste_stream,
                    d.capacity_l,
                    d.threshold_pct,
                    json.dumps(d.extra),
                ),
            )
            row = cur.fetchone()
            is_new = bool(row["inserted"] if isinstance(row, dict) else row and row[0])
            inserted += is_new
            updated += not is_new
    return inserted, updated


def known_device_ids(conn: psycopg.Connection[Any]) -> set[str]:
    return {
        str(r["device_id"] if isinstance(r, dict) else r[0])
        for r in conn.execute("SELECT device_id FROM devices WHERE disabled_at IS NULL")
    }


def load_devices(conn: psycopg.Connection[Any], kind: str | None = None) -> list[Device]:
    rows = conn.execute(
        "SELECT device_id, kind, lat, lon, uprn, address, patch, void, waste_stream,"
        " capacity_l, threshold_pct, extra FROM devices"
        " WHERE %(kind)s::text IS NULL OR kind = %(kind)s ORDER BY device_id",
        {"kind": kind},
    ).fetchall()
    return [Device(**dict(r)) for r in rows]
