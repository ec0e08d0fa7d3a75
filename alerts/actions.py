"""What people do to alerts: acknowledge and resolve, through the lifecycle, with an audit."""

from __future__ import annotations

from datetime import datetime

from alerts.awaab import WorkingDayCalendar
from alerts.lifecycle import Alert, LifecycleSettings, Outcome
from alerts.store import Conn, insert_audit, load_book, load_subjects, lock_alert, save_alerts

__all__ = ["acknowledge_alert", "resolve_alert"]


def _persist(conn: Conn, outcome: Outcome) -> Alert:
    subjects = {s.subject_id: s for s in load_subjects(conn).values()}
    save_alerts(conn, outcome.changed, subjects, WorkingDayCalendar())
    insert_audit(conn, outcome.audit)
    return outcome.changed[0]


def acknowledge_alert(
    conn: Conn,
    alert_id: str,
    *,
    by: str,
    at: datetime,
    note: str | None = None,
    settings: LifecycleSettings | None = None,
) -> Alert:
    """Raises :class:`~alerts.errors.LifecycleError` when the lifecycle does not allow it."""
    with conn.transaction():
        lock_alert(conn, alert_id)
        book = load_book(conn, settings or LifecycleSettings())
        return _persist(conn, book.acknowledge(alert_id, by=by, at=at, note=note))


def resolve_alert(
    conn: Conn,
    alert_id: str,
    *,
    by: str,
    at: datetime,
    note: str,
    while_condition_on: bool = False,
    settings: LifecycleSettings | None = None,
) -> Alert:
    with conn.transaction():
        lock_alert(conn, alert_id)
        book = load_book(conn, settings or LifecycleSettings())
        outcome = book.resolve(
            alert_id, by=by, at=at, note=note, while_condition_on=while_condition_on
        )
        return _persist(conn, outcome)
