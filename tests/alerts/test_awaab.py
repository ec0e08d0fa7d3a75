from datetime import UTC, date, datetime, timedelta

import holidays
import pytest

from alerts import (
    AlertBook,
    AlertType,
    ClockPolicy,
    ConditionEvent,
    DeadlineState,
    Hazard,
    Milestone,
    Severity,
    Transition,
    WorkingDayCalendar,
    alert_deadlines,
    deadline_status,
    emergency_deadlines,
    overdue,
    significant_hazard_deadlines,
)

CAL = WorkingDayCalendar()


def test_england_and_wales_share_one_bank_holiday_list_unlike_scotland():
    years = range(2024, 2031)
    england = set(holidays.country_holidays("GB", subdiv="ENG", years=years))
    wales = set(holidays.country_holidays("GB", subdiv="WLS", years=years))
    scotland = set(holidays.country_holidays("GB", subdiv="SCT", years=years))
    assert england == wales
    assert england != scotland
    assert date(2026, 4, 3) in england  # Good Friday
    assert date(2026, 12, 28) in england  # Boxing Day substitute


def test_working_days_skip_weekends_and_bank_holidays():
    assert not CAL.is_working_day(date(2025, 12, 25))
    assert not CAL.is_working_day(date(2025, 11, 8))  # Saturday
    assert CAL.is_working_day(date(2025, 11, 7))
    # Thursday 2 April 2026 + 1 working day skips Good Friday, the weekend and Easter Monday.
    assert CAL.add_working_days(date(2026, 4, 2), 1) == date(2026, 4, 7)
    assert CAL.working_days_between(date(2026, 4, 2), date(2026, 4, 7)) == 1
    assert WorkingDayCalendar(extra_closures=[date(2025, 11, 7)]).add_working_days(
        date(2025, 11, 6), 1
    ) == date(2025, 11, 10)


def test_investigation_due_ten_working_days_after_awareness():
    aware = datetime(2025, 12, 19, 15, 0, tzinfo=UTC)  # Friday before Christmas
    (investigate,) = significant_hazard_deadlines(aware, calendar=CAL)
    # 22, 23, 24, 29, 30, 31 Dec, 2, 5, 6, 7 Jan: Christmas, Boxing Day and New Year skipped.
    assert investigate.due_date == date(2026, 1, 7)
    assert investigate.due_at == datetime(2026, 1, 8, 0, 0, tzinfo=UTC)  # GMT midnight


def test_awareness_date_and_deadline_are_uk_local_days():
    # 23:30 UTC on 31 March 2026 is already 1 April in British Summer Time.
    aware = datetime(2026, 3, 31, 23, 30, tzinfo=UTC)
    (investigate,) = significant_hazard_deadlines(aware, calendar=CAL)
    assert "2026-04-01" in investigate.basis
    assert investigate.due_at.hour == 23  # midnight BST is 23:00 UTC


def test_later_milestones_run_from_the_end_of_the_investigation():
    aware = datetime(2025, 11, 3, 9, tzinfo=UTC)
    ended = datetime(2025, 11, 12, 16, tzinfo=UTC)  # a Wednesday
    deadlines = {
        d.milestone: d
        for d in significant_hazard_deadlines(aware, calendar=CAL, investigation_ended_at=ended)
    }
    assert deadlines[Milestone.WRITTEN_SUMMARY].due_date == date(2025, 11, 17)
    assert deadlines[Milestone.SAFETY_WORK].due_date == date(2025, 11, 19)
    assert deadlines[Milestone.PREVENTATIVE_WORK_START].due_date == date(2025, 11, 19)
    assert deadlines[Milestone.PREVENTATIVE_WORK_PHYSICAL_START].due_date == date(2026, 2, 4)


def test_emergency_clock_is_24_clock_hours_and_overdue_detection():
    aware = datetime(2025, 12, 24, 18, tzinfo=UTC)
    deadlines = emergency_deadlines(aware)
    assert deadlines[0].due_at == aware + timedelta(hours=24)
    assert overdue(deadlines, aware + timedelta(hours=23)) == ()
    assert overdue(deadlines, aware + timedelta(hours=25)) == deadlines
    done = {Milestone.EMERGENCY_MAKE_SAFE: aware + timedelta(hours=30)}
    (status,) = deadline_status(deadlines, aware + timedelta(hours=40), done)
    assert status.state is DeadlineState.LATE
    assert overdue(deadlines, aware + timedelta(hours=40), done) == ()


def test_clock_policy_defaults_and_overrides():
    policy = ClockPolicy()
    assert policy.starts_clock("damp_adf2006", Hazard.DAMP_MOULD, void=False)
    assert not policy.starts_clock("damp_adf2006", Hazard.DAMP_MOULD, void=True)
    assert policy.starts_clock("cold_home", Hazard.EXCESS_COLD, void=False)  # phase 2, 2026
    assert policy.starts_clock("anything", Hazard.EMERGENCY, void=False)
    council = ClockPolicy(overrides={"condensation_risk": False})
    assert not council.starts_clock("condensation_risk", Hazard.DAMP_MOULD, void=False)
    phase1 = ClockPolicy(hazards=frozenset({Hazard.DAMP_MOULD, Hazard.EMERGENCY}))
    assert not phase1.starts_clock("cold_home", Hazard.EXCESS_COLD, void=False)


def test_only_act_level_evidence_starts_a_clock():
    from alerts import Detector, Home
    from tests.alerts.helpers import HOME_DEVICE, T0, series

    # RH over 70 % every evening for a day: the ADF 2006 criterion is missed, which is advice.
    rows = [{"temp_c": 20.0, "rh_pct": 60.0 if h % 24 < 17 else 78.0} for h in range(30)]
    events = Detector.for_home(Home(uprn="1"), HOME_DEVICE).feed(
        series(rows, step=timedelta(hours=1), start=T0)
    )
    adf = [e for e in events if e.condition == "damp_adf2006"]
    assert adf
    assert {e.severity.label for e in adf} == {"watch"}
    assert not any(e.starts_statutory_clock for e in events)


@pytest.mark.parametrize("starts", [True, False])
def test_alert_deadlines_follow_the_alert_clock(starts):
    at = datetime(2025, 11, 3, 10, tzinfo=UTC)
    opened = AlertBook().apply(
        ConditionEvent(
            subject_id="100000000001",
            device_id="env-1",
            condition="mould_index",
            alert_type=AlertType.DAMP_MOULD,
            transition=Transition.ON,
            at=at,
            since=at,
            severity=Severity.ACT,
            reason="test",
            hazard=Hazard.DAMP_MOULD,
            starts_statutory_clock=starts,
        )
    )
    (alert,) = opened.book.alerts.values()
    deadlines = alert_deadlines(alert, calendar=CAL)
    assert [d.milestone for d in deadlines] == ([Milestone.INVESTIGATE] if starts else [])
