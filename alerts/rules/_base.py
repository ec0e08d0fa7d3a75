"""What every rule shares: its context, event helpers, debouncing and time windows.

A rule is a small state machine fed one item at a time. It only ever looks at the items it
has been given and at times derived from them, never at the wall clock, so feeding a history
in one call ("backfill") or reading by reading ("live") yields the same events. Time-driven
decisions (a device that went quiet) are taken in :meth:`Rule.on_time` and stamped with the
deadline that passed, not with the time the check happened to run.
"""

from __future__ import annotations

import abc
from array import array
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import ClassVar, Literal

from alerts.events import (
    AlertType,
    ConditionEvent,
    EvidenceValue,
    Hazard,
    Severity,
    Transition,
)
from alerts.readings import Item

__all__ = ["Debounce", "Rule", "RuleContext", "WindowIntegral", "from_epoch", "to_epoch"]


def to_epoch(ts: datetime) -> float:
    return ts.timestamp()


def from_epoch(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def check_positive(name: str, value: float | timedelta) -> None:
    zero = timedelta(0) if isinstance(value, timedelta) else 0.0
    if value <= zero:  # type: ignore[operator]
        raise ValueError(f"{name} must be positive, got {value}")


@dataclass(frozen=True, slots=True)
class RuleContext:
    """Who a rule's events are about and whether its condition starts the Awaab's Law clock."""

    subject_id: str
    device_id: str
    starts_statutory_clock: bool = False
    clock_min_severity: Severity = Severity.ACT
    """Events below this severity never start the clock, whatever the rule."""


class Rule(abc.ABC):
    """Base of all rules: one condition per rule, on/off with a severity while on."""

    condition: ClassVar[str]
    alert_type: ClassVar[AlertType]
    hazard: ClassVar[Hazard] = Hazard.NONE
    reads_room: ClassVar[bool] = False
    """Judges the room from its readings, so is not given readings a stuck sensor repeats."""

    def __init__(self, context: RuleContext) -> None:
        self.context = context
        self.active = False
        self.severity: Severity | None = None
        self.since: datetime | None = None

    @abc.abstractmethod
    def on_item(self, item: Item) -> list[ConditionEvent]:
        """Consume the next item (already checked to be in time order)."""

    def on_time(self, now: datetime) -> list[ConditionEvent]:
        """Let time pass to ``now`` with no new item; most rules need no clock."""
        return []

    def _event(
        self,
        transition: Transition,
        *,
        at: datetime,
        since: datetime,
        severity: Severity,
        reason: str,
        evidence: Mapping[str, EvidenceValue],
    ) -> ConditionEvent:
        return ConditionEvent(
            subject_id=self.context.subject_id,
            device_id=self.context.device_id,
            condition=self.condition,
            alert_type=self.alert_type,
            transition=transition,
            at=at,
            since=since,
            severity=severity,
            reason=reason,
            hazard=self.hazard,
            starts_statutory_clock=self.context.starts_statutory_clock
            and severity >= self.context.clock_min_severity,
            evidence=ConditionEvent.freeze_evidence(evidence),
        )

    def _turn_on(
        self,
        *,
        at: datetime,
        since: datetime,
        severity: Severity,
        reason: str,
        evidence: Mapping[str, EvidenceValue],
    ) -> ConditionEvent:
        self.active = True
        self.severity = severity
        self.since = since
        return self._event(
            Transition.ON, at=at, since=since, severity=severity, reason=reason, evidence=evidence
        )

    def _update(
        self,
        *,
        at: datetime,
        severity: Severity,
        reason: str,
        evidence: Mapping[str, EvidenceValue],
    ) -> list[ConditionEvent]:
        """Report a severity change while on; nothing if the severity is unchanged."""
        if not self.active or severity == self.severity or self.since is None:
            return []
        self.severity = severity
        return [
            self._event(
                Transition.UPDATE,
                at=at,
                since=self.since,
                severity=severity,
                reason=reason,
                evidence=evidence,
            )
        ]

    def _turn_off(
        self, *, at: datetime, reason: str, evidence: Mapping[str, EvidenceValue]
    ) -> ConditionEvent:
        since = self.since if self.since is not None else at
        severity = self.severity if self.severity is not None else Severity.INFO
        self.active = False
        self.severity = None
        self.since = None
        return self._event(
            Transition.OFF, at=at, since=since, severity=severity, reason=reason, evidence=evidence
        )

    def _occurred(
        self,
        *,
        at: datetime,
        since: datetime,
        severity: Severity,
        reason: str,
        evidence: Mapping[str, EvidenceValue],
    ) -> ConditionEvent:
        return self._event(
            Transition.OCCURRED,
            at=at,
            since=since,
            severity=severity,
            reason=reason,
            evidence=evidence,
        )


class Debounce:
    """Hysteresis in time: a state flips only after its condition has held long enough.

    ``on`` needs ``on_readings`` consecutive readings meeting the on-condition spanning at
    least ``on_duration``; ``off`` likewise with the off-condition. Readings meeting neither
    reset the pending run, so a single noisy reading can neither open nor close.
    """

    def __init__(
        self,
        *,
        on_readings: int = 2,
        on_duration: timedelta = timedelta(0),
        off_readings: int = 2,
        off_duration: timedelta = timedelta(0),
    ) -> None:
        if on_readings < 1 or off_readings < 1:
            raise ValueError("on_readings and off_readings must be at least 1")
        self.on_readings = on_readings
        self.on_duration = on_duration
        self.off_readings = off_readings
        self.off_duration = off_duration
        self.active = False
        self.pending_since: datetime | None = None
        self._pending_count = 0

    def update(
        self, ts: datetime, on_condition: bool, off_condition: bool
    ) -> Literal["on", "off"] | None:
        wanted = off_condition if self.active else on_condition
        if not wanted:
            self.pending_since = None
            self._pending_count = 0
            return None
        if self.pending_since is None:
            self.pending_since = ts
            self._pending_count = 0
        self._pending_count += 1
        readings = self.off_readings if self.active else self.on_readings
        duration = self.off_duration if self.active else self.on_duration
        if self._pending_count >= readings and ts - self.pending_since >= duration:
            self.active = not self.active
            self.pending_since = None
            self._pending_count = 0
            return "on" if self.active else "off"
        return None


class WindowIntegral:
    """Time-weighted sums of a held value over a trailing window, O(1) amortised per sample.

    Each sample is a span ``[start, end]`` carrying a value (a reading held back to the
    previous reading, capped so a long silence is not mistaken for data). ``totals(now)``
    gives the seconds covered and the integral of the value over ``[now - window, now]``;
    the mean is their ratio, and with values 0/1 the integral is "time above a threshold".

    Spans live in one flat array of doubles (start, end, value, start, ...) from ``_head``
    on: a month of 15-minute spans is 70 KB there against 300 KB as tuples in a deque, and
    every home keeps several such windows in memory and in its checkpoint.
    """

    _COMPACT_AFTER = 3 * 256  # dropped doubles kept before the array is shifted down

    def __init__(self, window: timedelta) -> None:
        check_positive("window", window)
        self.window_s = window.total_seconds()
        self._spans = array("d")
        self._head = 0
        self._covered_s = 0.0
        self._integral = 0.0

    def add(self, start_s: float, end_s: float, value: float) -> None:
        if end_s <= start_s:
            return
        spans = self._spans
        spans.extend((start_s, end_s, value))
        self._covered_s += end_s - start_s
        self._integral += (end_s - start_s) * value
        # Evict spans that ended before the window (the one just added never has).
        cutoff = end_s - self.window_s
        head = self._head
        while spans[head + 1] <= cutoff:
            start, end = spans[head], spans[head + 1]
            self._covered_s -= end - start
            self._integral -= (end - start) * spans[head + 2]
            head += 3
        if head >= self._COMPACT_AFTER and 2 * head >= len(spans):
            del spans[:head]
            head = 0
        self._head = head

    def totals(self, now_s: float) -> tuple[float, float]:
        """(seconds covered, integral) within the window ending at ``now_s``.

        Does not mutate, so a query at any time leaves later results unchanged.
        """
        cutoff = now_s - self.window_s
        covered = self._covered_s
        integral = self._integral
        spans = self._spans
        for i in range(self._head, len(spans), 3):
            start, end, value = spans[i], spans[i + 1], spans[i + 2]
            if end <= cutoff:
                covered -= end - start
                integral -= (end - start) * value
                continue
            if start < cutoff:
                covered -= cutoff - start
                integral -= (cutoff - start) * value
            break
        return max(covered, 0.0), integral

    def coverage(self, now_s: float) -> float:
        return self.totals(now_s)[0] / self.window_s

    def mean(self, now_s: float) -> float | None:
        covered, integral = self.totals(now_s)
        return integral / covered if covered > 0 else None

    def first_start(self, now_s: float, predicate_value: float = 0.0) -> float | None:
        """Start of the earliest span in the window whose value exceeds ``predicate_value``."""
        cutoff = now_s - self.window_s
        spans = self._spans
        for i in range(self._head, len(spans), 3):
            if spans[i + 1] <= cutoff:
                continue
            if spans[i + 2] > predicate_value:
                return max(spans[i], cutoff)
        return None


class HeldSpans:
    """Turns successive sample times into held spans: ``[max(prev, ts - max_hold), ts]``."""

    def __init__(self, max_hold: timedelta) -> None:
        check_positive("max_hold", max_hold)
        self.max_hold_s = max_hold.total_seconds()
        self.last_s: float | None = None

    def span(self, ts: datetime) -> tuple[float, float] | None:
        now_s = to_epoch(ts)
        previous = self.last_s
        self.last_s = now_s
        if previous is None:
            return None
        return max(previous, now_s - self.max_hold_s), now_s
