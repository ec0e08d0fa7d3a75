"""Poor ventilation from CO2, where a sensor reports it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import ClassVar

from alerts.events import AlertType, ConditionEvent, EvidenceValue, Hazard, Severity
from alerts.readings import Item
from alerts.rules._base import Debounce, HeldSpans, Rule, RuleContext, WindowIntegral
from firmware_contracts import Reading

__all__ = ["Co2Rule", "Co2Settings"]


@dataclass(frozen=True, slots=True)
class Co2Settings:
    """Hourly mean CO2 as a ventilation proxy (*defaults*: 1500 ppm is a common action level
    for homes; outdoor air is about 420 ppm)."""

    limit_ppm: float = 1500.0
    clear_ppm: float = 1200.0
    high_ppm: float = 2500.0
    window: timedelta = timedelta(hours=1)
    min_coverage: float = 0.5
    max_hold: timedelta = timedelta(hours=1)
    confirm_readings: int = 2
    clear_after: timedelta = timedelta(hours=24)
    """Clears only after a whole day at or below ``clear_ppm``: a bedroom that is stuffy every
    night is one ventilation problem, not one alert a night."""
    severity: Severity = Severity.WATCH
    high_severity: Severity = Severity.ACT

    def __post_init__(self) -> None:
        if not self.clear_ppm < self.limit_ppm <= self.high_ppm:
            raise ValueError("need clear_ppm < limit_ppm <= high_ppm")


class Co2Rule(Rule):
    condition: ClassVar[str] = "poor_ventilation"
    reads_room: ClassVar[bool] = True
    alert_type: ClassVar[AlertType] = AlertType.POOR_VENTILATION
    hazard: ClassVar[Hazard] = Hazard.NONE

    def __init__(self, context: RuleContext, settings: Co2Settings | None = None) -> None:
        super().__init__(context)
        self.settings = settings or Co2Settings()
        s = self.settings
        self._held = HeldSpans(s.max_hold)
        self._mean = WindowIntegral(s.window)
        self._debounce = Debounce(
            on_readings=s.confirm_readings,
            off_readings=s.confirm_readings,
            off_duration=s.clear_after,
        )

    def on_item(self, item: Item) -> list[ConditionEvent]:
        if not isinstance(item, Reading) or item.co2_ppm is None:
            return []
        span = self._held.span(item.ts)
        if span is None:
            return []
        s = self.settings
        self._mean.add(*span, item.co2_ppm)
        covered_s, integral = self._mean.totals(span[1])
        if covered_s < s.min_coverage * s.window.total_seconds():
            return []
        mean = integral / covered_s
        pending_since = self._debounce.pending_since
        flip = self._debounce.update(item.ts, mean >= s.limit_ppm, mean <= s.clear_ppm)
        if flip is None and not self.active:
            return []
        evidence: dict[str, EvidenceValue] = {
            "co2_ppm": item.co2_ppm,
            "mean_co2_ppm": round(mean, 1),
            "limit_ppm": s.limit_ppm,
        }
        severity = s.high_severity if mean >= s.high_ppm else s.severity
        reason = f"hourly mean CO2 {mean:.0f} ppm at or above {s.limit_ppm:g} ppm"
        if flip == "on":
            return [
                self._turn_on(
                    at=item.ts,
                    since=pending_since or item.ts,
                    severity=severity,
                    reason=reason,
                    evidence=evidence,
                )
            ]
        if flip == "off":
            return [
                self._turn_off(
                    at=item.ts,
                    reason=f"hourly mean CO2 at or below {s.clear_ppm:g} ppm for "
                    f"{s.clear_after.total_seconds() / 3600:g} h",
                    evidence=evidence,
                )
            ]
        if self.active and self.severity is not None and severity > self.severity:
            return self._update(at=item.ts, severity=severity, reason=reason, evidence=evidence)
        return []
