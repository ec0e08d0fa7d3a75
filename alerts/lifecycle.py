"""The alert lifecycle as a pure state machine: open, acknowledged, resolved, with an audit trail.

Condition events from the detectors drive it. There is one open alert per (subject, alert
type): a home's damp alert gathers the ADF, mould-index and condensation conditions of all
its sensors as *sources*. The alert's condition has cleared when no source is on; after
``auto_resolve_after`` of that it resolves itself. People acknowledge and resolve (with a
note). Every change is an immutable :class:`AuditEvent` (who, what, when).

Every operation takes the current :class:`AlertBook` and returns a new one with the audit
events it caused; nothing reads the wall clock, so ``now`` is always an argument.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from alerts.errors import LifecycleError
from alerts.events import AlertType, ConditionEvent, EvidenceValue, Hazard, Severity, Transition

__all__ = [
    "SYSTEM_ACTOR",
    "Alert",
    "AlertBook",
    "AlertStatus",
    "AuditAction",
    "AuditEvent",
    "LifecycleSettings",
    "Outcome",
]

SYSTEM_ACTOR = "system"

AlertKey = tuple[str, AlertType]
SourceKey = tuple[str, str]
"""(device_id, condition)."""


class AlertStatus(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


class AuditAction(StrEnum):
    OPENED = "opened"
    CLOCK_STARTED = "statutory_clock_started"
    SOURCE_ADDED = "source_added"
    SOURCE_CLEARED = "source_cleared"
    CONDITION_CLEARED = "condition_cleared"
    CONDITION_RETURNED = "condition_returned"
    ESCALATED = "escalated"
    REMINDED = "reminded"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"
    AUTO_RESOLVED = "auto_resolved"
    MILESTONE_RECORDED = "milestone_recorded"
    """A person recorded an Awaab's Law step as done (investigation ended, summary sent...)."""
    STATUTORY_OVERDUE = "statutory_overdue"
    """A statutory due date passed without its step recorded: the alert escalates."""


@dataclass(frozen=True, slots=True)
class AuditEvent:
    alert_id: str
    at: datetime
    actor: str
    action: AuditAction
    detail: str
    severity: Severity | None = None


@dataclass(frozen=True, slots=True)
class LifecycleSettings:
    """Timings of the lifecycle (*defaults*, council policy)."""

    auto_resolve_after: timedelta = timedelta(hours=24)
    """A condition must stay clear this long before its alert resolves itself."""
    point_event_auto_resolve_after: timedelta | None = None
    """Point events (an unrecorded emptying) have no "clear"; ``None``: a person resolves them."""
    reminder_every: timedelta = timedelta(hours=4)
    escalate_unacknowledged_after: timedelta | None = timedelta(hours=24)
    """Raise the severity one step each time an alert sits unacknowledged this long."""
    max_escalated_severity: Severity = Severity.URGENT
    """Waiting alone never makes an alert an emergency: only a rule can say that."""
    min_escalating_severity: Severity = Severity.ACT
    """Advice (``watch``) never turns into work by waiting: only alerts at this severity or
    above escalate while unacknowledged."""

    def __post_init__(self) -> None:
        for name in ("auto_resolve_after", "reminder_every"):
            if getattr(self, name) <= timedelta(0):
                raise ValueError(f"{name} must be positive")
        for name in ("point_event_auto_resolve_after", "escalate_unacknowledged_after"):
            value = getattr(self, name)
            if value is not None and value <= timedelta(0):
                raise ValueError(f"{name} must be positive or None")


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert for one subject and type. Immutable: every change makes a new value."""

    alert_id: str
    subject_id: str
    alert_type: AlertType
    hazard: Hazard
    status: AlertStatus
    severity: Severity
    opened_at: datetime
    since: datetime
    """When the evidence says the condition began (may precede ``opened_at``)."""
    reason: str
    evidence: tuple[tuple[str, EvidenceValue], ...]
    point_event: bool
    active_sources: frozenset[SourceKey] = frozenset()
    sources: frozenset[SourceKey] = frozenset()
    cleared_at: datetime | None = None
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    resolved_at: datetime | None = None
    resolved_by: str | None = None
    resolution_note: str | None = None
    last_notified_at: datetime | None = None
    reminders_sent: int = 0
    escalated_at: datetime | None = None
    statutory_clock_started_at: datetime | None = None

    @property
    def key(self) -> AlertKey:
        return (self.subject_id, self.alert_type)

    @property
    def is_open(self) -> bool:
        return self.status is not AlertStatus.RESOLVED


@dataclass(frozen=True, slots=True)
class Outcome:
    """The result of one operation: the new book, what changed, and the audit events."""

    book: AlertBook
    changed: tuple[Alert, ...] = ()
    audit: tuple[AuditEvent, ...] = ()


def _alert_id(event: ConditionEvent) -> str:
    return f"{event.subject_id}/{event.alert_type.value}/{event.at.strftime('%Y%m%dT%H%M%SZ')}"


def _sources(keys: Iterable[SourceKey]) -> str:
    return ", ".join(f"{condition}@{device}" for device, condition in sorted(keys))


@dataclass(frozen=True, slots=True)
class AlertBook:
    """The open alerts (open or acknowledged), keyed by (subject, alert type)."""

    settings: LifecycleSettings = field(default_factory=LifecycleSettings)
    alerts: Mapping[AlertKey, Alert] = field(default_factory=dict)

    def get(self, alert_id: str) -> Alert:
        for alert in self.alerts.values():
            if alert.alert_id == alert_id:
                return alert
        raise LifecycleError(alert_id, "no open alert with this id")

    def _with(self, alert: Alert) -> AlertBook:
        alerts = dict(self.alerts)
        if alert.is_open:
            alerts[alert.key] = alert
        else:
            alerts.pop(alert.key, None)
        return dataclasses.replace(self, alerts=alerts)

    # -- condition events ---------------------------------------------------------------

    def apply(self, event: ConditionEvent) -> Outcome:
        """Fold one condition event into the book."""
        alert = self.alerts.get((event.subject_id, event.alert_type))
        source: SourceKey = (event.device_id, event.condition)
        if event.transition is Transition.OFF:
            return self._source_off(alert, source, event)
        if alert is None:
            return self._open(event, source)
        return self._source_on(alert, source, event)

    def apply_all(self, events: Iterable[ConditionEvent]) -> Outcome:
        book = self
        changed: dict[str, Alert] = {}
        audit: list[AuditEvent] = []
        for event in events:
            outcome = book.apply(event)
            book = outcome.book
            changed.update((alert.alert_id, alert) for alert in outcome.changed)
            audit += outcome.audit
        return Outcome(book, tuple(changed.values()), tuple(audit))

    def _open(self, event: ConditionEvent, source: SourceKey) -> Outcome:
        point = event.transition is Transition.OCCURRED
        alert = Alert(
            alert_id=_alert_id(event),
            subject_id=event.subject_id,
            alert_type=event.alert_type,
            hazard=event.hazard,
            status=AlertStatus.OPEN,
            severity=event.severity,
            opened_at=event.at,
            since=event.since,
            reason=event.reason,
            evidence=event.evidence,
            point_event=point,
            active_sources=frozenset() if point else frozenset({source}),
            sources=frozenset({source}),
            cleared_at=event.at if point else None,
            last_notified_at=event.at,
            statutory_clock_started_at=event.at if event.starts_statutory_clock else None,
        )
        audit = [
            AuditEvent(
                alert.alert_id,
                event.at,
                SYSTEM_ACTOR,
                AuditAction.OPENED,
                f"{event.condition}@{event.device_id}: {event.reason}",
                event.severity,
            )
        ]
        if event.starts_statutory_clock:
            audit.append(
                AuditEvent(
                    alert.alert_id,
                    event.at,
                    SYSTEM_ACTOR,
                    AuditAction.CLOCK_STARTED,
                    f"Awaab's Law clock started by {event.condition} ({event.hazard.value})",
                )
            )
        return Outcome(self._with(alert), (alert,), tuple(audit))

    def _source_on(self, alert: Alert, source: SourceKey, event: ConditionEvent) -> Outcome:
        audit: list[AuditEvent] = []
        returned = not alert.active_sources and not alert.point_event
        is_new_source = source not in alert.active_sources
        changes: dict[str, object] = {
            "active_sources": alert.active_sources
            | ({source} if event.transition is not Transition.OCCURRED else set()),
            "sources": alert.sources | {source},
            "reason": event.reason,
            "evidence": event.evidence,
            "since": min(alert.since, event.since),
        }
        if event.transition is not Transition.OCCURRED:
            changes["cleared_at"] = None
        if returned and event.transition is not Transition.OCCURRED:
            audit.append(
                AuditEvent(
                    alert.alert_id,
                    event.at,
                    SYSTEM_ACTOR,
                    AuditAction.CONDITION_RETURNED,
                    f"{event.condition}@{event.device_id}: {event.reason}",
                )
            )
        elif is_new_source or event.transition is Transition.OCCURRED:
            audit.append(
                AuditEvent(
                    alert.alert_id,
                    event.at,
                    SYSTEM_ACTOR,
                    AuditAction.SOURCE_ADDED,
                    f"{event.condition}@{event.device_id}: {event.reason}",
                )
            )
        if event.severity > alert.severity:
            changes["severity"] = event.severity
            audit.append(
                AuditEvent(
                    alert.alert_id,
                    event.at,
                    SYSTEM_ACTOR,
                    AuditAction.ESCALATED,
                    f"{alert.severity.label} -> {event.severity.label}: {event.reason}",
                    event.severity,
                )
            )
        if event.starts_statutory_clock and alert.statutory_clock_started_at is None:
            changes["statutory_clock_started_at"] = event.at
            audit.append(
                AuditEvent(
                    alert.alert_id,
                    event.at,
                    SYSTEM_ACTOR,
                    AuditAction.CLOCK_STARTED,
                    f"Awaab's Law clock started by {event.condition} ({event.hazard.value})",
                )
            )
        updated = dataclasses.replace(alert, **changes)  # type: ignore[arg-type]
        return Outcome(self._with(updated), (updated,), tuple(audit))

    def _source_off(self, alert: Alert | None, source: SourceKey, event: ConditionEvent) -> Outcome:
        if alert is None or source not in alert.active_sources:
            return Outcome(self)
        remaining = alert.active_sources - {source}
        audit = [
            AuditEvent(
                alert.alert_id,
                event.at,
                SYSTEM_ACTOR,
                AuditAction.SOURCE_CLEARED,
                f"{event.condition}@{event.device_id}: {event.reason}",
            )
        ]
        cleared_at = alert.cleared_at
        if not remaining:
            cleared_at = event.at
            audit.append(
                AuditEvent(
                    alert.alert_id,
                    event.at,
                    SYSTEM_ACTOR,
                    AuditAction.CONDITION_CLEARED,
                    "no source condition is on; auto-resolves after "
                    f"{self.settings.auto_resolve_after} unless it returns",
                )
            )
        updated = dataclasses.replace(alert, active_sources=remaining, cleared_at=cleared_at)
        return Outcome(self._with(updated), (updated,), tuple(audit))

    # -- people ---------------------------------------------------------------------------

    def acknowledge(
        self, alert_id: str, *, by: str, at: datetime, note: str | None = None
    ) -> Outcome:
        alert = self.get(alert_id)
        if alert.status is not AlertStatus.OPEN:
            raise LifecycleError(alert_id, f"cannot acknowledge an alert that is {alert.status}")
        if not by.strip():
            raise LifecycleError(alert_id, "acknowledging needs the person's identity")
        updated = dataclasses.replace(
            alert, status=AlertStatus.ACKNOWLEDGED, acknowledged_at=at, acknowledged_by=by
        )
        audit = AuditEvent(alert_id, at, by, AuditAction.ACKNOWLEDGED, note or "")
        return Outcome(self._with(updated), (updated,), (audit,))

    def resolve(
        self,
        alert_id: str,
        *,
        by: str,
        at: datetime,
        note: str,
        while_condition_on: bool = False,
    ) -> Outcome:
        """Resolve by hand, with a note saying what was done.

        Closing an alert whose condition is still on would hide a live hazard (the rule will
        not fire again while it stays on), so that needs ``while_condition_on=True`` and is
        recorded as such.
        """
        alert = self.get(alert_id)
        if not note.strip():
            raise LifecycleError(alert_id, "resolving needs a note saying what was done")
        if not by.strip():
            raise LifecycleError(alert_id, "resolving needs the person's identity")
        if alert.active_sources and not while_condition_on:
            raise LifecycleError(
                alert_id,
                f"its condition is still on ({_sources(alert.active_sources)}); pass "
                "while_condition_on=True to resolve it anyway",
            )
        detail = note
        if alert.active_sources:
            detail = f"{note} [resolved while on: {_sources(alert.active_sources)}]"
        updated = dataclasses.replace(
            alert,
            status=AlertStatus.RESOLVED,
            resolved_at=at,
            resolved_by=by,
            resolution_note=note,
        )
        audit = AuditEvent(alert_id, at, by, AuditAction.RESOLVED, detail)
        return Outcome(self._with(updated), (updated,), (audit,))

    # -- time -----------------------------------------------------------------------------

    def tick(self, now: datetime, keys: Iterable[AlertKey] | None = None) -> Outcome:
        """Let time pass: auto-resolve, escalate unacknowledged alerts, send reminders.

        ``keys`` limits the work to those alerts; the others must not be due (see
        :meth:`due_at`), which leaves the outcome exactly that of ticking the whole book.
        """
        book = self
        changed: list[Alert] = []
        audit: list[AuditEvent] = []
        wanted = self.alerts if keys is None else [k for k in set(keys) if k in self.alerts]
        for key in sorted(wanted, key=lambda k: (k[0], k[1].value)):
            alert = self.alerts[key]
            updated, events = self._tick_alert(alert, now)
            if updated is not alert:
                book = book._with(updated)
                changed.append(updated)
                audit += events
        return Outcome(book, tuple(changed), tuple(audit))

    def due_at(self, key: AlertKey) -> datetime | None:
        """The earliest time from which :meth:`tick` changes this alert (None: never by
        time alone, or no such open alert). Ticking earlier than this changes nothing."""
        alert = self.alerts.get(key)
        if alert is None:
            return None
        s = self.settings
        times = [self._auto_resolve_due(alert)]
        if alert.status is AlertStatus.OPEN:
            if (
                s.escalate_unacknowledged_after is not None
                and s.min_escalating_severity <= alert.severity < s.max_escalated_severity
            ):
                base = alert.escalated_at or alert.opened_at
                times.append(base + s.escalate_unacknowledged_after)
            times.append((alert.last_notified_at or alert.opened_at) + s.reminder_every)
        return min((t for t in times if t is not None), default=None)

    def _tick_alert(self, alert: Alert, now: datetime) -> tuple[Alert, list[AuditEvent]]:
        s = self.settings
        due = self._auto_resolve_due(alert)
        if due is None or now < due:
            return self._escalate_and_remind(alert, now)
        # Escalations and reminders that fell before the auto-resolve still happened: one
        # late tick must leave the same trail as many timely ones (live equals backfill).
        updated, events = self._escalate_and_remind(alert, due)
        resolved = dataclasses.replace(
            updated, status=AlertStatus.RESOLVED, resolved_at=due, resolved_by=SYSTEM_ACTOR
        )
        detail = (
            f"open for {s.point_event_auto_resolve_after} with no action needed"
            if alert.point_event
            else f"condition clear since {alert.cleared_at}"
        )
        events.append(
            AuditEvent(alert.alert_id, due, SYSTEM_ACTOR, AuditAction.AUTO_RESOLVED, detail)
        )
        return resolved, events

    def _escalate_and_remind(self, alert: Alert, now: datetime) -> tuple[Alert, list[AuditEvent]]:
        s = self.settings
        if alert.status is not AlertStatus.OPEN:
            return alert, []
        events: list[AuditEvent] = []
        updated = alert
        if s.escalate_unacknowledged_after is not None:
            base = updated.escalated_at or updated.opened_at
            while (
                s.min_escalating_severity <= updated.severity < s.max_escalated_severity
                and now - base >= s.escalate_unacknowledged_after
            ):
                base += s.escalate_unacknowledged_after
                severity = Severity(updated.severity + 1)
                events.append(
                    AuditEvent(
                        alert.alert_id,
                        base,
                        SYSTEM_ACTOR,
                        AuditAction.ESCALATED,
                        f"{updated.severity.label} -> {severity.label}: unacknowledged for "
                        f"{base - alert.opened_at}",
                        severity,
                    )
                )
                updated = dataclasses.replace(updated, severity=severity, escalated_at=base)
        last = updated.last_notified_at or updated.opened_at
        if now - last >= s.reminder_every:
            periods = (now - last) // s.reminder_every
            reminded_at = last + periods * s.reminder_every
            updated = dataclasses.replace(
                updated,
                last_notified_at=reminded_at,
                reminders_sent=updated.reminders_sent + 1,
            )
            events.append(
                AuditEvent(
                    alert.alert_id,
                    reminded_at,
                    SYSTEM_ACTOR,
                    AuditAction.REMINDED,
                    f"reminder {updated.reminders_sent}: unacknowledged since "
                    f"{alert.opened_at.isoformat()}",
                    updated.severity,
                )
            )
        return updated, events

    def _auto_resolve_due(self, alert: Alert) -> datetime | None:
        s = self.settings
        if alert.point_event:
            if s.point_event_auto_resolve_after is None:
                return None
            return alert.opened_at + s.point_event_auto_resolve_after
        if alert.active_sources or alert.cleared_at is None:
            return None
        return alert.cleared_at + s.auto_resolve_after
