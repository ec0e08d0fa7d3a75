"""Suspected leak: humidity jumps and stays up while the temperature holds steady.

A shower or a kettle also lifts RH quickly, but warms the room and fades within an hour or
two; escaping water keeps the air wet without warming it. So the rule wants a fast rise at
steady temperature that is still there hours later.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import ClassVar

from alerts.events import AlertType, ConditionEvent, EvidenceValue, Hazard, Severity
from alerts.readings import Item
from alerts.rules._base import Debounce, Rule, RuleContext, check_positive
from firmware_contracts import Reading

__all__ = ["SuspectedLeakRule", "SuspectedLeakSettings"]


@dataclass(frozen=True, slots=True)
class SuspectedLeakSettings:
    rise_pct: float = 15.0
    """RH rise (percentage points) over the lowest value in ``rise_within``."""
    rise_within: timedelta = timedelta(hours=1)
    max_temp_change_c: float = 1.0
    """Temperature range allowed while RH rises."""
    persist: timedelta = timedelta(hours=3)
    persist_margin_pct: float = 10.0
    """RH must stay this far above the pre-rise baseline throughout ``persist``."""
    persist_max_temp_range_c: float = 2.0
    clear_margin_pct: float = 5.0
    clear_duration: timedelta = timedelta(hours=6)
    severity: Severity = Severity.ACT

    def __post_init__(self) -> None:
        check_positive("rise_within", self.rise_within)
        check_positive("persist", self.persist)
        check_positive("clear_duration", self.clear_duration)
        if not 0 < self.clear_margin_pct < self.persist_margin_pct <= self.rise_pct:
            raise ValueError("need 0 < clear_margin_pct < persist_margin_pct <= rise_pct")


@dataclass(slots=True)
class _Pending:
    start: datetime
    baseline_rh_pct: float
    temp_min_c: float
    temp_max_c: float


class SuspectedLeakRule(Rule):
    condition: ClassVar[str] = "suspected_leak"
    alert_type: ClassVar[AlertType] = AlertType.SUSPECTED_LEAK
    hazard: ClassVar[Hazard] = Hazard.NONE

    def __init__(self, context: RuleContext, settings: SuspectedLeakSettings | None = None) -> None:
        super().__init__(context)
        self.settings = settings or SuspectedLeakSettings()
        self._recent: deque[tuple[datetime, float, float]] = deque()
        self._pending: _Pending | None = None
        self._baseline_rh_pct: float | None = None
        self._clear = Debounce(
            on_readings=1, off_readings=2, off_duration=self.settings.clear_duration
        )

    def on_item(self, item: Item) -> list[ConditionEvent]:
        if not isinstance(item, Reading) or item.rh_pct is None or item.temp_c is None:
            return []
        s = self.settings
        ts, rh, temp = item.ts, item.rh_pct, item.temp_c
        self._recent.append((ts, rh, temp))
        while self._recent and self._recent[0][0] < ts - s.rise_within:
            self._recent.popleft()
        if self.active:
            assert self._baseline_rh_pct is not None
            baseline = self._baseline_rh_pct
            flip = self._clear.update(ts, False, rh <= baseline + s.clear_margin_pct)
            if flip == "off":
                self._baseline_rh_pct = None
                return [
                    self._turn_off(
                        at=ts,
                        reason=f"RH back within {s.clear_margin_pct:g} %RH of the pre-rise "
                        f"{baseline:.1f} % for {s.clear_duration.total_seconds() / 3600:g} h",
                        evidence={"rh_pct": rh, "baseline_rh_pct": baseline},
                    )
                ]
            return []
        pending = self._pending
        if pending is not None:
            pending.temp_min_c = min(pending.temp_min_c, temp)
            pending.temp_max_c = max(pending.temp_max_c, temp)
            held = rh >= pending.baseline_rh_pct + s.persist_margin_pct
            steady = pending.temp_max_c - pending.temp_min_c <= s.persist_max_temp_range_c
            if not (held and steady):
                self._pending = None
            elif ts - pending.start >= s.persist:
                self._pending = None
                self._baseline_rh_pct = pending.baseline_rh_pct
                self._clear = Debounce(on_readings=1, off_readings=2, off_duration=s.clear_duration)
                self._clear.active = True
                evidence: dict[str, EvidenceValue] = {
                    "rh_pct": rh,
                    "baseline_rh_pct": pending.baseline_rh_pct,
                    "temp_c": temp,
                    "temp_range_c": round(pending.temp_max_c - pending.temp_min_c, 2),
                    "hours_elevated": round((ts - pending.start).total_seconds() / 3600, 2),
                }
                return [
                    self._turn_on(
                        at=ts,
                        since=pending.start,
                        severity=s.severity,
                        reason=f"RH rose from {pending.baseline_rh_pct:.1f} % to {rh:.1f} % at "
                        f"a steady {temp:.1f} C and stayed up for "
                        f"{(ts - pending.start).total_seconds() / 3600:.1f} h",
                        evidence=evidence,
                    )
                ]
            return []
        start_ts, baseline, _ = min(self._recent, key=lambda entry: entry[1])
        temps = [entry[2] for entry in self._recent]
        if rh - baseline >= s.rise_pct and max(temps) - min(temps) <= s.max_temp_change_c:
            self._pending = _Pending(start_ts, baseline, min(temps), max(temps))
        return []
