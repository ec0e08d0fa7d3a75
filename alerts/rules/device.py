"""Device health rules for every sensor: offline, battery low, lost messages; for environment
sensors, readings frozen at one value."""

from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import ClassVar

from alerts.events import AlertType, ConditionEvent, EvidenceValue, Severity
from alerts.readings import Item
from alerts.rules._base import Debounce, Rule, RuleContext, check_positive
from firmware_contracts import Reading

__all__ = [
    "BatteryLowRule",
    "BatteryLowSettings",
    "FrozenReadingsRule",
    "FrozenReadingsSettings",
    "OfflineRule",
    "OfflineSettings",
    "SequenceGapRule",
    "SequenceGapSettings",
]


@dataclass(frozen=True, slots=True)
class OfflineSettings:
    """Offline after ``missed_intervals`` expected reports with nothing (*default* 4 x 15 min).

    Four, not one: LoRaWAN uplinks are lost now and then without anything being wrong.
    """

    expected_interval: timedelta = timedelta(minutes=15)
    missed_intervals: float = 4.0
    severity: Severity = Severity.WATCH

    def __post_init__(self) -> None:
        check_positive("expected_interval", self.expected_interval)
        if self.missed_intervals < 1:
            raise ValueError("missed_intervals must be at least 1")

    @property
    def silence(self) -> timedelta:
        return self.expected_interval * self.missed_intervals


class OfflineRule(Rule):
    """No reading for longer than ``silence``; back online at the next reading.

    Going offline changes nothing else: the other rules keep whatever state they had, so a
    hazard that was open stays open until readings show it has cleared.
    """

    condition: ClassVar[str] = "device_offline"
    alert_type: ClassVar[AlertType] = AlertType.DEVICE_OFFLINE

    def __init__(self, context: RuleContext, settings: OfflineSettings | None = None) -> None:
        super().__init__(context)
        self.settings = settings or OfflineSettings()
        self.last_seen: datetime | None = None

    def on_time(self, now: datetime) -> list[ConditionEvent]:
        if self.active or self.last_seen is None:
            return []
        deadline = self.last_seen + self.settings.silence
        if now <= deadline:
            return []
        return [
            self._turn_on(
                at=deadline,
                since=self.last_seen,
                severity=self.settings.severity,
                reason=f"no reading since {self.last_seen.isoformat()}, "
                f"{self.settings.missed_intervals:g} expected intervals of "
                f"{self.settings.expected_interval.total_seconds() / 60:g} min",
                evidence={
                    "last_seen": self.last_seen.isoformat(),
                    "expected_interval_s": self.settings.expected_interval.total_seconds(),
                    "missed_intervals": self.settings.missed_intervals,
                },
            )
        ]

    def on_item(self, item: Item) -> list[ConditionEvent]:
        if not isinstance(item, Reading):
            return []
        previous = self.last_seen
        self.last_seen = item.ts
        if not self.active:
            return []
        silent_h = 0.0 if previous is None else (item.ts - previous).total_seconds() / 3600
        return [
            self._turn_off(
                at=item.ts,
                reason=f"reading received after {silent_h:.1f} h of silence",
                evidence={"silent_hours": round(silent_h, 3)},
            )
        ]


@dataclass(frozen=True, slots=True)
class BatteryLowSettings:
    """Thresholds for 3.6 V lithium thionyl chloride cells, common in LoRaWAN sensors
    (*defaults*: their voltage stays flat and falls off a cliff near end of life)."""

    low_v: float = 3.3
    critical_v: float = 3.1
    replaced_v: float = 3.45
    confirm_readings: int = 3
    """Radio transmissions dip the voltage briefly: one low reading is not a flat battery."""
    severity: Severity = Severity.WATCH
    critical_severity: Severity = Severity.ACT

    def __post_init__(self) -> None:
        if not self.critical_v < self.low_v < self.replaced_v:
            raise ValueError("need critical_v < low_v < replaced_v")
        if self.confirm_readings < 1:
            raise ValueError("confirm_readings must be at least 1")


class BatteryLowRule(Rule):
    condition: ClassVar[str] = "battery_low"
    alert_type: ClassVar[AlertType] = AlertType.BATTERY_LOW

    def __init__(self, context: RuleContext, settings: BatteryLowSettings | None = None) -> None:
        super().__init__(context)
        self.settings = settings or BatteryLowSettings()
        n = self.settings.confirm_readings
        self._debounce = Debounce(on_readings=n, off_readings=n)
        self._recent: deque[float] = deque(maxlen=n)

    def on_item(self, item: Item) -> list[ConditionEvent]:
        if not isinstance(item, Reading) or item.battery_v is None:
            return []
        s = self.settings
        volts = item.battery_v
        self._recent.append(volts)
        pending_since = self._debounce.pending_since
        flip = self._debounce.update(item.ts, volts <= s.low_v, volts >= s.replaced_v)
        if flip is None and not self.active:
            return []
        typical = statistics.median(self._recent)
        evidence: dict[str, EvidenceValue] = {
            "battery_v": volts,
            "median_v": round(typical, 3),
            "low_v": s.low_v,
            "critical_v": s.critical_v,
        }
        severity = s.critical_severity if typical <= s.critical_v else s.severity
        reason = f"battery {typical:.2f} V at or below {s.low_v:g} V"
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
                    reason=f"battery {typical:.2f} V: replaced or recovered",
                    evidence=evidence,
                )
            ]
        if self.active and self.severity is not None and severity > self.severity:
            return self._update(
                at=item.ts,
                severity=severity,
                reason=f"battery {typical:.2f} V at or below {s.critical_v:g} V: replace now",
                evidence=evidence,
            )
        return []


@dataclass(frozen=True, slots=True)
class SequenceGapSettings:
    """Lost uplinks, from gaps in the device's message counter."""

    window: timedelta = timedelta(hours=24)
    modulus: int = 65536
    """LoRaWAN frame counters as reported by most decoders wrap at 16 bits."""
    loss_ratio: float = 0.2
    min_lost: int = 3
    clear_loss_ratio: float = 0.05
    max_burst: int = 8
    """A jump losing more messages than this is an outage, which the offline rule reports;
    this rule is about steady, intermittent loss (weak signal, failing radio)."""
    severity: Severity = Severity.WATCH

    def __post_init__(self) -> None:
        check_positive("window", self.window)
        if self.max_burst < 1:
            raise ValueError("max_burst must be at least 1")
        if self.modulus < 2:
            raise ValueError("modulus must be at least 2")
        if not 0.0 <= self.clear_loss_ratio < self.loss_ratio <= 1.0:
            raise ValueError("need 0 <= clear_loss_ratio < loss_ratio <= 1")


class SequenceGapRule(Rule):
    """Share of messages lost in the window, from ``seq`` jumps.

    A jump of more than half the counter range is a reset (reboot, rejoin), not a loss.
    """

    condition: ClassVar[str] = "sequence_gaps"
    alert_type: ClassVar[AlertType] = AlertType.SEQUENCE_GAPS

    def __init__(self, context: RuleContext, settings: SequenceGapSettings | None = None) -> None:
        super().__init__(context)
        self.settings = settings or SequenceGapSettings()
        self._last_seq: int | None = None
        self._window: deque[tuple[datetime, int]] = deque()
        self._lost = 0
        self._received = 0
        self.resets = 0
        self.outages = 0

    def on_item(self, item: Item) -> list[ConditionEvent]:
        if not isinstance(item, Reading) or item.seq is None:
            return []
        s = self.settings
        lost = 0
        if self._last_seq is not None:
            step = (item.seq - self._last_seq) % s.modulus
            if step == 0:
                return []  # a duplicate uplink (retransmission): nothing new
            if step > s.modulus // 2:
                self.resets += 1
            elif step - 1 > s.max_burst:
                self.outages += 1
            else:
                lost = step - 1
        self._last_seq = item.seq
        self._window.append((item.ts, lost))
        self._received += 1
        self._lost += lost
        while self._window and self._window[0][0] <= item.ts - s.window:
            _, old_lost = self._window.popleft()
            self._received -= 1
            self._lost -= old_lost
        expected = self._received + self._lost
        ratio = self._lost / expected if expected else 0.0
        if not self.active and ratio >= s.loss_ratio and self._lost >= s.min_lost:
            first = next((ts for ts, n in self._window if n > 0), item.ts)
            return [
                self._turn_on(
                    at=item.ts,
                    since=first,
                    severity=s.severity,
                    reason=f"{self._lost} of {expected} messages lost in the last "
                    f"{s.window.total_seconds() / 3600:g} h ({ratio:.0%})",
                    evidence=self._evidence(ratio),
                )
            ]
        if self.active and ratio <= s.clear_loss_ratio:
            return [
                self._turn_off(
                    at=item.ts,
                    reason=f"message loss down to {ratio:.0%}",
                    evidence=self._evidence(ratio),
                )
            ]
        return []

    def _evidence(self, ratio: float) -> dict[str, EvidenceValue]:
        return {
            "lost": self._lost,
            "received": self._received,
            "loss_ratio": round(ratio, 4),
            "window_hours": self.settings.window.total_seconds() / 3600,
            "counter_resets": self.resets,
            "outages_ignored": self.outages,
        }


@dataclass(frozen=True, slots=True)
class FrozenReadingsSettings:
    """An environment sensor repeating exactly the same temperature and RH this long is stuck."""

    frozen_after: timedelta = timedelta(hours=12)
    """Room air always moves a little (heating cycles, people, the weather) and a working
    sensor adds its own jitter: half a day of the same two numbers, to the last digit, is a
    sensor that has stopped measuring (*default*)."""
    severity: Severity = Severity.WATCH

    def __post_init__(self) -> None:
        check_positive("frozen_after", self.frozen_after)


class FrozenReadingsRule(Rule):
    """Temperature and RH repeated exactly for ``frozen_after``: the sensor is stuck.

    A maintenance job, and while it is on the :class:`~alerts.detector.Detector` stops giving
    the home's environment rules these readings: they say nothing about the room. A sensor
    that froze in a shower's steam otherwise reads as a leak, a damp week and growing mould
    (on the simulated estate it did all three, and started a statutory clock). The readings
    before it was recognised (``frozen_after``) have been judged already; that is shorter than
    any rule that raises ``act`` needs.
    """

    condition: ClassVar[str] = "sensor_frozen"
    alert_type: ClassVar[AlertType] = AlertType.SENSOR_STUCK

    def __init__(
        self, context: RuleContext, settings: FrozenReadingsSettings | None = None
    ) -> None:
        super().__init__(context)
        self.settings = settings or FrozenReadingsSettings()
        self._value: tuple[float, float] | None = None
        self._value_since: datetime | None = None

    def on_item(self, item: Item) -> list[ConditionEvent]:
        if not isinstance(item, Reading) or item.temp_c is None or item.rh_pct is None:
            return []
        value = (item.temp_c, item.rh_pct)
        if value != self._value or self._value_since is None:
            self._value, self._value_since = value, item.ts
            if self.active:
                return [
                    self._turn_off(
                        at=item.ts,
                        reason="readings change again",
                        evidence={"temp_c": item.temp_c, "rh_pct": item.rh_pct},
                    )
                ]
            return []
        frozen_for = item.ts - self._value_since
        if self.active or frozen_for < self.settings.frozen_after:
            return []
        return [
            self._turn_on(
                at=item.ts,
                since=self._value_since,
                severity=self.settings.severity,
                reason=f"{item.temp_c:g} C and {item.rh_pct:g} %RH, unchanged for "
                f"{frozen_for.total_seconds() / 3600:.1f} h: check the sensor",
                evidence={
                    "temp_c": item.temp_c,
                    "rh_pct": item.rh_pct,
                    "frozen_hours": round(frozen_for.total_seconds() / 3600, 2),
                },
            )
        ]
