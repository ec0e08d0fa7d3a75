"""Temperature rules for homes: cold occupied homes, void homes left unheated or near frost."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
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
class ColdHomeSettings(_MeanBelowSettings):
    """Occupied home colder than WHO's 18 °C on average over a day (*default*)."""

    limit_c: float = 18.0
    clear_c: float = 18.5
    severe_c: float | None = 16.0
    """Below 16 °C the respiratory and cardiovascular risks rise (HHSRS excess cold)."""
    window: timedelta = timedelta(hours=24)
    min_coverage: float = 0.75
    max_hold: timedelta = timedelta(hours=1)
    severity: Severity = Severity.ACT
    severe_severity: Severity = Severity.URGENT

    def __post_init__(self) -> None:
        self.validate()


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


class ColdHomeRule(_MeanBelowRule):
    condition: ClassVar[str] = "cold_home"
    alert_type: ClassVar[AlertType] = AlertType.EXCESS_COLD
    hazard: ClassVar[Hazard] = Hazard.EXCESS_COLD
    description: ClassVar[str] = "occupied home too cold"

    def __init__(self, context: RuleContext, settings: ColdHomeSettings | None = None) -> None:
        super().__init__(context, settings or ColdHomeSettings())


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
