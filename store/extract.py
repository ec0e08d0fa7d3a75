"""The time-based extract as text, in CSV, JSON or SenML JSON (RFC 8428): one writer for
``civic export`` and the API.

Chunks are yielded as they fill, so an extract of any size streams in flat memory.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any, Literal

from firmware_contracts import METRICS, Reading, encode_senml, format_rfc3339
from store.readings import EXPORT_COLUMNS

CHUNK_CHARS = 64_000
SENML_CHUNK_READINGS = 1_000
ExtractFormat = Literal["csv", "json", "senml"]


def jsonable(value: object) -> object:
    """Timestamps as RFC 3339 UTC; everything else as it is."""
    return format_rfc3339(value) if isinstance(value, datetime) else value


def _json_default(value: object) -> object:
    if isinstance(value, datetime):
        return format_rfc3339(value)
    return str(value)


def csv_chunks(
    rows: Iterable[dict[str, Any]], columns: Sequence[str] = EXPORT_COLUMNS
) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(columns)
    for row in rows:
        writer.writerow("" if row[c] is None else jsonable(row[c]) for c in columns)
        if buffer.tell() > CHUNK_CHARS:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def json_array_chunks(rows: Iterable[dict[str, Any]]) -> Iterator[str]:
    """One JSON array, one object per line, never held whole in memory."""
    yield "["
    first = True
    for row in rows:
        yield ("\n" if first else ",\n") + json.dumps(row, default=_json_default)
        first = False
    yield "]\n" if first else "\n]\n"


def senml_chunks(rows: Iterable[dict[str, Any]]) -> Iterator[str]:
    """One SenML pack (a JSON array of records), written a thousand readings at a time; each
    part names its devices again (``bn``, ``bt``), so the pack never needs holding whole."""
    part: list[Reading] = []

    def records() -> Iterator[str]:
        for record in encode_senml(part):
            yield json.dumps(record)

    yield "["
    first = True
    for row in rows:
        part.append(
            Reading(row["device_id"], row["ts"], row["seq"], **{m: row[m] for m in METRICS})
        )
        if len(part) >= SENML_CHUNK_READINGS:
            yield ("\n" if first else ",\n") + ",\n".join(records())
            first = False
            part.clear()
    if part:
        yield ("\n" if first else ",\n") + ",\n".join(records())
        first = False
    yield "]\n" if first else "\n]\n"


def extract_chunks(rows: Iterable[dict[str, Any]], fmt: ExtractFormat) -> Iterator[str]:
    if fmt == "senml":
        return senml_chunks(rows)
    return csv_chunks(rows) if fmt == "csv" else json_array_chunks(rows)
