"""Awaab's Law follow-through: record the statutory steps, escalate the overdue ones.

A person records that a step was done (``civic alerts investigated``, ``civic alerts
milestone``); recording the end of an investigation fills in the later due dates (written
summary 3 working days after, safety work 5 working days after, preventative work). When a
due date passes without its step recorded, :func:`escalate_overdue` raises the alert's
severity one step (never past :data:`OVERDUE_MAX_SEVERITY` by waiting alone), appends a
``statutory_overdue`` audit entry and queues an ``overdue`` notification in the outbox, once
per milestone. Deadlines are real-world dates, so this runs on the wall clock from a scheduler
(``civic alerts overdue``), not inside the evaluator: the evaluator follows the data clock so
that a live run and a backfill agree, and a wall-clock severity change inside its cycles would
break that.

Only active (open or acknowledged) alerts are chased: resolving an alert closes the case.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from alerts.awaab import (
    AwaabSettings,
    Deadline,
    Milestone,
    WorkingDayCalendar,
    alert_deadlines,
    overdue,
)
from alerts.errors import LifecycleError
from alerts.events import Severity
from alerts.lifecycle import SYSTEM_ACTOR, Alert, AuditAction, AuditEvent
from alerts.store import (
    Conn,
    alert_from_row,
    insert_audit,
    load_subjects,
    lock_alert,
    lock_book,
    save_alerts,
)

__all__ = [
    "OVERDUE_MAX_SEVERITY",
    "OverdueItem",
    "escalate_overdue",
    "milestones_done",
    "record_milestone",
]

OVERDUE_MAX_SEVERITY = Severity.URGENT  # as the lifecycle: only a rule says "emergency"


@dataclass(frozen=True, slots=True)
class OverdueItem:
    alert_id: str
    deadline: Deadline
    severity: Severity
    """The alert's severity after escalating."""


def milestones_done(row: Mapping[str, Any]) -> dict[Milestone, datetime]:
    """When each recorded step was done, from an ``alerts`` row."""
    done: dict[Milestone, datetime] = {}
    for name, entry in (row.get("milestones_done") or {}).items():
        done[Milestone(name)] = datetime.fromisoformat(entry["at"])
    if row.get("investigation_ended_at") is not None:
        done.setdefault(Milestone.INVESTIGATE, row["investigation_ended_at"])
    return done


def _deadlines(
    row: Mapping[str, Any], calendar: WorkingDayCalendar, settings: AwaabSettings
) -> tuple[Alert, tuple[Deadline, ...]]:
    alert = alert_from_row(row)
    deadlines = alert_deadlines(
        alert,
        calendar=calendar,
        investigation_ended_at=row.get("investigation_ended_at"),
        settings=settings,
    )
    return alert, deadlines


def record_milestone(
    conn: Conn,
    alert_id: str,
    milestone: Milestone,
    *,
    by: str,
    at: datetime,
    note: str | None = None,
    now: datetime,
    calendar: WorkingDayCalendar | None = None,
    settings: AwaabSettings | None = None,
) -> dict[str, Any]:
    """Record that ``milestone`` was done at ``at``; returns the updated ``alerts`` row.

    Recording :attr:`Milestone.INVESTIGATE` sets ``investigation_ended_at`` and so the later
    due dates. Raises :class:`~alerts.errors.LifecycleError` when the alert has no statutory
    clock, the step is already recorded, ``at`` precedes the clock or lies ahead of ``now``,
    or a later step is recorded before the investigation ended.
    """
    if not by.strip():
        raise LifecycleError(alert_id, "recording a step needs the person's identity")
    if at.tzinfo is None:
        raise LifecycleError(alert_id, "the time a step was done must be timezone-aware")
    calendar = calendar or WorkingDayCalendar()
    settings = settings or AwaabSettings()
    with conn.transaction():
        lock_alert(conn, alert_id)
        row = conn.execute("SELECT * FROM alerts WHERE id = %s FOR UPDATE", (alert_id,)).fetchone()
        if row is None:
            raise LifecycleError(alert_id, "no such alert")
        started = row["statutory_clock_started_at"]
        if started is None:
            raise LifecycleError(alert_id, "no Awaab's Law clock runs on this alert")
        done = milestones_done(row)
        if milestone in done:
            raise LifecycleError(
                alert_id, f"{milestone.value} is already recorded at {done[milestone].isoformat()}"
            )
        if at < started:
            raise LifecycleError(
                alert_id, f"{at.isoformat()} is before the clock started ({started.isoformat()})"
            )
        if at > now:
            raise LifecycleError(alert_id, f"{at.isoformat()} is in the future")
        needs_investigation = milestone not in (
            Milestone.INVESTIGATE,
            Milestone.EMERGENCY_MAKE_SAFE,
        )
        if needs_investigation and Milestone.INVESTIGATE not in done:
            raise LifecycleError(alert_id, "record the end of the investigation first")
        entry = {"at": at.isoformat(), "by": by, "note": note}
        recorded = {**(row["milestones_done"] or {}), milestone.value: entry}
        ended = at if milestone is Milestone.INVESTIGATE else row["investigation_ended_at"]
        conn.execute(
            "UPDATE alerts SET milestones_done = %s, investigation_ended_at = %s,"
            " updated_at = now() WHERE id = %s",
            (Jsonb(recorded), ended, alert_id),
        )
        # Recompute the due dates (the later ones exist once the investigation has ended).
        alert = alert_from_row(row)
        subjects = {s.subject_id: s for s in load_subjects(conn).values()}
        save_alerts(conn, [alert], subjects, calendar)
        deadlines = alert_deadlines(
            alert, calendar=calendar, investigation_ended_at=ended, settings=settings
        )
        due = {d.milestone: d for d in deadlines}
        detail = f"{milestone.value} done at {at.isoformat()}"
        if milestone in due:
            met = "on time" if at <= due[milestone].due_at else "LATE"
            detail += f" ({met}: due {due[milestone].due_at.isoformat()})"
        if milestone is Milestone.INVESTIGATE:
            later = [d for d in deadlines if d.milestone is not Milestone.INVESTIGATE]
            detail += "; now due: " + ", ".join(
                f"{d.milestone.value} by {d.due_date or d.due_at.date()}" for d in later
            )
        if note:
            detail += f". {note}"
        insert_audit(
            conn,
            [AuditEvent(alert_id, at, by, AuditAction.MILESTONE_RECORDED, detail)],
            {alert_id: {"milestone": milestone.value}},
        )
        updated = conn.execute("SELECT * FROM alerts WHERE id = %s", (alert_id,)).fetchone()
    assert updated is not None
    return dict(updated)


def escalate_overdue(
    conn: Conn,
    now: datetime,
    *,
    calendar: WorkingDayCalendar | None = None,
    settings: AwaabSettings | None = None,
    notify: bool = True,
) -> list[OverdueItem]:
    """Escalate every active alert with a statutory due date passed and its step unrecorded.

    Each (alert, milestone) escalates once: ``overdue_notified`` remembers it.
    """
    from alerts.notify import enqueue_for_alert  # notify imports the store; keep this light

    calendar = calendar or WorkingDayCalendar()
    settings = settings or AwaabSettings()
    items: list[OverdueItem] = []
    with conn.transaction():
        lock_book(conn)
        rows = conn.execute(
            "SELECT * FROM alerts WHERE state <> 'resolved'"
            " AND statutory_clock_started_at IS NOT NULL ORDER BY id"
        ).fetchall()
        for row in rows:
            alert, deadlines = _deadlines(row, calendar, settings)
            notified = set(row["overdue_notified"] or [])
            late = [
                d
                for d in overdue(deadlines, now, milestones_done(row))
                if d.milestone.value not in notified
            ]
            if not late:
                continue
            severity = alert.severity
            audit = []
            for deadline in sorted(late, key=lambda d: d.due_at):
                before = severity
                if severity < OVERDUE_MAX_SEVERITY:
                    severity = Severity(severity + 1)
                audit.append(
                    AuditEvent(
                        alert.alert_id,
                        deadline.due_at,
                        SYSTEM_ACTOR,
                        AuditAction.STATUTORY_OVERDUE,
                        f"Awaab's Law {deadline.milestone.value} was due by "
                        f"{deadline.due_at.isoformat()} ({deadline.basis}) and is not recorded; "
                        f"{before.label} -> {severity.label}",
                        severity,
                    )
                )
                items.append(OverdueItem(alert.alert_id, deadline, severity))
                notified.add(deadline.milestone.value)
            escalated = dataclasses.replace(alert, severity=severity)
            conn.execute(
                "UPDATE alerts SET severity = %s, overdue_notified = %s, updated_at = now()"
                " WHERE id = %s",
                (escalated.severity.label, Jsonb(sorted(notified)), alert.alert_id),
            )
            insert_audit(
                conn,
                audit,
                {alert.alert_id: {"milestones": [d.milestone.value for d in late]}},
            )
            if notify:
                for deadline in late:
                    enqueue_for_alert(
                        conn,
                        alert.alert_id,
                        "overdue",
                        event_at=deadline.due_at,
                        now=now,
                        note=f"Awaab's Law: {deadline.milestone.value.replace('_', ' ')} was "
                        f"due by {deadline.due_at.isoformat()} and is not recorded as done.",
                        severity=severity,
                    )
    return items
