"""Damp and mould rules for homes: ADF 2006 and 2010 humidity limits, mould index, condensation.

Approved Document F sources
---------------------------
ADF 2006 (performance criteria, Appendix A): room RH should not exceed 70 % for more than
2 hours in any 12-hour period, nor 90 % for more than 1 hour. We apply both to the same
trailing 12-hour window.

ADF 2010 (Appendix A, moisture criteria) sets moving-average limits on room RH: 65 % over a
month, 75 % over a week and 85 % over a day (surface water activity 0.75 / 0.85 / 0.95).
The order is the one DOMAIN.md gives and the one physics requires: the longer the period,
the lower the limit, because mould needs sustained moisture (BS 5250 / ISO 13788 use 80 %
surface RH over several days). A month is taken as 30 days.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import ClassVar

from alerts.events import AlertType, ConditionEvent, EvidenceValue, Hazard, Severity
from alerts.mould import FORMULA, MouldSettings, MouldState, MouldStep, mould_step
from alerts.psychrometrics import dew_point_c, surface_rh_pct
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
    "Adf2006Rule",
    "Adf2006Settings",
    "Adf2010Rule",
    "Adf2010Settings",
    "CondensationRule",
    "CondensationSettings",
    "MouldIndexRule",
    "MouldIndexSettings",
]

_HOUR = 3600.0


def _check_fraction(name: str, value: float) -> None:
    if not 0.0 < value <= 1.0:
        raise ValueError(f"{name} must be in (0, 1], got {value}")


@dataclass(frozen=True, slots=True)
class Adf2006Settings:
    """ADF 2006 limits (defaults are the document's) and how the rule clears."""

    window: timedelta = timedelta(hours=12)
    limit_pct: float = 70.0
    max_time_above_limit: timedelta = timedelta(hours=2)
    high_limit_pct: float = 90.0
    max_time_above_high_limit: timedelta = timedelta(hours=1)
    clear_fraction: float = 0.5
    """Clears when time above each limit falls to this share of its allowance (hysteresis)."""
    min_coverage: float = 0.75
    """Share of the window that must hold data before the rule may clear: silence is not dry."""
    max_hold: timedelta = timedelta(hours=1)
    """A reading stands for at most this long before it; longer silences count as no data."""
    # A ventilation design criterion, met or missed by one evening's cooking: advice, never
    # a hazard on its own (DOMAIN.md: criteria are not diagnoses).
    severity: Severity = Severity.WATCH
    high_severity: Severity = Severity.WATCH

    def __post_init__(self) -> None:
        check_positive("window", self.window)
        check_positive("max_time_above_limit", self.max_time_above_limit)
        check_positive("max_time_above_high_limit", self.max_time_above_high_limit)
        check_positive("max_hold", self.max_hold)
        _check_fraction("clear_fraction", self.clear_fraction)
        _check_fraction("min_coverage", self.min_coverage)
        if not 0.0 < self.limit_pct < self.high_limit_pct <= 100.0:
            raise ValueError("need 0 < limit_pct < high_limit_pct <= 100")


class Adf2006Rule(Rule):
    """RH above 70 % for more than 2 h, or above 90 % for more than 1 h, in any 12 h."""

    condition: ClassVar[str] = "damp_adf2006"
    reads_room: ClassVar[bool] = True
    alert_type: ClassVar[AlertType] = AlertType.DAMP_MOULD
    hazard: ClassVar[Hazard] = Hazard.DAMP_MOULD

    def __init__(self, context: RuleContext, settings: Adf2006Settings | None = None) -> None:
        super().__init__(context)
        self.settings = settings or Adf2006Settings()
        self._held = HeldSpans(self.settings.max_hold)
        self._above = WindowIntegral(self.settings.window)
        self._above_high = WindowIntegral(self.settings.window)

    def on_item(self, item: Item) -> list[ConditionEvent]:
        if not isinstance(item, Reading) or item.rh_pct is None:
            return []
        s = self.settings
        rh = item.rh_pct
        span = self._held.span(item.ts)
        if span is None:
            return []
        start_s, now_s = span
        self._above.add(start_s, now_s, 1.0 if rh > s.limit_pct else 0.0)
        self._above_high.add(start_s, now_s, 1.0 if rh > s.high_limit_pct else 0.0)
        covered_s, above_s = self._above.totals(now_s)
        above_high_s = self._above_high.totals(now_s)[1]
        over = above_s > s.max_time_above_limit.total_seconds()
        over_high = above_high_s > s.max_time_above_high_limit.total_seconds()
        severity = s.high_severity if over_high else s.severity
        # Evidence and reasons are built only when an event is emitted: this runs per reading.
        if not self.active:
            if over or over_high:
                window = self._above_high if over_high and not over else self._above
                first = window.first_start(now_s)
                since = from_epoch(first) if first is not None else item.ts
                return [
                    self._turn_on(
                        at=item.ts,
                        since=since,
                        severity=severity,
                        reason=self._reason(over_high, above_s, above_high_s),
                        evidence=self._evidence(rh, covered_s, above_s, above_high_s),
                    )
                ]
            return []
        assert self.severity is not None
        if severity > self.severity:
            return self._update(
                at=item.ts,
                severity=severity,
                reason=self._reason(over_high, above_s, above_high_s),
                evidence=self._evidence(rh, covered_s, above_s, above_high_s),
            )
        clear = (
            covered_s >= s.min_coverage * s.window.total_seconds()
            and above_s <= s.clear_fraction * s.max_time_above_limit.total_seconds()
            and above_high_s <= s.clear_fraction * s.max_time_above_high_limit.total_seconds()
        )
        if clear:
            return [
                self._turn_off(
                    at=item.ts,
                    reason=f"RH above {s.limit_pct:g} % for only {above_s / _HOUR:.1f} h in the "
                    f"last {s.window.total_seconds() / _HOUR:g} h",
                    evidence=self._evidence(rh, covered_s, above_s, above_high_s),
                )
            ]
        return []

    def _reason(self, over_high: bool, above_s: float, above_high_s: float) -> str:
        s = self.settings
        if over_high:
            return (
                f"RH above {s.high_limit_pct:g} % for {above_high_s / _HOUR:.1f} h in the last "
                f"{s.window.total_seconds() / _HOUR:g} h (ADF 2006 allows "
                f"{s.max_time_above_high_limit.total_seconds() / _HOUR:g} h)"
            )
        return (
            f"RH above {s.limit_pct:g} % for {above_s / _HOUR:.1f} h in the last "
            f"{s.window.total_seconds() / _HOUR:g} h (ADF 2006 allows "
            f"{s.max_time_above_limit.total_seconds() / _HOUR:g} h)"
        )

    def _evidence(
        self, rh: float, covered_s: float, above_s: float, above_high_s: float
    ) -> dict[str, EvidenceValue]:
        s = self.settings
        return {
            "rh_pct": rh,
            "hours_above_limit": round(above_s / _HOUR, 3),
            "hours_above_high_limit": round(above_high_s / _HOUR, 3),
            "limit_pct": s.limit_pct,
            "max_hours_above_limit": s.max_time_above_limit.total_seconds() / _HOUR,
            "high_limit_pct": s.high_limit_pct,
            "max_hours_above_high_limit": s.max_time_above_high_limit.total_seconds() / _HOUR,
            "window_hours": s.window.total_seconds() / _HOUR,
            "coverage": round(covered_s / s.window.total_seconds(), 3),
        }


@dataclass(frozen=True, slots=True)
class _MeanLimit:
    name: str
    window: timedelta
    limit_pct: float
    severity: Severity
    persist: timedelta = timedelta(0)
    """The mean must have been over the limit this long for ``severity``; until then ``watch``."""
    persist_within: timedelta = timedelta(0)
    """The trailing span ``persist`` is counted in (time over the limit, not one stretch)."""


@dataclass(frozen=True, slots=True)
class Adf2010Settings:
    """ADF 2010 moving-average RH limits (defaults are the document's)."""

    day_limit_pct: float = 85.0
    week_limit_pct: float = 75.0
    month_limit_pct: float = 65.0
    month: timedelta = timedelta(days=30)
    hysteresis_pct: float = 2.0
    """A window clears when its mean falls this far below its limit."""
    min_coverage: float = 0.75
    """A window is judged only when this share of it holds data."""
    max_hold: timedelta = timedelta(hours=1)
    day_severity: Severity = Severity.WATCH
    week_severity: Severity = Severity.ACT
    week_persist: timedelta = timedelta(days=8)
    """How long the week's mean must have been over its limit, in all, within the last
    ``week_persist_within``, before it is ``week_severity``: most of those days. One cold week
    with laundry drying indoors lifts an ordinary home's mean just over 75 % for a day or two,
    a cool home drying laundry on most days for up to a week; a damp home is over it most of
    the time for weeks (*default*). This rung starts Awaab's Law clocks, so it asks for more
    than the moisture rule (:mod:`alerts.rules.moisture`), which finds damp homes sooner and
    starts none."""
    week_persist_within: timedelta = timedelta(days=10)
    """The trailing span ``week_persist`` is counted in. The time is a total, not one
    unbroken stretch: a damp home whose weekly mean hovers at 74-77 % (a warm, well-aired
    summer) dips under 75 % for hours at a time, and a stretch that restarted at every dip
    would never reach eight days (*default*: a little over a week)."""
    # A month's mean over 65 % is the document's design target for a healthy room; a heated
    # home in a wet winter month can sit just above it. Advice, not a hazard on its own: the
    # week's 75 % and the mould index are the persistence that is.
    month_severity: Severity = Severity.WATCH
    void_severity: Severity = Severity.WATCH
    """The most any window raises in a void home. An empty home whose heating is off cools and
    its RH climbs for want of heat, not for want of ventilation: the void heating and frost
    rules are the alert for that, and there is no tenant for an Awaab's Law clock to protect.
    The mould index still judges a void (growth damages the fabric either way)."""

    def __post_init__(self) -> None:
        check_positive("month", self.month)
        check_positive("max_hold", self.max_hold)
        if self.week_persist < timedelta(0):
            raise ValueError("week_persist must not be negative")
        if self.week_persist_within < self.week_persist:
            raise ValueError("week_persist_within must be at least week_persist")
        _check_fraction("min_coverage", self.min_coverage)
        if self.hysteresis_pct < 0:
            raise ValueError("hysteresis_pct must not be negative")
        for name in ("day_limit_pct", "week_limit_pct", "month_limit_pct"):
            value = getattr(self, name)
            if not 0.0 < value <= 100.0:
                raise ValueError(f"{name} must be in (0, 100], got {value}")

    def for_void(self) -> Adf2010Settings:
        """These settings with every window capped at ``void_severity``."""
        cap = self.void_severity
        return replace(
            self,
            day_severity=min(self.day_severity, cap),
            week_severity=min(self.week_severity, cap),
            month_severity=min(self.month_severity, cap),
        )

    @property
    def limits(self) -> tuple[_MeanLimit, ...]:
        return (
            _MeanLimit("day", timedelta(days=1), self.day_limit_pct, self.day_severity),
            _MeanLimit(
                "week",
                timedelta(days=7),
                self.week_limit_pct,
                self.week_severity,
                self.week_persist,
                self.week_persist_within,
            ),
            _MeanLimit("month", self.month, self.month_limit_pct, self.month_severity),
        )


class Adf2010Rule(Rule):
    """Mean RH over a day, week or month above 85 / 75 / 65 %."""

    condition: ClassVar[str] = "damp_adf2010"
    reads_room: ClassVar[bool] = True
    alert_type: ClassVar[AlertType] = AlertType.DAMP_MOULD
    hazard: ClassVar[Hazard] = Hazard.DAMP_MOULD

    def __init__(self, context: RuleContext, settings: Adf2010Settings | None = None) -> None:
        super().__init__(context)
        self.settings = settings or Adf2010Settings()
        self._limits = self.settings.limits
        self._held = HeldSpans(self.settings.max_hold)
        self._windows = [WindowIntegral(limit.window) for limit in self._limits]
        self._window_on = [False] * len(self._limits)
        # Per window with a ``persist``: the time its mean has been over the limit, trailing,
        # counted from each reading at which it was found over to the next.
        self._over = [
            WindowIntegral(limit.persist_within) if limit.persist else None
            for limit in self._limits
        ]
        self._was_over = [False] * len(self._limits)

    def on_item(self, item: Item) -> list[ConditionEvent]:
        if not isinstance(item, Reading) or item.rh_pct is None:
            return []
        span = self._held.span(item.ts)
        if span is None:
            return []
        s = self.settings
        start_s, now_s = span
        rh = item.rh_pct
        totals: list[tuple[float, float | None]] = []
        worst: _MeanLimit | None = None
        worst_index = 0
        worst_mean = 0.0
        for index, window in enumerate(self._windows):
            window.add(start_s, now_s, rh)
            covered_s, integral = window.totals(now_s)
            mean = integral / covered_s if covered_s > 0 else None
            totals.append((covered_s, mean))
            judged = self._judge(index, covered_s, mean, start_s, now_s)
            if judged is not None and (worst is None or judged.severity > worst.severity):
                worst, worst_index = judged, index
                worst_mean = mean if mean is not None else 0.0
        if worst is not None:
            if self.active and self.severity is not None and worst.severity <= self.severity:
                return []
            reason = self._reason(worst_index, worst_mean, now_s)
            if not self.active:
                return [
                    self._turn_on(
                        at=item.ts,
                        since=self._window_start(now_s, worst),
                        severity=worst.severity,
                        reason=reason,
                        evidence=self._evidence(rh, totals, now_s),
                    )
                ]
            return self._update(
                at=item.ts,
                severity=worst.severity,
                reason=reason,
                evidence=self._evidence(rh, totals, now_s),
            )
        if self.active:
            return [
                self._turn_off(
                    at=item.ts,
                    reason="mean RH back below every ADF 2010 limit less "
                    f"{s.hysteresis_pct:g} %RH hysteresis",
                    evidence=self._evidence(rh, totals, now_s),
                )
            ]
        return []

    def _judge(
        self, index: int, covered_s: float, mean: float | None, start_s: float, now_s: float
    ) -> _MeanLimit | None:
        """Window ``index`` with the severity it has earned, or None when it is not over."""
        s = self.settings
        limit = self._limits[index]
        judged = mean is not None and covered_s >= s.min_coverage * limit.window.total_seconds()
        over = judged and mean is not None and mean > limit.limit_pct
        if over:
            self._window_on[index] = True
        elif judged and mean is not None and mean <= limit.limit_pct - s.hysteresis_pct:
            self._window_on[index] = False
        over_time = self._over[index]
        if over_time is not None:
            # Only time with the mean over the limit counts towards ``persist``; time in the
            # hysteresis band below it keeps the window on (no flapping) but does not count.
            over_time.add(start_s, now_s, 1.0 if self._was_over[index] else 0.0)
        self._was_over[index] = over
        if not self._window_on[index]:
            return None
        if over_time is not None and over_time.totals(now_s)[1] < limit.persist.total_seconds():
            return replace(limit, severity=min(limit.severity, Severity.WATCH))
        return limit

    def _hours_over(self, index: int, now_s: float) -> float | None:
        over_time = self._over[index]
        return None if over_time is None else over_time.totals(now_s)[1] / _HOUR

    def _reason(self, index: int, mean: float, now_s: float) -> str:
        limit = self._limits[index]
        hours = self._hours_over(index, now_s)
        compare = "exceeds" if mean > limit.limit_pct else "is within the hysteresis band below"
        reason = (
            f"mean RH over the last {limit.name} {mean:.1f} % {compare} the ADF 2010 limit of "
            f"{limit.limit_pct:g} %"
        )
        if hours is None:
            return reason
        return (
            f"{reason}; over the limit for {hours / 24:.1f} days in all of the last "
            f"{limit.persist_within.total_seconds() / 86_400:g}"
        )

    def _evidence(
        self, rh: float, totals: list[tuple[float, float | None]], now_s: float
    ) -> dict[str, EvidenceValue]:
        evidence: dict[str, EvidenceValue] = {"rh_pct": rh}
        for index, (limit, (covered_s, mean)) in enumerate(zip(self._limits, totals, strict=True)):
            evidence[f"{limit.name}_mean_rh_pct"] = None if mean is None else round(mean, 2)
            evidence[f"{limit.name}_limit_pct"] = limit.limit_pct
            evidence[f"{limit.name}_coverage"] = round(covered_s / limit.window.total_seconds(), 3)
            hours = self._hours_over(index, now_s)
            if hours is not None:
                evidence[f"{limit.name}_days_over_limit"] = round(hours / 24, 3)
                evidence[f"{limit.name}_days_over_limit_within"] = (
                    limit.persist_within.total_seconds() / 86_400
                )
        return evidence

    def _window_start(self, now_s: float, limit: _MeanLimit) -> datetime:
        """Start of the data the exceeding mean was taken over (RH is never below 0)."""
        window = next(
            w for lim, w in zip(self._limits, self._windows, strict=True) if lim.name == limit.name
        )
        first = window.first_start(now_s, predicate_value=-1.0)
        return from_epoch(first if first is not None else now_s)


@dataclass(frozen=True, slots=True)
class MouldIndexSettings:
    """When the VTT index becomes an alert (index levels: 1 microscopic, 3 visible growth)."""

    model: MouldSettings = field(default_factory=MouldSettings)
    on_index: float = 1.0
    urgent_index: float = 3.0
    clear_index: float = 0.5
    surface_temp_offset_c: float = 3.0
    """Apply the model at a surface this much colder than the air, where mould grows: room-air
    RH understates RH at cold walls (BS 5250). 3 °C matches the condensation rule's thermal
    bridge allowance; 0 applies the model at the sensor."""
    max_hold: timedelta = timedelta(hours=1)
    """Longer silences are not integrated: the model needs known conditions."""
    severity: Severity = Severity.ACT
    urgent_severity: Severity = Severity.URGENT

    def __post_init__(self) -> None:
        check_positive("max_hold", self.max_hold)
        if not 0.0 <= self.clear_index < self.on_index <= self.urgent_index <= 6.0:
            raise ValueError("need 0 <= clear_index < on_index <= urgent_index <= 6")
        if self.surface_temp_offset_c < 0:
            raise ValueError("surface_temp_offset_c must not be negative")


class MouldIndexRule(Rule):
    """VTT mould growth index at or above ``on_index``."""

    condition: ClassVar[str] = "mould_index"
    reads_room: ClassVar[bool] = True
    alert_type: ClassVar[AlertType] = AlertType.DAMP_MOULD
    hazard: ClassVar[Hazard] = Hazard.DAMP_MOULD

    def __init__(self, context: RuleContext, settings: MouldIndexSettings | None = None) -> None:
        super().__init__(context)
        self.settings = settings or MouldIndexSettings()
        self.state = MouldState()
        self.last_step: MouldStep | None = None
        self._last_ts: datetime | None = None
        self._growth_since: datetime | None = None

    def on_item(self, item: Item) -> list[ConditionEvent]:
        if not isinstance(item, Reading) or item.rh_pct is None or item.temp_c is None:
            return []
        s = self.settings
        previous_ts = self._last_ts
        self._last_ts = item.ts
        if previous_ts is None:
            return []
        hours = min(item.ts - previous_ts, s.max_hold).total_seconds() / _HOUR
        temp_c = item.temp_c - s.surface_temp_offset_c
        rh_pct = (
            surface_rh_pct(item.temp_c, max(item.rh_pct, 0.1), temp_c)
            if s.surface_temp_offset_c
            else item.rh_pct
        )
        before = self.state.index
        self.state, step = mould_step(self.state, temp_c, rh_pct, hours, s.model)
        self.last_step = step
        if before == 0.0 and self.state.index > 0.0:
            self._growth_since = previous_ts
        elif self.state.index == 0.0:
            self._growth_since = None
        index = self.state.index
        severity = s.urgent_severity if index >= s.urgent_index else s.severity
        if not self.active:
            if index >= s.on_index:
                return [
                    self._turn_on(
                        at=item.ts,
                        since=self._growth_since or item.ts,
                        severity=severity,
                        reason=self._reason(step),
                        evidence=self._evidence(step),
                    )
                ]
            return []
        assert self.severity is not None
        if severity > self.severity:
            return self._update(
                at=item.ts,
                severity=severity,
                reason=self._reason(step),
                evidence=self._evidence(step),
            )
        if index < s.clear_index:
            return [
                self._turn_off(
                    at=item.ts,
                    reason=f"VTT mould index {index:.2f} fell below {s.clear_index:g}",
                    evidence=self._evidence(step),
                )
            ]
        return []

    def _reason(self, step: MouldStep) -> str:
        return f"VTT mould index {step.index:.2f} >= {self.settings.on_index:g}: {step.explain()}"

    def _evidence(self, step: MouldStep) -> dict[str, EvidenceValue]:
        s = self.settings
        return {
            "mould_index": round(step.index, 4),
            "trend_per_day": round(step.trend_per_day, 5),
            "temp_c": round(step.temp_c, 2),
            "rh_pct": round(step.rh_pct, 2),
            "rh_crit_pct": round(step.rh_crit_pct, 2),
            "growing": step.growing,
            "sensitivity": s.model.sensitivity.value,
            "on_index": s.on_index,
            "formula": FORMULA,
        }


@dataclass(frozen=True, slots=True)
class CondensationSettings:
    """Dew point close to an estimated cold-surface temperature for long enough."""

    surface_temp_offset_c: float = 3.0
    """Cold surfaces (window reveals, corners) run about 3 °C below a heated room in UK winters."""
    on_margin_c: float = 1.0
    off_margin_c: float = 2.0
    on_duration: timedelta = timedelta(hours=2)
    off_duration: timedelta = timedelta(hours=2)
    min_readings: int = 3
    severity: Severity = Severity.WATCH

    def __post_init__(self) -> None:
        if self.off_margin_c <= self.on_margin_c:
            raise ValueError("off_margin_c must exceed on_margin_c (hysteresis)")
        if self.min_readings < 1:
            raise ValueError("min_readings must be at least 1")


class CondensationRule(Rule):
    """Estimated surface temperature within ``on_margin_c`` of the dew point."""

    condition: ClassVar[str] = "condensation_risk"
    reads_room: ClassVar[bool] = True
    alert_type: ClassVar[AlertType] = AlertType.DAMP_MOULD
    hazard: ClassVar[Hazard] = Hazard.DAMP_MOULD

    def __init__(self, context: RuleContext, settings: CondensationSettings | None = None) -> None:
        super().__init__(context)
        self.settings = settings or CondensationSettings()
        s = self.settings
        self._debounce = Debounce(
            on_readings=s.min_readings,
            on_duration=s.on_duration,
            off_readings=s.min_readings,
            off_duration=s.off_duration,
        )

    def on_item(self, item: Item) -> list[ConditionEvent]:
        if not isinstance(item, Reading) or item.rh_pct is None or item.temp_c is None:
            return []
        if item.rh_pct <= 0.0:
            return []
        s = self.settings
        dew_c = dew_point_c(item.temp_c, item.rh_pct)
        surface_c = item.temp_c - s.surface_temp_offset_c
        margin = surface_c - dew_c
        pending_since = self._debounce.pending_since
        flip = self._debounce.update(item.ts, margin <= s.on_margin_c, margin >= s.off_margin_c)
        if flip is None:
            return []
        evidence: dict[str, EvidenceValue] = {
            "temp_c": item.temp_c,
            "rh_pct": item.rh_pct,
            "dew_point_c": round(dew_c, 2),
            "surface_temp_estimate_c": round(surface_c, 2),
            "margin_c": round(margin, 2),
            "on_margin_c": s.on_margin_c,
        }
        if flip == "on":
            return [
                self._turn_on(
                    at=item.ts,
                    since=pending_since or item.ts,
                    severity=s.severity,
                    reason=f"dew point {dew_c:.1f} C within {margin:.1f} C of the estimated "
                    f"cold-surface temperature {surface_c:.1f} C for "
                    f"{s.on_duration.total_seconds() / _HOUR:g} h",
                    evidence=evidence,
                )
            ]
        return [
            self._turn_off(
                at=item.ts,
                reason=f"surface margin above {s.off_margin_c:g} C for "
                f"{s.off_duration.total_seconds() / _HOUR:g} h",
                evidence=evidence,
            )
        ]
