"""Check captured messages against the contract: what ``civic contract check`` runs."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

from firmware_contracts.decode import decode_telemetry
from firmware_contracts.errors import ContractError, Reason
from firmware_contracts.topics import TopicLayout


def check_line(line: str, *, layout: TopicLayout, now: datetime) -> dict[str, Any]:
    """One ``{"topic": ..., "payload": ...}`` line to ``{"ok": ...}``."""
    try:
        envelope = json.loads(line)
    except ValueError as exc:
        return {"ok": False, "reason": Reason.INVALID_JSON.value, "detail": f"line: {exc}"}
    if (
        not isinstance(envelope, dict)
        or not isinstance(envelope.get("topic"), str)
        or not isinstance(envelope.get("payload"), str)
    ):
        return {
            "ok": False,
            "reason": Reason.SCHEMA.value,
            "detail": 'each line must be {"topic": string, "payload": string}',
        }
    try:
        readings = decode_telemetry(envelope["topic"], envelope["payload"], now=now, layout=layout)
    except ContractError as exc:
        return {"ok": False, "reason": exc.reason.value, "detail": exc.detail}
    return {"ok": True, "readings": len(readings)}


def check_lines(
    lines: Iterable[str], *, layout: TopicLayout, now: datetime | None = None
) -> Iterator[dict[str, Any]]:
    now = now or datetime.now(UTC)
    for line in lines:
        if line.strip():
            yield check_line(line, layout=layout, now=now)
