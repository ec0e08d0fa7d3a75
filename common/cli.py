"""Helpers every stage's ``cli.py`` shares: times and durations from arguments, plain tables."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from common.errors import CliError
from common.timeparse import parse_duration, parse_when


def when(text: str) -> datetime:
    """A time argument (RFC 3339, a date, ``now`` or an age such as ``24h``)."""
    try:
        return parse_when(text)
    except ValueError as exc:
        raise CliError(str(exc)) from exc


def optional_when(text: str | None) -> datetime | None:
    return None if text is None else when(text)


def duration(text: str) -> timedelta:
    """A duration argument such as ``90s``, ``10m``, ``2h`` or ``3d``."""
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise CliError(str(exc)) from exc


def _cell(value: Any, max_width: int | None) -> str:
    if value is None:
        return ""
    text = (
        value.astimezone(UTC).strftime("%Y-%m-%d %H:%M")
        if isinstance(value, datetime)
        else str(value)
    )
    text = text.replace("\n", " ")
    if max_width is not None and len(text) > max_width:
        return text[: max_width - 1] + "…"
    return text


def print_table(
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[str],
    *,
    max_width: int | None = None,
    upper: bool = True,
) -> None:
    """Rows as aligned columns under a header line; cells longer than ``max_width`` are cut."""
    cells = [[_cell(row.get(c), max_width) for c in columns] for row in rows]
    widths = [max([len(c), *(len(row[i]) for row in cells)]) for i, c in enumerate(columns)]
    header = (c.upper() if upper else c for c in columns)
    print("  ".join(c.ljust(w) for c, w in zip(header, widths, strict=True)).rstrip())
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
