"""Reading alerts back: the filtered list and one alert with its timeline.

One code path for the command line and the API. ``patches`` and ``subject_kinds`` narrow what
a caller may see, in SQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from alerts.store import Conn

__all__ = ["AlertFilter", "alert_timeline", "find_alert", "list_alerts"]

# A due date in the stored ``deadlines`` that has passed with its step not recorded.
_OVERDUE = """state <> 'resolved' AND EXISTS (
    SELECT 1 FROM jsonb_array_elements(deadlines) AS d
    WHERE (d->>'due_at')::timestamptz < %(now)s
      AND NOT milestones_done ? (d->>'milestone')
      AND NOT (d->>'milestone' = 'investigate' AND investigation_ended_at IS NOT NULL))"""

# The earliest statutory due date not yet met, for sorting an officer's queue: a column the
# database keeps from ``deadlines`` and ``milestones_done`` (store migration 011), indexed.
NEXT_DUE_SQL = "next_due_at"


@dataclass(frozen=True, slots=True)
class AlertFilter:
    """What to list; ``None`` everywhere lists everything, newest first."""

    alert_type: str | None = None
    state: str | None = None
    """``open``, ``acknowledged``, ``resolved`` or ``active`` (not resolved)."""
    subject: str | None = None
    """A UPRN or a bin's device id."""
    patch: str | None = None
    since: datetime | None = None
    overdue_at: datetime | None = None
    """Only active alerts with a statutory due date before this time and its step not done."""
    due_before: datetime | None = None
    """Only alerts with a statutory step not done and due before this time."""
    patches: list[str] | None = None
    """The caller's patches (``None``: no restriction)."""
    subject_kinds: list[str] | None = None
    """``home`` and/or ``bin`` (``None``: both)."""
    order: str = "newest"
    """``newest`` (opened, newest first) or ``due`` (next statutory due date first)."""
    limit: int = 200
    offset: int = 0


def _conditions(f: AlertFilter) -> tuple[list[str], dict[str, Any]]:
    where = ["true"]
    params: dict[str, Any] = {}
    simple = {
        "alert_type = %(type)s": ("type", f.alert_type),
        "(subject_id = %(subject)s OR uprn = %(subject)s)": ("subject", f.subject),
        "patch = %(patch)s": ("patch", f.patch),
        "opened_at >= %(since)s": ("since", f.since),
        "patch = ANY(%(patches)s)": ("patches", f.patches),
        "subject_kind = ANY(%(kinds)s)": ("kinds", f.subject_kinds),
        f"{NEXT_DUE_SQL} < %(due_before)s": ("due_before", f.due_before),
    }
    for sql, (name, value) in simple.items():
        if value is not None:
            where.append(sql)
            params[name] = value
    if f.state == "active":
        where.append("state <> 'resolved'")
    elif f.state:
        where.append("state = %(state)s")
        params["state"] = f.state
    if f.overdue_at is not None:
        where.append(_OVERDUE)
        params["now"] = f.overdue_at
    return where, params


def list_alerts(
    conn: Conn, f: AlertFilter, columns: Sequence[str] | None = None
) -> list[dict[str, Any]]:
    """The alerts ``f`` picks, with ``columns`` only when given (a page polled often need not
    read, and parse, every alert's evidence and bookkeeping)."""
    where, params = _conditions(f)
    order = (
        f"{NEXT_DUE_SQL} ASC NULLS LAST, opened_at, id"
        if f.order == "due"
        else "opened_at DESC, id"
    )
    params.update(limit=f.limit, offset=f.offset)
    sql = (
        f"SELECT {', '.join(columns) if columns else '*'} FROM alerts"
        f" WHERE {' AND '.join(where)}"
        f" ORDER BY {order} LIMIT %(limit)s OFFSET %(offset)s"
    )
    return conn.execute(sql, params).fetchall()


def find_alert(
    conn: Conn,
    alert_id: str,
    *,
    patches: list[str] | None = None,
    subject_kinds: list[str] | None = None,
) -> dict[str, Any] | None:
    """The alert, or ``None`` when there is none the caller may see."""
    return conn.execute(
        """SELECT * FROM alerts WHERE id = %(id)s
            AND (%(patches)s::text[] IS NULL OR patch = ANY(%(patches)s))
            AND (%(kinds)s::text[] IS NULL OR subject_kind = ANY(%(kinds)s))""",
        {"id": alert_id, "patches": patches, "kinds": subject_kinds},
    ).fetchone()


def alert_timeline(conn: Conn, alert_id: str) -> list[dict[str, Any]]:
    return conn.execute(
        "SELECT id, at, actor, action, severity, detail FROM alert_events WHERE alert_id = %s"
        " ORDER BY at, id",
        (alert_id,),
    ).fetchall()
