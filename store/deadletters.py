"""The dead-letter store: every rejected message with its topic, reason code and detail."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

_COLUMNS = ("received_at", "source", "topic", "reason", "detail", "payload")


@dataclass(frozen=True, slots=True)
class DeadLetter:
    received_at: datetime
    reason: str
    detail: str
    payload: bytes
    topic: str | None = None
    source: str = "mqtt"


def copy_deadletters(cur: psycopg.Cursor[Any], letters: Sequence[DeadLetter]) -> None:
    if not letters:
        return
    with cur.copy(f"COPY deadletters ({', '.join(_COLUMNS)}) FROM STDIN") as copy:
        for d in letters:
            copy.write_row((d.received_at, d.source, d.topic, d.reason, d.detail, d.payload))


def iter_deadletters(
    conn: psycopg.Connection[Any],
    *,
    since: datetime | None = None,
    reason: str | None = None,
    limit: int | None = None,
) -> Iterator[dict[str, Any]]:
    rows = conn.execute(
        "SELECT id, received_at, source, topic, reason, detail, payload FROM deadletters"
        " WHERE (%(since)s::timestamptz IS NULL OR received_at >= %(since)s)"
        "   AND (%(reason)s::text IS NULL OR reason = %(reason)s)"
        " ORDER BY received_at, id LIMIT %(limit)s",
        {"since": since, "reason": reason, "limit": limit},
    )
    for row in rows:
        item = dict(row)
        item["payload"] = bytes(item["payload"]).decode("utf-8", errors="replace")
        yield item
