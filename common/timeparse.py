"""Times on the command line: RFC 3339, a date, ``now``, or an age such as ``24h`` / ``7d``."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

_AGE = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_when(text: str, *, now: datetime | None = None) -> datetime:
    now = now or datetime.now(UTC)
    text = text.strip()
    if text == "now":
        return now
    match = _AGE.match(text)
    if match:
        return now - timedelta(**{_UNITS[match.group(2)]: float(match.group(1))})
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(
            f"{text!r} is not a time: use RFC 3339 (2026-11-22T10:00:00Z), a date, or an age "
            "such as 24h or 7d"
        ) from exc
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def parse_duration(text: str) -> timedelta:
    match = _AGE.match(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a duration: use e.g. 90s, 10m, 2h, 3d")
    return timedelta(**{_UNITS[match.group(2)]: float(match.group(1))})
