"""Suspected leak: the air holds more water than the home's own normal, for most of a day.

Water escaping from a pipe or into a wall adds vapour to the air all day and night. A shower,
a kettle, cooking or a rack of laundry add it too, but for minutes or a few hours. Vapour
pressure (from temperature and RH) is the measure, not RH: it does not move when the heating
warms or cools the room, which RH does.

The home's normal is the median of its daily median vapour pressure over the last two weeks:
a damp home's high normal is its own, and the first days of a leak, once they are in the
history, are outnumbered by the ordinary days before them (an upper quartile of three days is
the leak's own first day). Leaking water saturates the air of a room that cools at night, so
the vapour cannot rise the full ``rise_hpa`` then: near saturation a smaller rise counts.
Warm weather also brings wetter air in (a summer spell lifts the outdoor dew point by degrees),
but it warms the rooms too; escaping water does not. So when the room is warmer than on the
days its normal was taken from, the normal is raised by what the warmer air brings: the vapour
the room would hold at the same RH as on those days, times ``warm_weather_allowance`` (muggy
spells bring air wetter than that). A leak adds far more, and is still found in a warm spell.
"""

from __future__ import annotations

import bisect
import statistics
from array import array
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import ClassVar

from alerts.events import AlertType, ConditionEvent, EvidenceValue, Hazard, Severity
from alerts.psychrometrics import saturation_vapour_pressure_hpa
from alerts.readings import Item
from alerts.rules._base import Rule, RuleContext, check_positive, from_epoch, to_epoch
from firmware_contracts import Reading

__all__ = ["SuspectedLeakRule", "SuspectedLeakSettings", "vapour_pressure_hpa"]


def vapour_pressure_hpa(temp_c: float, rh_pct: float) -> float:
    return rh_pct / 100.0 * saturation_vapour_pressure_hpa(temp_c)


@dataclass(frozen=True, slots=True)
class SuspectedLeakSettings:
    rise_hpa: float = 5.0
    """Above the home's normal by this much: a household's daily moisture adds 2-4 hPa, a
    laundry rack another 3-4 for some hours; a leak keeps adding more, all the time."""
    saturated_rh_pct: float = 95.0
    saturated_rise_hpa: float = 3.0
    """Air this close to saturation holds no more water: a leak's vapour condenses on the cold
    surfaces instead, so a room that cools at night cannot show the full ``rise_hpa``. Near
    saturation a reading counts as wet from this smaller rise above the normal."""
    persist: timedelta = timedelta(hours=16)
    """Longer than a day's laundry drying indoors (ten hours or so, and the shower before it)."""
    persist_share: float = 0.9
    """Share of the readings in ``persist`` that must be above (a window left open is allowed)."""
    normal_days: int = 14
    min_normal_days: int = 3
    normal_quantile: float = 0.5
    """Which of the daily medians is the normal: the median, so that the first days of a leak,
    counted in the history, do not become the normal it is judged against."""
    """Days of history (with at least ``MIN_READINGS_PER_DAY`` readings) before judging."""
    warm_weather_allowance: float = 2.0
    """How much of a warm spell's vapour the normal allows for, as a multiple of the rise that
    keeps the room at the RH of its normal days: 1 allows the same RH at the warmer temperature,
    2 (*default*) also a muggier spell's. The vapour a room holds at a steady RH rises about
    6-7 % a degree; a leak adds 5-10 hPa whatever the weather. (A room warmer than its usual by
    1.5 °C used to count as weather and no leak at all: on the simulated estate a third of
    summer leaks came during warm spells and were missed, with no ordinary home needing it.)"""
    comparable_temp_c: float = 4.0
    """The normal is taken over past days whose median temperature was within this of the last
    ``persist``'s: a week away with the heating off (cold rooms, nobody adding moisture) is not
    this home's normal when it is lived in. Counted with it, the normal sank, and ordinary life
    on the return (a humid day, laundry) read as a leak on the simulated estate."""
    clear_hpa: float = 2.0
    """Clears when the median of the last ``persist`` is this close to the normal again."""
    severity: Severity = Severity.ACT

    def __post_init__(self) -> None:
        check_positive("persist", self.persist)
        if not 0 < self.clear_hpa < self.rise_hpa:
            raise ValueError("need 0 < clear_hpa < rise_hpa")
        if not 0.5 <= self.persist_share <= 1.0:
            raise ValueError("persist_share must be in [0.5, 1]")
        if self.comparable_temp_c <= 0:
            raise ValueError("comparable_temp_c must be positive")
        if self.warm_weather_allowance < 0:
            raise ValueError("warm_weather_allowance must not be negative")
        if not 1 <= self.min_normal_days <= self.normal_days:
            raise ValueError("need 1 <= min_normal_days <= normal_days")


MIN_READINGS_PER_DAY = 12


class SuspectedLeakRule(Rule):
    condition: ClassVar[str] = "suspected_leak"
    reads_room: ClassVar[bool] = True
    alert_type: ClassVar[AlertType] = AlertType.SUSPECTED_LEAK
    hazard: ClassVar[Hazard] = Hazard.NONE

    def __init__(self, context: RuleContext, settings: SuspectedLeakSettings | None = None) -> None:
        super().__init__(context)
        self.settings = settings or SuspectedLeakSettings()
        # The last ``persist`` of readings as flat arrays, and each past day's median.
        self._ts = array("d")
        self._vp = array("d")
        self._temp = array("d")
        self._rh = array("d")
        self._day: int | None = None
        self._today = array("d")
        self._today_temp = array("d")
        self._daily: list[tuple[int, float, float]] = []
        """(day, median vapour pressure, median temperature) of each past day."""
        self._normal_hpa: float | None = None
        """Frozen while the condition is on, with the temperature of the days it came from."""
        self._normal_temp_c = 0.0

    def on_item(self, item: Item) -> list[ConditionEvent]:
        if not isinstance(item, Reading) or item.rh_pct is None or item.temp_c is None:
            return []
        if item.rh_pct <= 0:
            return []
        s = self.settings
        now = to_epoch(item.ts)
        vp = vapour_pressure_hpa(item.temp_c, item.rh_pct)
        self._add_to_day(item.ts.toordinal(), vp, item.temp_c)
        self._ts.append(now)
        self._vp.append(vp)
        self._temp.append(item.temp_c)
        self._rh.append(item.rh_pct)
        cut = bisect.bisect_right(self._ts, now - s.persist.total_seconds())
        if cut:
            del self._ts[:cut]
            del self._vp[:cut]
            del self._temp[:cut]
            del self._rh[:cut]
        if self.active:
            return self._maybe_clear(item.ts)
        if now - self._ts[0] < 0.9 * s.persist.total_seconds():
            return []
        temp_c = statistics.median(self._temp)
        lived_at_c = statistics.quantiles(self._temp, n=4, method="inclusive")[2]
        found = self._normal(temp_c, lived_at_c)
        if found is None:
            return []
        normal, normal_temp_c = found
        weather_hpa = self._weather_allowance(normal, normal_temp_c, temp_c)
        expected = normal + weather_hpa
        wet = [self._wet(v, rh, expected) for v, rh in zip(self._vp, self._rh, strict=True)]
        if sum(wet) < s.persist_share * len(wet):
            return []
        self._normal_hpa = normal
        self._normal_temp_c = normal_temp_c
        first = next(t for t, w in zip(self._ts, wet, strict=True) if w)
        median_hpa = statistics.median(self._vp)
        weather = (
            f" (+{weather_hpa:.1f} hPa allowed for a room {temp_c - normal_temp_c:.1f} C warmer "
            "than on those days)"
            if weather_hpa > 0
            else ""
        )
        return [
            self._turn_on(
                at=item.ts,
                since=from_epoch(first),
                severity=s.severity,
                reason=f"water vapour {median_hpa:.1f} hPa for "
                f"{s.persist.total_seconds() / 3600:g} h against this home's usual "
                f"{normal:.1f} hPa{weather}: water is getting into the air all the time",
                evidence=self._evidence(item, normal, median_hpa, weather_hpa),
            )
        ]

    def _weather_allowance(self, normal: float, normal_temp_c: float, temp_c: float) -> float:
        """Extra vapour a room ``temp_c`` warm may hold, against days ``normal_temp_c`` warm."""
        if temp_c <= normal_temp_c:
            return 0.0  # a cooler room holds no more vapour for it
        ratio = saturation_vapour_pressure_hpa(temp_c) / saturation_vapour_pressure_hpa(
            normal_temp_c
        )
        return self.settings.warm_weather_allowance * normal * (ratio - 1.0)

    def _wet(self, vp: float, rh_pct: float, normal: float) -> bool:
        s = self.settings
        rise = s.saturated_rise_hpa if rh_pct >= s.saturated_rh_pct else s.rise_hpa
        return vp >= normal + rise

    def _add_to_day(self, day: int, vp: float, temp_c: float) -> None:
        if self._day is not None and day != self._day:
            if len(self._today) >= MIN_READINGS_PER_DAY:
                self._daily.append(
                    (self._day, statistics.median(self._today), statistics.median(self._today_temp))
                )
            self._daily = [d for d in self._daily if d[0] > day - 1 - self.settings.normal_days]
            self._today = array("d")
            self._today_temp = array("d")
        self._day = day
        self._today.append(vp)
        self._today_temp.append(temp_c)

    def _normal(self, temp_c: float, lived_at_c: float) -> tuple[float, float] | None:
        """The usual vapour pressure of past days at about ``temp_c`` and those days' median
        temperature; None while too few.

        The days must also be comparable with ``lived_at_c``, the window's upper quartile:
        the first night home after a winter week away is spent in rooms at 6-7 °C with the
        household's moisture (saturated air), and the heating is on the next day. With most
        of the window cold, its median picks the empty home's days, against which every
        lived-in hour is wet; the upper quartile, the heated part, rules them out. In a home
        whose temperature is steady the two are the same."""
        s = self.settings
        days = [
            (m, t)
            for _, m, t in self._daily
            if abs(t - temp_c) <= s.comparable_temp_c and abs(t - lived_at_c) <= s.comparable_temp_c
        ]
        if len(days) < s.min_normal_days:
            return None
        medians = sorted(m for m, _ in days)
        normal = medians[min(len(medians) - 1, int(s.normal_quantile * len(medians)))]
        return normal, statistics.median(t for _, t in days)

    def _maybe_clear(self, at: datetime) -> list[ConditionEvent]:
        s = self.settings
        normal = self._normal_hpa
        assert normal is not None
        median_hpa = statistics.median(self._vp)
        weather_hpa = self._weather_allowance(
            normal, self._normal_temp_c, statistics.median(self._temp)
        )
        if median_hpa > normal + weather_hpa + s.clear_hpa:
            return []
        self._normal_hpa = None
        return [
            self._turn_off(
                at=at,
                reason=f"water vapour back within {s.clear_hpa:g} hPa of the usual "
                f"{normal + weather_hpa:.1f} hPa for {s.persist.total_seconds() / 3600:g} h",
                evidence={
                    "median_vapour_hpa": round(median_hpa, 2),
                    "warm_weather_allowance_hpa": round(weather_hpa, 2),
                },
            )
        ]

    def _evidence(
        self, item: Reading, normal: float, median: float, weather_hpa: float
    ) -> dict[str, EvidenceValue]:
        return {
            "rh_pct": item.rh_pct,
            "temp_c": item.temp_c,
            "median_vapour_hpa": round(median, 2),
            "usual_vapour_hpa": round(normal, 2),
            "usual_temp_c": round(self._normal_temp_c, 2),
            "warm_weather_allowance_hpa": round(weather_hpa, 2),
            "rise_hpa": self.settings.rise_hpa,
            "persist_hours": self.settings.persist.total_seconds() / 3600,
        }
