from dataclasses import FrozenInstanceError
from datetime import timedelta

import pytest

from alerts import (
    AlertBook,
    AlertStatus,
    AlertType,
    AuditAction,
    ConditionEvent,
    Hazard,
    LifecycleError,
    LifecycleSettings,
    Severity,
    Transition,
)
from tests.alerts.helpers import T0

H = timedelta(hours=1)


def event(
    condition,
    transition,
    at,
    *,
    device="env-1",
    severity=Severity.ACT,
    clock=False,
    alert_type=AlertType.DAMP_MOULD,
    subject="100000000001",
):
    return ConditionEvent(
        subject_id=subject,
        device_id=device,
        condition=condition,
        alert_type=alert_type,
        transition=Transition(transition),
        at=at,
        since=at - H,
        severity=severity,
        reason=f"{condition} {transition}",
        hazard=Hazard.DAMP_MOULD,
        starts_statutory_clock=clock,
    )


def actions(audit):
    return [a.action for a in audit]


def test_one_alert_per_subject_and_type_gathering_sources():
    book = AlertBook()
    out = book.apply(event("damp_adf2006", "on", T0, clock=True))
    assert actions(out.audit) == [AuditAction.OPENED, AuditAction.CLOCK_STARTED]
    out = out.book.apply(
        event("mould_index", "on", T0 + H, device="env-2", severity=Severity.URGENT)
    )
    assert actions(out.audit) == [AuditAction.SOURCE_ADDED, AuditAction.ESCALATED]
    (alert,) = out.book.alerts.values()
    assert alert.severity is Severity.URGENT
    assert alert.statutory_clock_started_at == T0
    assert len(alert.active_sources) == 2
    # Another home's damp is another alert.
    out = out.book.apply(event("damp_adf2006", "on", T0, subject="100000000002"))
    assert len(out.book.alerts) == 2


def test_auto_resolves_only_after_every_source_has_been_clear_long_enough():
    settings = LifecycleSettings(auto_resolve_after=24 * H, escalate_unacknowledged_after=None)
    book = (
        AlertBook(settings)
        .apply_all(
            [
                event("damp_adf2006", "on", T0),
                event("mould_index", "on", T0, device="env-2"),
                event("damp_adf2006", "off", T0 + 2 * H),
            ]
        )
        .book
    )
    assert book.tick(T0 + 48 * H).changed == () or all(
        a.status is not AlertStatus.RESOLVED for a in book.tick(T0 + 48 * H).changed
    )
    book = book.apply(event("mould_index", "off", T0 + 5 * H, device="env-2")).book
    assert all(a.is_open for a in book.tick(T0 + 28 * H).book.alerts.values())
    out = book.tick(T0 + 29 * H)
    assert out.book.alerts == {}
    (resolved,) = [a for a in out.changed if a.status is AlertStatus.RESOLVED]
    assert resolved.resolved_at == T0 + 29 * H
    assert AuditAction.AUTO_RESOLVED in actions(out.audit)


def test_condition_returning_before_auto_resolve_keeps_the_same_alert():
    book = (
        AlertBook()
        .apply_all([event("damp_adf2006", "on", T0), event("damp_adf2006", "off", T0 + H)])
        .book
    )
    out = book.apply(event("damp_adf2006", "on", T0 + 5 * H))
    assert actions(out.audit) == [AuditAction.CONDITION_RETURNED]
    (alert,) = out.book.alerts.values()
    assert alert.opened_at == T0
    assert alert.cleared_at is None


def test_people_acknowledge_and_resolve_with_a_note():
    book = AlertBook().apply(event("damp_adf2006", "on", T0)).book
    (alert,) = book.alerts.values()
    with pytest.raises(LifecycleError, match="still on"):
        book.resolve(alert.alert_id, by="officer.a", at=T0 + H, note="ventilated")
    out = book.acknowledge(alert.alert_id, by="officer.a", at=T0 + H)
    assert out.changed[0].status is AlertStatus.ACKNOWLEDGED
    with pytest.raises(LifecycleError, match="acknowledge"):
        out.book.acknowledge(alert.alert_id, by="officer.b", at=T0 + 2 * H)
    with pytest.raises(LifecycleError, match="note"):
        out.book.resolve(alert.alert_id, by="officer.a", at=T0 + 2 * H, note=" ")
    done = out.book.resolve(
        alert.alert_id,
        by="officer.a",
        at=T0 + 2 * H,
        note="extractor fixed",
        while_condition_on=True,
    )
    assert done.book.alerts == {}
    (audit,) = done.audit
    assert (audit.actor, audit.action) == ("officer.a", AuditAction.RESOLVED)
    assert "resolved while on" in audit.detail
    with pytest.raises(FrozenInstanceError):
        audit.actor = "someone else"  # type: ignore[misc]


def test_reminders_and_escalation_until_acknowledged():
    settings = LifecycleSettings(
        reminder_every=4 * H,
        escalate_unacknowledged_after=12 * H,
        max_escalated_severity=Severity.URGENT,
    )
    book = AlertBook(settings).apply(event("mould_index", "on", T0, severity=Severity.ACT)).book
    out = book.tick(T0 + 3 * H)
    assert out.audit == ()
    out = book.tick(T0 + 25 * H)
    assert actions(out.audit) == [AuditAction.ESCALATED, AuditAction.REMINDED]
    (alert,) = out.book.alerts.values()
    assert alert.severity is Severity.URGENT  # capped: waiting never makes an emergency
    assert alert.last_notified_at == T0 + 24 * H
    out = out.book.tick(T0 + 100 * H)
    assert [a.severity for a in out.audit if a.action is AuditAction.ESCALATED] == []
    acked = out.book.acknowledge(alert.alert_id, by="officer.a", at=T0 + 101 * H).book
    assert acked.tick(T0 + 200 * H).audit == ()


def test_advice_never_turns_into_work_by_waiting():
    settings = LifecycleSettings(escalate_unacknowledged_after=12 * H)
    book = AlertBook(settings).apply(event("damp_adf2006", "on", T0, severity=Severity.WATCH)).book
    out = book.tick(T0 + 100 * H)
    assert AuditAction.ESCALATED not in actions(out.audit)
    (alert,) = out.book.alerts.values()
    assert alert.severity is Severity.WATCH


def test_point_events_wait_for_a_person_by_default():
    unrecorded = event(
        "unrecorded_emptying", "occurred", T0, alert_type=AlertType.UNRECORDED_EMPTYING
    )
    book = AlertBook(LifecycleSettings(escalate_unacknowledged_after=None)).apply(unrecorded).book
    assert book.tick(T0 + 1000 * H).book.alerts != {}
    timed = AlertBook(LifecycleSettings(point_event_auto_resolve_after=48 * H)).apply(unrecorded)
    assert timed.book.tick(T0 + 48 * H).book.alerts == {}
