"""Bin rules: overflow, fire, knocked over, stuck sensor, and collection checks.

Fill sensors (ultrasonic or laser) are noisy: a bag under the sensor or a reflection can
read 0 % or 100 % once. Fill-based rules therefore use the median of the last three
readings, which ignores any single outlier.
"""

from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import ClassVar

from alerts.events import AlertType, ConditionEvent, EvidenceValue, Severity
from alerts.readings import CollectionRecord, FillForecast, Item, PeerChange
from alerts.rules._base import Debounce, Rule, RuleContext, check_positive
from firmware_contracts import Reading

__all__ = [
    "BinFireRule",
    "BinFireSettings",
    "KnockedOverRule",
    "KnockedOverSettings",
    "OverflowRule",
    "OverflowSettings",
    "StuckSensorRule",
    "StuckSensorSettings",
    "UnrecordedEmptyingRule",
    "UnrecordedEmptyingSettings",
    "WastedCollectionRule",
    "WastedCollectionSettings",
    "fill_level",
]

_HOUR = 3600.0
_MEDIAN_OF = 3


def fill_level(fill_pct: float) -> float:
    """A fill reading as a level: the contract allows -5..110 %. Below 0 is an empty bin read
    through sensor noise, so 0; over 100 is waste heaped above the rim, real and the strongest
    sign of overflow, so kept."""
    return max(fill_pct, 0.0)


class _FillLevel:
    """Median of the last three fill levels (:func:`fill_level`), and when the last came."""

    def __init__(self) -> None:
        self._recent: deque[float] = deque(maxlen=_MEDIAN_OF)
        self.last_ts: datetime | None = None

    def add(self, ts: datetime, fill_pct: float) -> float:
        self._recent.append(fill_level(fill_pct))
        self.last_ts = ts
        return self.level

    @property
    def level(self) -> float:
        return statistics.median(self._recent)


@dataclass(frozen=True, slots=True)
class OverflowSettings:
    """Overflow now (level at the bin's threshold) or imminent (a forecast says so)."""

    forecast_horizon: timedelta = timedelta(days=1)
    clear_margin_pct: float = 10.0
    """Clears when the level is this far below the threshold (after emptying, in practice)."""
    overflowing_pct: float = 95.0
    imminent_severity: Severity = Severity.WATCH
    severity: Severity = Severity.ACT
    overflowing_severity: Severity = Severity.URGENT

    def __post_init__(self) -> None:
        check_positive("forecast_horizon", self.forecast_horizon)
        if self.clear_margin_pct <= 0:
            raise ValueError("clear_margin_pct must be positive")


class OverflowRule(Rule):
    condition: ClassVar[str] = "bin_overflow"
    alert_type: ClassVar[AlertType] = AlertType.BIN_OVERFLOW

    def __init__(
        self,
        context: RuleContext,
        threshold_pct: float,
        settings: OverflowSettings | None = None,
    ) -> None:
        super().__init__(context)
        self.threshold_pct = threshold_pct
        self.settings = settings or OverflowSettings()
        self._fill = _FillLevel()
        self._forecast: FillForecast | None = None

    def on_item(self, item: Item) -> list[ConditionEvent]:
        if isinstance(item, FillForecast):
            self._forecast = item
        elif isinstance(item, Reading) and item.fill_pct is not None:
            self._fill.add(item.ts, item.fill_pct)
        else:
            return []
        if self._fill.last_ts is None:
            level: float | None = None
        else:
            level = self._fill.level
        return self._evaluate(item.ts, level)

    def _imminent(self, now: datetime) -> FillForecast | None:
        forecast = self._forecast
        if forecast is None or forecast.target_ts < now:
            return None
        if forecast.fill_pct < self.threshold_pct:
            return None
        if forecast.target_ts - now > self.settings.forecast_horizon:
            return None
        return forecast

    def _evaluate(self, now: datetime, level: float | None) -> list[ConditionEvent]:
        s = self.settings
        imminent = self._imminent(now)
        full = level is not None and level >= self.threshold_pct
        evidence: dict[str, EvidenceValue] = {
            "fill_level_pct": level,
            "threshold_pct": self.threshold_pct,
            "forecast_fill_pct": None if imminent is None else imminent.fill_pct,
            "forecast_target": None if imminent is None else imminent.target_ts.isoformat(),
        }
        if level is not None and level >= s.overflowing_pct:
            severity, reason = s.overflowing_severity, f"bin at {level:.0f} %: overflowing"
        elif full:
            assert level is not None
            severity = s.severity
            reason = f"bin at {level:.0f} %, at or above its {self.threshold_pct:g} % threshold"
        elif imminent is not None:
            severity = s.imminent_severity
            reason = (
                f"forecast {imminent.fill_pct:.0f} % by {imminent.target_ts.isoformat()}, "
                f"within {s.forecast_horizon.total_seconds() / _HOUR:g} h"
            )
        else:
            severity, reason = Severity.INFO, ""
        if not self.active:
            if full or imminent is not None:
                return [
                    self._turn_on(
                        at=now, since=now, severity=severity, reason=reason, evidence=evidence
                    )
                ]
            return []
        assert self.severity is not None
        if (full or imminent is not None) and severity > self.severity:
            return self._update(at=now, severity=severity, reason=reason, evidence=evidence)
        if (
            level is not None
            and level < self.threshold_pct - s.clear_margin_pct
            and imminent is None
        ):
            return [
                self._turn_off(
                    at=now,
                    reason=f"bin at {level:.0f} %, below "
                    f"{self.threshold_pct - s.clear_margin_pct:g} % and no forecast overflow",
                    evidence=evidence,
                )
            ]
        return []


@dataclass(frozen=True, slots=True)
class BinFireSettings:
    """Fire: very hot, or heating fast (*defaults*: sun on a lid rarely passes 50 °C)."""

    fire_temp_c: float = 60.0
    rise_c: float = 15.0
    rise_within: timedelta = timedelta(minutes=30)
    rise_min_temp_c: float = 45.0
    """A fast rise only counts above this temperature: sun on a dark lid reaches the high 30s."""
    confirm_readings: int = 2
    clear_temp_c: float = 40.0
    clear_duration: timedelta = timedelta(hours=2)
    severity: Severity = Severity.EMERGENCY

    def __post_init__(self) -> None:
        check_positive("rise_within", self.rise_within)
        if self.confirm_readings < 1:
            raise ValueError("confirm_readings must be at least 1")
        if self.clear_temp_c >= self.fire_temp_c:
            raise ValueError("clear_temp_c must be below fire_temp_c")


class BinFireRule(Rule):
    condition: ClassVar[str] = "bin_fire"
    alert_type: ClassVar[AlertType] = AlertType.BIN_FIRE

    def __init__(self, context: RuleContext, settings: BinFireSettings | None = None) -> None:
        super().__init__(context)
        self.settings = settings or BinFireSettings()
        s = self.settings
        self._recent: deque[tuple[datetime, float]] = deque()
        self._debounce = Debounce(
            on_readings=s.confirm_readings,
            off_readings=2,
            off_duration=s.clear_duration,
        )

    def on_item(self, item: Item) -> list[ConditionEvent]:
        if not isinstance(item, Reading) or item.temp_c is None:
            return []
        s = self.settings
        temp = item.temp_c
        self._recent.append((item.ts, temp))
        while self._recent and self._recent[0][0] < item.ts - s.rise_within:
            self._recent.popleft()
        coolest = min(entry[1] for entry in self._recent)
        rise = temp - coolest
        hot = temp >= s.fire_temp_c
        rising = rise >= s.rise_c and temp >= s.rise_min_temp_c
        pending_since = self._debounce.pending_since
        flip = self._debounce.update(item.ts, hot or rising, temp < s.clear_temp_c and not rising)
        evidence: dict[str, EvidenceValue] = {
            "temp_c": temp,
            "rise_c": round(rise, 2),
            "rise_window_min": s.rise_within.total_seconds() / 60,
            "fire_temp_c": s.fire_temp_c,
        }
        if flip == "on":
            why = (
                f"bin at {temp:.0f} C (fire threshold {s.fire_temp_c:g} C)"
                if hot
                else f"bin temperature rose {rise:.0f} C in "
                f"{s.rise_within.total_seconds() / 60:g} min to {temp:.0f} C"
            )
            return [
                self._turn_on(
                    at=item.ts,
                    since=pending_since or item.ts,
                    severity=s.severity,
                    reason=f"{why}, confirmed by {s.confirm_readings} readings",
                    evidence=evidence,
                )
            ]
        if flip == "off":
            return [
                self._turn_off(
                    at=item.ts,
                    reason=f"below {s.clear_temp_c:g} C and not rising for "
                    f"{s.clear_duration.total_seconds() / _HOUR:g} h",
                    evidence=evidence,
                )
            ]
        return []


@dataclass(frozen=True, slots=True)
class KnockedOverSettings:
    tilt_deg: float = 45.0
    upright_deg: float = 20.0
    confirm_readings: int = 2
    severity: Severity = Severity.ACT

    def __post_init__(self) -> None:
        if not 0.0 <= self.upright_deg < self.tilt_deg <= 180.0:
            raise ValueError("need 0 <= upright_deg < tilt_deg <= 180")


class KnockedOverRule(Rule):
    condition: ClassVar[str] = "bin_knocked_over"
    alert_type: ClassVar[AlertType] = AlertType.BIN_KNOCKED_OVER

    def __init__(self, context: RuleContext, settings: KnockedOverSettings | None = None) -> None:
        super().__init__(context)
        self.settings = settings or KnockedOverSettings()
        n = self.settings.confirm_readings
        self._debounce = Debounce(on_readings=n, off_readings=n)

    def on_item(self, item: Item) -> list[ConditionEvent]:
        if not isinstance(item, Reading) or item.tilt_deg is None:
            return []
        s = self.settings
        pending_since = self._debounce.pending_since
        flip = self._debounce.update(
            item.ts, item.tilt_deg >= s.tilt_deg, item.tilt_deg <= s.upright_deg
        )
        evidence: dict[str, EvidenceValue] = {"tilt_deg": item.tilt_deg, "limit_deg": s.tilt_deg}
        if flip == "on":
            return [
                self._turn_on(
                    at=item.ts,
                    since=pending_since or item.ts,
                    severity=s.severity,
                    reason=f"bin tilted {item.tilt_deg:.0f} deg (limit {s.tilt_deg:g}): knocked "
                    "over or moved",
                    evidence=evidence,
                )
            ]
        if flip == "off":
            return [
                self._turn_off(
                    at=item.ts, reason=f"bin upright ({item.tilt_deg:.0f} deg)", evidence=evidence
                )
            ]
        return []


@dataclass(frozen=True, slots=True)
class StuckSensorSettings:
    """A fill reading that has not moved for days while comparable bins filled and emptied."""

    flat_tolerance_pct: float = 1.0
    stuck_after: timedelta = timedelta(days=2)
    peer_min_change_pct: float = 8.0
    """Peers' median fill range over ``stuck_after`` at least this: a garden bin in winter
    rises 2 % a day, so its peers move about 10 % in two days; a quiet week moves them less."""
    peer_max_age: timedelta = timedelta(days=1)
    """Ignore peer summaries older than this."""
    unstick_readings: int = 2
    severity: Severity = Severity.WATCH

    def __post_init__(self) -> None:
        check_positive("stuck_after", self.stuck_after)
        check_positive("peer_max_age", self.peer_max_age)
        if self.flat_tolerance_pct < 0:
            raise ValueError("flat_tolerance_pct must not be negative")
        if self.unstick_readings < 1:
            raise ValueError("unstick_readings must be at least 1")


class StuckSensorRule(Rule):
    condition: ClassVar[str] = "sensor_stuck"
    alert_type: ClassVar[AlertType] = AlertType.SENSOR_STUCK

    def __init__(self, context: RuleContext, settings: StuckSensorSettings | None = None) -> None:
        super().__init__(context)
        self.settings = settings or StuckSensorSettings()
        self._run_start: datetime | None = None
        self._run_min = 0.0
        self._run_max = 0.0
        self._breaks = 0
        self._peer: PeerChange | None = None

    def on_item(self, item: Item) -> list[ConditionEvent]:
        if isinstance(item, PeerChange):
            self._peer = item
            return self._check(item.ts)
        if not isinstance(item, Reading) or item.fill_pct is None:
            return []
        s = self.settings
        fill = item.fill_pct
        if self._run_start is None:
            self._start_run(item.ts, fill)
            return []
        low, high = min(self._run_min, fill), max(self._run_max, fill)
        if high - low <= s.flat_tolerance_pct:
            self._run_min, self._run_max = low, high
            self._breaks = 0
            return self._check(item.ts)
        self._breaks += 1
        if self.active and self._breaks < s.unstick_readings:
            return []  # one odd reading does not prove the sensor is alive again
        was_active = self.active
        run_start = self._run_start
        self._start_run(item.ts, fill)
        if was_active:
            return [
                self._turn_off(
                    at=item.ts,
                    reason=f"fill moved to {fill:.1f} % after a flat run from "
                    f"{run_start.isoformat()}",
                    evidence={"fill_pct": fill},
                )
            ]
        return []

    def _start_run(self, ts: datetime, fill: float) -> None:
        self._run_start = ts
        self._run_min = self._run_max = fill
        self._breaks = 0

    def _check(self, now: datetime) -> list[ConditionEvent]:
        s = self.settings
        if self.active or self._run_start is None:
            return []
        flat_for = now - self._run_start
        peer = self._peer
        if flat_for < s.stuck_after or peer is None or now - peer.ts > s.peer_max_age:
            return []
        if peer.change_pct < s.peer_min_change_pct:
            return []
        evidence: dict[str, EvidenceValue] = {
            "flat_range_pct": round(self._run_max - self._run_min, 3),
            "flat_hours": round(flat_for.total_seconds() / _HOUR, 2),
            "peer_change_pct": peer.change_pct,
            "peer_count": peer.peer_count,
            "peer_window_hours": peer.window.total_seconds() / _HOUR,
        }
        return [
            self._turn_on(
                at=now,
                since=self._run_start,
                severity=s.severity,
                reason=f"fill within {s.flat_tolerance_pct:g} % for "
                f"{flat_for.total_seconds() / _HOUR:.0f} h while {peer.peer_count} peers "
                f"changed by {peer.change_pct:.0f} %",
                evidence=evidence,
            )
        ]


@dataclass(frozen=True, slots=True)
class UnrecordedEmptyingSettings:
    """A sharp drop in fill (an emptying) with no crew record near it."""

    empty_level_pct: float = 15.0
    min_peak_pct: float = 40.0
    """Only drops from at least this level count: small wobbles are not emptyings."""
    record_tolerance: timedelta = timedelta(hours=3)
    """A record this close to the emptying matches it."""
    report_delay: timedelta = timedelta(hours=12)
    """Crews' records arrive after the round (*default*): wait this much longer for one."""
    record_memory: timedelta = timedelta(days=1)
    severity: Severity = Severity.WATCH

    def __post_init__(self) -> None:
        check_positive("record_tolerance", self.record_tolerance)
        if self.report_delay < timedelta(0):
            raise ValueError("report_delay must not be negative")
        if self.record_memory < 2 * self.record_tolerance:
            raise ValueError("record_memory must be at least twice record_tolerance")
        if not 0.0 <= self.empty_level_pct < self.min_peak_pct <= 100.0:
            raise ValueError("need 0 <= empty_level_pct < min_peak_pct <= 100")


class UnrecordedEmptyingRule(Rule):
    condition: ClassVar[str] = "unrecorded_emptying"
    alert_type: ClassVar[AlertType] = AlertType.UNRECORDED_EMPTYING

    def __init__(
        self, context: RuleContext, settings: UnrecordedEmptyingSettings | None = None
    ) -> None:
        super().__init__(context)
        self.settings = settings or UnrecordedEmptyingSettings()
        self._fill = _FillLevel()
        self._peak = 0.0
        self._low_since: datetime | None = None
        self._pending: list[tuple[datetime, float]] = []
        self._records: deque[datetime] = deque()

    def on_time(self, now: datetime) -> list[ConditionEvent]:
        s = self.settings
        events: list[ConditionEvent] = []
        still: list[tuple[datetime, float]] = []
        for emptied_at, peak in self._pending:
            deadline = emptied_at + s.record_tolerance + s.report_delay
            if now > deadline:
                events.append(
                    self._occurred(
                        at=deadline,
                        since=emptied_at,
                        severity=s.severity,
                        reason=f"bin emptied at {emptied_at.isoformat()} (from {peak:.0f} %) "
                        f"with no collection record within "
                        f"{s.record_tolerance.total_seconds() / _HOUR:g} h of it, none received "
                        f"in the {(s.record_tolerance + s.report_delay).total_seconds() / _HOUR:g} "
                        "h since",
                        evidence={
                            "emptied_at": emptied_at.isoformat(),
                            "peak_fill_pct": peak,
                            "record_tolerance_hours": s.record_tolerance.total_seconds() / _HOUR,
                            "report_delay_hours": s.report_delay.total_seconds() / _HOUR,
                        },
                    )
                )
            else:
                still.append((emptied_at, peak))
        self._pending = still
        return events

    def on_item(self, item: Item) -> list[ConditionEvent]:
        s = self.settings
        if isinstance(item, CollectionRecord):
            self._records.append(item.ts)
            self._match()
            return []
        if not isinstance(item, Reading) or item.fill_pct is None:
            return []
        while self._records and self._records[0] < item.ts - s.record_memory:
            self._records.popleft()
        if fill_level(item.fill_pct) <= s.empty_level_pct:
            if self._low_since is None:
                self._low_since = item.ts
        else:
            self._low_since = None
        level = self._fill.add(item.ts, item.fill_pct)
        if level <= s.empty_level_pct and self._peak >= s.min_peak_pct:
            emptied_at = self._low_since or item.ts
            self._pending.append((emptied_at, self._peak))
            self._peak = level
            self._match()
        else:
            self._peak = max(self._peak, level)
        return []

    def _match(self) -> None:
        tolerance = self.settings.record_tolerance
        still: list[tuple[datetime, float]] = []
        for emptied_at, peak in self._pending:
            match = next((r for r in self._records if abs(r - emptied_at) <= tolerance), None)
            if match is None:
                still.append((emptied_at, peak))
            else:
                self._records.remove(match)
        self._pending = still


@dataclass(frozen=True, slots=True)
class WastedCollectionSettings:
    """A recorded collection of a bin that was nearly empty: a wasted stop."""

    nearly_empty_pct: float = 25.0
    max_reading_age: timedelta = timedelta(hours=6)
    severity: Severity = Severity.INFO

    def __post_init__(self) -> None:
        check_positive("max_reading_age", self.max_reading_age)


class WastedCollectionRule(Rule):
    condition: ClassVar[str] = "wasted_collection"
    alert_type: ClassVar[AlertType] = AlertType.WASTED_COLLECTION

    def __init__(
        self, context: RuleContext, settings: WastedCollectionSettings | None = None
    ) -> None:
        super().__init__(context)
        self.settings = settings or WastedCollectionSettings()
        self._fill = _FillLevel()

    def on_item(self, item: Item) -> list[ConditionEvent]:
        s = self.settings
        if isinstance(item, Reading) and item.fill_pct is not None:
            self._fill.add(item.ts, item.fill_pct)
            return []
        if not isinstance(item, CollectionRecord) or self._fill.last_ts is None:
            return []
        if item.ts - self._fill.last_ts > s.max_reading_age:
            return []
        level = self._fill.level
        if level >= s.nearly_empty_pct:
            return []
        return [
            self._occurred(
                at=item.ts,
                since=item.ts,
                severity=s.severity,
                reason=f"collected at {level:.0f} %, below {s.nearly_empty_pct:g} %",
                evidence={
                    "fill_level_pct": level,
                    "nearly_empty_pct": s.nearly_empty_pct,
                    "last_reading": self._fill.last_ts.isoformat(),
                    "crew": item.crew,
                },
            )
        ]
