"""Awaab's Law clocks: statutory due dates from the moment the landlord became aware.

The Hazards in Social Housing (Prescribed Requirements) (England) Regulations 2025 (in
force 27 October 2025):

* emergency hazards: investigate and make safe within 24 hours;
* significant damp and mould hazards: investigate within 10 working days of becoming aware;
  a written summary to the tenant within 3 working days of the investigation ending; safety
  work within 5 working days of it ending; preventative work started within 5 working days
  where possible and physically begun within 12 weeks at the latest.

Working days exclude Saturdays, Sundays and England and Wales bank holidays, taken from the
``holidays`` library: ``holidays.country_holidays("GB", subdiv="ENG")``. Its "WLS"
subdivision yields the same days (England and Wales share one bank-holiday list; Scotland
and Northern Ireland differ), and Christmas Day and Good Friday, common-law holidays rather
than bank holidays, are included in both.

Counting: "within N working days of" a day does not count that day, so the due date is the
Nth working day after the local (Europe/London) date of awareness, and the deadline is the
end of that day in London, expressed in UTC.

Whether a sensor alert makes the landlord "aware" is each council's policy: see
:class:`ClockPolicy`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

import holidays

from alerts.events import Hazard, Severity
from alerts.lifecycle import Alert

__all__ = [
    "HOLIDAY_COUNTRY",
    "HOLIDAY_SUBDIVISION",
    "UK_TIME",
    "AwaabSettings",
    "ClockPolicy",
    "Deadline",
    "DeadlineState",
    "DeadlineStatus",
    "Milestone",
    "WorkingDayCalendar",
    "alert_deadlines",
    "deadline_status",
    "emergency_deadlines",
    "overdue",
    "significant_hazard_deadlines",
]

UK_TIME = ZoneInfo("Europe/London")
HOLIDAY_COUNTRY = "GB"
HOLIDAY_SUBDIVISION = "ENG"


class WorkingDayCalendar:
    """Weekdays that are not England and Wales bank holidays (nor ``extra_closures``)."""

    def __init__(
        self,
        *,
        subdivision: str = HOLIDAY_SUBDIVISION,
        extra_closures: Iterable[date] = (),
    ) -> None:
        self._holidays = holidays.country_holidays(HOLIDAY_COUNTRY, subdiv=subdivision)
        self._extra = frozenset(extra_closures)

    def holiday_name(self, day: date) -> str | None:
        name = self._holidays.get(day)
        return None if name is None else str(name)

    def is_working_day(self, day: date) -> bool:
        return day.weekday() < 5 and day not in self._holidays and day not in self._extra

    def add_working_days(self, start: date, days: int) -> date:
        """The ``days``-th working day after ``start`` (``start`` itself not counted)."""
        if days < 0:
            raise ValueError(f"days must not be negative, got {days}")
        current = start
        remaining = days
        while remaining:
            current += timedelta(days=1)
            if self.is_working_day(current):
                remaining -= 1
        return current

    def working_days_between(self, start: date, end: date) -> int:
        """Working days in ``(start, end]``; 0 when ``end <= start``."""
        count = 0
        current = start
        while current < end:
            current += timedelta(days=1)
            if self.is_working_day(current):
                count += 1
        return count


def _local_date(instant: datetime) -> date:
    if instant.tzinfo is None:
        raise ValueError("instants must be timezone-aware")
    return instant.astimezone(UK_TIME).date()


def _end_of_local_day(day: date) -> datetime:
    """The instant the UK day ends (midnight starting the next local day), in UTC."""
    next_day = day + timedelta(days=1)
    return datetime.combine(next_day, time(0), tzinfo=UK_TIME).astimezone(UTC)


class Milestone(StrEnum):
    INVESTIGATE = "investigate"
    WRITTEN_SUMMARY = "written_summary"
    SAFETY_WORK = "safety_work"
    PREVENTATIVE_WORK_START = "preventative_work_start"
    PREVENTATIVE_WORK_PHYSICAL_START = "preventative_work_physical_start"
    EMERGENCY_MAKE_SAFE = "emergency_make_safe"


@dataclass(frozen=True, slots=True)
class AwaabSettings:
    """The statutory periods; they are the law's, configurable only for future amendments."""

    investigate_working_days: int = 10
    summary_working_days: int = 3
    safety_work_working_days: int = 5
    preventative_start_working_days: int = 5
    preventative_physical_start: timedelta = timedelta(weeks=12)
    emergency_period: timedelta = timedelta(hours=24)


@dataclass(frozen=True, slots=True)
class Deadline:
    milestone: Milestone
    due_at: datetime
    """The instant the period ends, UTC."""
    due_date: date | None
    """The UK calendar day the period ends on (``None`` for the 24-hour emergency clock)."""
    basis: str
    """How it was computed, in words, for the audit trail and the tenant's letter."""


def significant_hazard_deadlines(
    aware_at: datetime,
    *,
    calendar: WorkingDayCalendar,
    investigation_ended_at: datetime | None = None,
    settings: AwaabSettings = AwaabSettings(),
) -> tuple[Deadline, ...]:
    """Due dates for a significant damp and mould hazard.

    The later milestones run from the end of the investigation, so they appear only once
    ``investigation_ended_at`` is known.
    """
    aware_day = _local_date(aware_at)
    investigate_day = calendar.add_working_days(aware_day, settings.investigate_working_days)
    deadlines = [
        Deadline(
            Milestone.INVESTIGATE,
            _end_of_local_day(investigate_day),
            investigate_day,
            f"{settings.investigate_working_days} working days after awareness on "
            f"{aware_day.isoformat()}",
        )
    ]
    if investigation_ended_at is None:
        return tuple(deadlines)
    ended_day = _local_date(investigation_ended_at)
    for milestone, days in (
        (Milestone.WRITTEN_SUMMARY, settings.summary_working_days),
        (Milestone.SAFETY_WORK, settings.safety_work_working_days),
        (Milestone.PREVENTATIVE_WORK_START, settings.preventative_start_working_days),
    ):
        due_day = calendar.add_working_days(ended_day, days)
        deadlines.append(
            Deadline(
                milestone,
                _end_of_local_day(due_day),
                due_day,
                f"{days} working days after the investigation ended on {ended_day.isoformat()}",
            )
        )
    physical_day = ended_day + timedelta(days=settings.preventative_physical_start.days)
    deadlines.append(
        Deadline(
            Milestone.PREVENTATIVE_WORK_PHYSICAL_START,
            _end_of_local_day(physical_day),
            physical_day,
            f"{settings.preventative_physical_start.days // 7} weeks after the investigation "
            f"ended on {ended_day.isoformat()}",
        )
    )
    return tuple(deadlines)


def emergency_deadlines(
    aware_at: datetime,
    settings: AwaabSettings = AwaabSettings(),
) -> tuple[Deadline, ...]:
    """Emergency hazards: investigate and make safe within 24 clock hours, any day."""
    if aware_at.tzinfo is None:
        raise ValueError("aware_at must be timezone-aware")
    hours = settings.emergency_period.total_seconds() / 3600
    return (
        Deadline(
            Milestone.EMERGENCY_MAKE_SAFE,
            (aware_at + settings.emergency_period).astimezone(UTC),
            None,
            f"{hours:g} hours after awareness at {aware_at.astimezone(UTC).isoformat()}",
        ),
    )


class DeadlineState(StrEnum):
    PENDING = "pending"
    MET = "met"
    LATE = "late"
    """Done, but after the deadline."""
    OVERDUE = "overdue"
    """Not done and the deadline has passed."""


@dataclass(frozen=True, slots=True)
class DeadlineStatus:
    deadline: Deadline
    state: DeadlineState
    completed_at: datetime | None


def deadline_status(
    deadlines: Iterable[Deadline],
    now: datetime,
    completed: Mapping[Milestone, datetime] | None = None,
) -> tuple[DeadlineStatus, ...]:
    """Where each deadline stands at ``now``, given when milestones were completed."""
    done = completed or {}
    statuses = []
    for deadline in deadlines:
        completed_at = done.get(deadline.milestone)
        if completed_at is not None:
            state = DeadlineState.MET if completed_at <= deadline.due_at else DeadlineState.LATE
        elif now > deadline.due_at:
            state = DeadlineState.OVERDUE
        else:
            state = DeadlineState.PENDING
        statuses.append(DeadlineStatus(deadline, state, completed_at))
    return tuple(statuses)


def overdue(
    deadlines: Iterable[Deadline],
    now: datetime,
    completed: Mapping[Milestone, datetime] | None = None,
) -> tuple[Deadline, ...]:
    """Deadlines passed at ``now`` with their milestone not yet completed."""
    return tuple(
        status.deadline
        for status in deadline_status(deadlines, now, completed)
        if status.state is DeadlineState.OVERDUE
    )


@dataclass(frozen=True, slots=True)
class ClockPolicy:
    """Which rules' conditions start the statutory clock: the council's decision.

    By default a condition pointing to a damp and mould, an excess cold (phase 2, in force
    from 2026) or an emergency hazard starts it in an occupied home, once its evidence reaches
    ``min_severity`` (``act``: persistence over days, not one evening over a design
    criterion); nothing starts it in void homes (no tenant, so no tenancy duty) unless
    ``void_homes`` is set. ``overrides`` maps a rule's condition name (e.g.
    ``"condensation_risk"``) to on or off for occupied homes.
    """

    hazards: frozenset[Hazard] = frozenset(
        {Hazard.DAMP_MOULD, Hazard.EXCESS_COLD, Hazard.EMERGENCY}
    )
    overrides: Mapping[str, bool] = field(default_factory=dict)
    void_homes: bool = False
    min_severity: Severity = Severity.ACT
    """Only evidence at this severity or above starts a clock: ``watch`` is advice (a single
    exceedance of a design criterion), ``act`` is persistence over days."""

    def starts_clock(self, condition: str, hazard: Hazard, *, void: bool) -> bool:
        if void and not self.void_homes:
            return False
        if condition in self.overrides:
            return self.overrides[condition]
        return hazard in self.hazards


def alert_deadlines(
    alert: Alert,
    *,
    calendar: WorkingDayCalendar,
    investigation_ended_at: datetime | None = None,
    settings: AwaabSettings = AwaabSettings(),
) -> tuple[Deadline, ...]:
    """The statutory deadlines of an alert whose clock has started; empty otherwise."""
    aware_at = alert.statutory_clock_started_at
    if aware_at is None:
        return ()
    if alert.hazard is Hazard.EMERGENCY:
        return emergency_deadlines(aware_at, settings)
    return significant_hazard_deadlines(
        aware_at,
        calendar=calendar,
        investigation_ended_at=investigation_ended_at,
        settings=settings,
    )
