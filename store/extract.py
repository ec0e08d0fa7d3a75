"""The time-based extract as text, in CSV or JSON: one writer for ``civic export`` and the API.

Chunks are yielded as they fill, so an extract of any size streams in flat memory.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any, Literal

from firmware_contracts import format_rfc3339
from store.readings import EXPORT_COLUMNS

CHUNK_CHARS = 64_000


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


def extract_chunks(rows: Iterable[dict[str, Any]], fmt: Literal["csv", "json"]) -> Iterator[str]:
    return csv_chunks(rows) if fmt == "csv" else json_array_chunks(rows)
