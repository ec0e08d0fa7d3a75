"""Temperature rules for homes: cold occupied homes, void homes left unheated or near frost."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import ClassVar

from alerts.events import AlertType, ConditionEvent, EvidenceValue, Hazard, Severity
from alerts.readings import Item
from alerts.rules._base import (
    Debounce,
    HeldSpans,
    Rule,
    RuleContext,
    WindowIntegral,
    check_positive,
    from_epoch,
)
from firmware_contracts import Reading

__all__ = [
    "ColdHomeRule",
    "ColdHomeSettings",
    "VoidFrostRule",
    "VoidFrostSettings",
    "VoidHeatingOffRule",
    "VoidHeatingOffSettings",
]

_HOUR = 3600.0


@dataclass(frozen=True, slots=True)
class _MeanBelowSettings:
    limit_c: float
    clear_c: float
    severe_c: float | None
    window: timedelta
    min_coverage: float
    max_hold: timedelta
    severity: Severity
    severe_severity: Severity

    def validate(self) -> None:
        check_positive("window", self.window)
        check_positive("max_hold", self.max_hold)
        if self.clear_c <= self.limit_c:
            raise ValueError("clear_c must be above limit_c (hysteresis)")
        if self.severe_c is not None and self.severe_c >= self.limit_c:
            raise ValueError("severe_c must be below limit_c")
        if not 0.0 < self.min_coverage <= 1.0:
            raise ValueError("min_coverage must be in (0, 1]")


@dataclass(frozen=True, slots=True)
class VoidHeatingOffSettings(_MeanBelowSettings):
    """Void home below the 12 °C background heat councils keep on (*default*; 10-15 °C)."""

    limit_c: float = 12.0
    clear_c: float = 13.0
    severe_c: float | None = None
    window: timedelta = timedelta(hours=24)
    min_coverage: float = 0.75
    max_hold: timedelta = timedelta(hours=1)
    severity: Severity = Severity.ACT
    severe_severity: Severity = Severity.ACT

    def __post_init__(self) -> None:
        self.validate()


class _MeanBelowRule(Rule):
    """Time-weighted mean temperature over a trailing window below a limit."""

    description: ClassVar[str]
    reads_room: ClassVar[bool] = True

    def __init__(self, context: RuleContext, settings: _MeanBelowSettings) -> None:
        super().__init__(context)
        self.settings = settings
        self._held = HeldSpans(settings.max_hold)
        self._mean = WindowIntegral(settings.window)
        self._below = WindowIntegral(settings.window)

    def on_item(self, item: Item) -> list[ConditionEvent]:
        if not isinstance(item, Reading) or item.temp_c is None:
            return []
        span = self._held.span(item.ts)
        if span is None:
            return []
        s = self.settings
        self._mean.add(*span, item.temp_c)
        self._below.add(*span, 1.0 if item.temp_c < s.limit_c else 0.0)
        now_s = span[1]
        covered_s, integral = self._mean.totals(now_s)
        if covered_s < s.min_coverage * s.window.total_seconds():
            return []  # too little data to judge either way: hold the current state
        mean = integral / covered_s
        severe = s.severe_c is not None and mean < s.severe_c
        severity = s.severe_severity if severe else s.severity
        if not self.active:
            if mean < s.limit_c:
                first = self._below.first_start(now_s)
                since = from_epoch(first) if first is not None else item.ts
                return [
                    self._turn_on(
                        at=item.ts,
                        since=since,
                        severity=severity,
                        reason=self._reason(mean),
                        evidence=self._evidence(item.temp_c, mean, covered_s),
                    )
                ]
            return []
        assert self.severity is not None
        if severity > self.severity:
            return self._update(
                at=item.ts,
                severity=severity,
                reason=self._reason(mean),
                evidence=self._evidence(item.temp_c, mean, covered_s),
            )
        if mean >= s.clear_c:
            return [
                self._turn_off(
                    at=item.ts,
                    reason=f"mean temperature {mean:.1f} C back above {s.clear_c:g} C",
                    evidence=self._evidence(item.temp_c, mean, covered_s),
                )
            ]
        return []

    def _reason(self, mean: float) -> str:
        s = self.settings
        return (
            f"{self.description}: mean temperature {mean:.1f} C over the last "
            f"{s.window.total_seconds() / _HOUR:g} h is below {s.limit_c:g} C"
        )

    def _evidence(self, temp_c: float, mean: float, covered_s: float) -> dict[str, EvidenceValue]:
        s = self.settings
        return {
            "temp_c": temp_c,
            "mean_temp_c": round(mean, 2),
            "window_hours": s.window.total_seconds() / _HOUR,
            "limit_c": s.limit_c,
            "coverage": round(covered_s / s.window.total_seconds(), 3),
        }


class VoidHeatingOffRule(_MeanBelowRule):
    condition: ClassVar[str] = "void_heating_off"
    alert_type: ClassVar[AlertType] = AlertType.VOID_HEATING_OFF
    hazard: ClassVar[Hazard] = Hazard.NONE
    description: ClassVar[str] = "void home unheated"

    def __init__(
        self, context: RuleContext, settings: VoidHeatingOffSettings | None = None
    ) -> None:
        super().__init__(context, settings or VoidHeatingOffSettings())


@dataclass(frozen=True, slots=True)
class VoidFrostSettings:
    """Frost risk: below 5 °C boiler frost protection should already be firing."""

    limit_c: float = 5.0
    clear_c: float = 6.0
    severe_c: float = 1.0
    """Near 0 °C water in pipes freezes: burst pipes are imminent."""
    on_readings: int = 2
    on_duration: timedelta = timedelta(minutes=30)
    off_readings: int = 2
    off_duration: timedelta = timedelta(hours=2)
    severity: Severity = Severity.URGENT
    severe_severity: Severity = Severity.EMERGENCY

    def __post_init__(self) -> None:
        if not self.severe_c < self.limit_c < self.clear_c:
            raise ValueError("need severe_c < limit_c < clear_c")


class VoidFrostRule(Rule):
    condition: ClassVar[str] = "void_frost"
    reads_room: ClassVar[bool] = True
    alert_type: ClassVar[AlertType] = AlertType.FROST_RISK
    hazard: ClassVar[Hazard] = Hazard.NONE

    def __init__(self, context: RuleContext, settings: VoidFrostSettings | None = None) -> None:
        super().__init__(context)
        self.settings = settings or VoidFrostSettings()
        s = self.settings
        self._debounce = Debounce(
            on_readings=s.on_readings,
            on_duration=s.on_duration,
            off_readings=s.off_readings,
            off_duration=s.off_duration,
        )

    def on_item(self, item: Item) -> list[ConditionEvent]:
        if not isinstance(item, Reading) or item.temp_c is None:
            return []
        s = self.settings
        temp = item.temp_c
        pending_since = self._debounce.pending_since
        flip = self._debounce.update(item.ts, temp < s.limit_c, temp >= s.clear_c)
        severity = s.severe_severity if temp < s.severe_c else s.severity
        if flip is None and not (
            self.active and self.severity is not None and severity > self.severity
        ):
            return []
        evidence: dict[str, EvidenceValue] = {"temp_c": temp, "limit_c": s.limit_c}
        if flip == "on":
            return [
                self._turn_on(
                    at=item.ts,
                    since=pending_since or item.ts,
                    severity=severity,
                    reason=f"void home at {temp:.1f} C, below {s.limit_c:g} C: frost and "
                    "burst-pipe risk",
                    evidence=evidence,
                )
            ]
        if flip == "off":
            return [
                self._turn_off(
                    at=item.ts,
                    reason=f"temperature back above {s.clear_c:g} C",
                    evidence=evidence,
                )
            ]
        if self.active and self.severity is not None and severity > self.severity:
            return self._update(
                at=item.ts,
                severity=severity,
                reason=f"void home at {temp:.1f} C, below {s.severe_c:g} C: pipes may freeze",
                evidence=evidence,
            )
        return []


@dataclass(frozen=True, slots=True)
class ColdHomeSettings:
    """Excess cold in an occupied home, judged on what it reaches when heated, over days.

    HHSRS excess cold is about the dwelling and its heating, not a night with the heating off:
    a day counts as *heated* when its temperature rises by ``heated_rise_c`` within three
    hours (heating lifts a room by degrees within hours; without it a room follows the weather
    slowly),
    and the home is cold when its heated peak stays below WHO's 18 °C (*default*) on
    ``cold_days`` of the last ``days`` days; below 16 °C (``severe_c``) the risks to health
    rise. A home unheated for ``unheated_days`` days running is only a ``watch``: a week away
    looks the same as a home that cannot afford to heat, and a visit or a call tells which.
    """

    limit_c: float = 18.0
    severe_c: float = 16.0
    days: int = 7
    cold_days: int = 4
    heated_rise_c: float = 2.0
    unheated_days: int = 3
    min_readings_per_day: int = 12
    """Fewer readings in a day (an outage) and the day is not judged."""
    severity: Severity = Severity.ACT
    severe_severity: Severity = Severity.URGENT
    unheated_severity: Severity = Severity.WATCH

    def __post_init__(self) -> None:
        if self.severe_c >= self.limit_c:
            raise ValueError("severe_c must be below limit_c")
        if not 1 <= self.cold_days <= self.days:
            raise ValueError("cold_days must be between 1 and days")
        if not 1 <= self.unheated_days <= self.days:
            raise ValueError("unheated_days must be between 1 and days")
        check_positive("heated_rise_c", self.heated_rise_c)


@dataclass(frozen=True, slots=True)
class _Day:
    ordinal: int
    low_c: float
    high_c: float
    rise_c: float
    """The largest rise within ``RISE_WITHIN``: heating lifts a room fast, the weather slowly."""


RISE_WITHIN = timedelta(hours=3)


class ColdHomeRule(Rule):
    condition: ClassVar[str] = "cold_home"
    reads_room: ClassVar[bool] = True
    alert_type: ClassVar[AlertType] = AlertType.EXCESS_COLD
    hazard: ClassVar[Hazard] = Hazard.EXCESS_COLD

    def __init__(self, context: RuleContext, settings: ColdHomeSettings | None = None) -> None:
        super().__init__(context)
        self.settings = settings or ColdHomeSettings()
        self._day: int | None = None
        self._low = self._high = self._rise = 0.0
        self._count = 0
        self._days: list[_Day] = []
        self._recent: list[tuple[float, float]] = []  # (epoch s, temp) over RISE_WITHIN

    def on_item(self, item: Item) -> list[ConditionEvent]:
        if not isinstance(item, Reading) or item.temp_c is None:
            return []
        day = item.ts.toordinal()
        events: list[ConditionEvent] = []
        if self._day is not None and day != self._day:
            events = self._close_day(item)
        if self._day != day:
            self._day, self._low, self._high, self._count = day, item.temp_c, item.temp_c, 0
            self._rise = 0.0
        now = item.ts.timestamp()
        self._recent = [(t, v) for t, v in self._recent if t >= now - RISE_WITHIN.total_seconds()]
        if self._recent:
            self._rise = max(self._rise, item.temp_c - min(v for _, v in self._recent))
        self._recent.append((now, item.temp_c))
        self._low = min(self._low, item.temp_c)
        self._high = max(self._high, item.temp_c)
        self._count += 1
        return events

    def _close_day(self, item: Reading) -> list[ConditionEvent]:
        s = self.settings
        assert self._day is not None
        if self._count >= s.min_readings_per_day:
            self._days.append(_Day(self._day, self._low, self._high, self._rise))
        # Only the last ``days`` calendar days count, whatever was missed in between.
        self._days = [d for d in self._days if d.ordinal > item.ts.toordinal() - 1 - s.days]
        return self._judge(item)

    def _verdict(self) -> tuple[Severity | None, str]:
        s = self.settings
        heated = [d for d in self._days if d.rise_c >= s.heated_rise_c]
        cold = [d for d in heated if d.high_c < s.limit_c]
        severe = [d for d in heated if d.high_c < s.severe_c]
        if len(severe) >= s.cold_days:
            return s.severe_severity, self._cold_reason(severe, s.severe_c)
        if len(cold) >= s.cold_days:
            return s.severity, self._cold_reason(cold, s.limit_c)
        unheated_run = 0
        for d in reversed(self._days):
            if d.rise_c >= s.heated_rise_c or d.high_c >= s.limit_c:
                break
            unheated_run += 1
        if unheated_run >= s.unheated_days:
            return s.unheated_severity, (
                f"no heating seen for {unheated_run} days and below {s.limit_c:g} C: "
                "away, heating broken, or unable to heat?"
            )
        return None, ""

    def _cold_reason(self, days: list[_Day], limit: float) -> str:
        peaks = ", ".join(f"{d.high_c:.1f}" for d in days)
        return (
            f"heated but never reaching {limit:g} C on {len(days)} of the last "
            f"{self.settings.days} days (daily peaks {peaks} C)"
        )

    def _evidence(self) -> dict[str, EvidenceValue]:
        s = self.settings
        return {
            "days_judged": len(self._days),
            "daily_peaks_c": ", ".join(f"{d.high_c:.1f}" for d in self._days),
            "daily_lows_c": ", ".join(f"{d.low_c:.1f}" for d in self._days),
            "limit_c": s.limit_c,
            "heated_rise_c": s.heated_rise_c,
        }

    def _judge(self, item: Reading) -> list[ConditionEvent]:
        severity, reason = self._verdict()
        if severity is None:
            if self.active:
                return [
                    self._turn_off(
                        at=item.ts,
                        reason="heated days reach the limit again",
                        evidence=self._evidence(),
                    )
                ]
            return []
        if not self.active:
            first = self._days[0].ordinal if self._days else item.ts.toordinal()
            since = datetime.combine(date.fromordinal(first), time(), UTC)
            return [
                self._turn_on(
                    at=item.ts,
                    since=since,
                    severity=severity,
                    reason=reason,
                    evidence=self._evidence(),
                )
            ]
        return self._update(at=item.ts, severity=severity, reason=reason, evidence=self._evidence())
