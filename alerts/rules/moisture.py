"""Damp from moisture: a home whose air holds far more water than its neighbours', day after day.

Room RH alone cannot tell a damp home in a warm, airy summer (73-75 %) from an ordinary home in
a cool winter week drying laundry (75-78 %): RH rises as a room cools. The water in the air
does not. BS 5250 and ISO 13788 judge a dwelling's moisture by its *moisture excess*, the
vapour indoors over the vapour outdoors; a home that keeps a high excess has too little
ventilation for what its household makes, or water coming in, and condensation and mould follow
on its coldest surfaces.

The estate has no outdoor humidity sensor, but every home breathes the same outdoor air, so
the rule compares each occupied home's mean absolute humidity over a day with the other
occupied homes' on the same day (:class:`alerts.readings.PeerMoisture`, every six hours): a
home above the peers' upper Tukey fence (Q3 + 1.5 × IQR, the usual bound of "far above the
rest", which scales with how much homes differ in each season) on most days of a week is
`act`. Laundry days, a leak of two or three days or a crowded weekend lift an ordinary home
above the fence for a day or two, not five days of seven.

Five days of seven is the persistence a damp hazard needs (most days of a week), so by default
the rule starts the Awaab's Law clock like ADF 2010's week and the mould index (the
investigation it starts is what tells a crowded but well-aired home from a damp one); a council
that wants surface evidence first sets ``[home.clock_policy.overrides] damp_moisture_excess =
false``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import ClassVar

from alerts.events import AlertType, ConditionEvent, EvidenceValue, Hazard, Severity
from alerts.readings import Item, PeerMoisture
from alerts.rules._base import (
    HeldSpans,
    Rule,
    RuleContext,
    WindowIntegral,
    check_positive,
    from_epoch,
)

__all__ = ["MoistureExcessRule", "MoistureExcessSettings"]

_DAY = 86_400.0


@dataclass(frozen=True, slots=True)
class MoistureExcessSettings:
    """How far above its peers, and for how much of a week, a home's moisture must be."""

    fence_iqr: float = 1.5
    """The upper fence is the peers' Q3 plus this many interquartile ranges (Tukey's 1.5)."""
    min_over_median_g_m3: float = 1.0
    """And at least this far over the peers' median: on an estate of near-identical homes the
    fence would sit a hair above the median (*default*: about a third of what an ordinary
    household adds over outdoor air in winter)."""
    lookback: timedelta = timedelta(days=7)
    min_time_over: timedelta = timedelta(days=5)
    """Time above the fence, in all, within ``lookback`` before the rule is on: most days of
    a week: persistence, not one wet spell (*default*)."""
    clear_time_over: timedelta = timedelta(days=2)
    """Clears when the time above the fence within ``lookback`` falls to this (hysteresis)."""
    min_coverage: float = 0.75
    """Share of ``lookback`` that must hold summaries before the rule may clear."""
    max_hold: timedelta = timedelta(hours=12)
    """A summary stands for at most this long before it (they come every six hours)."""
    severity: Severity = Severity.ACT

    def __post_init__(self) -> None:
        check_positive("fence_iqr", self.fence_iqr)
        check_positive("lookback", self.lookback)
        check_positive("min_time_over", self.min_time_over)
        check_positive("max_hold", self.max_hold)
        if self.min_over_median_g_m3 < 0:
            raise ValueError("min_over_median_g_m3 must not be negative")
        if self.min_time_over > self.lookback:
            raise ValueError("min_time_over must not be longer than lookback")
        if not timedelta(0) <= self.clear_time_over < self.min_time_over:
            raise ValueError("need 0 <= clear_time_over < min_time_over")
        if not 0.0 < self.min_coverage <= 1.0:
            raise ValueError(f"min_coverage must be in (0, 1], got {self.min_coverage}")

    def fence_g_m3(self, peers: PeerMoisture) -> float:
        """The absolute humidity above which a home is far above these peers."""
        spread = peers.peer_q3_g_m3 - peers.peer_q1_g_m3
        return max(
            peers.peer_q3_g_m3 + self.fence_iqr * spread,
            peers.peer_median_g_m3 + self.min_over_median_g_m3,
        )


class MoistureExcessRule(Rule):
    """A home's day-mean absolute humidity above its peers' upper fence on most days of a week."""

    condition: ClassVar[str] = "damp_moisture_excess"
    reads_room: ClassVar[bool] = True
    alert_type: ClassVar[AlertType] = AlertType.DAMP_MOULD
    hazard: ClassVar[Hazard] = Hazard.DAMP_MOULD

    def __init__(
        self, context: RuleContext, settings: MoistureExcessSettings | None = None
    ) -> None:
        super().__init__(context)
        self.settings = settings or MoistureExcessSettings()
        self._held = HeldSpans(self.settings.max_hold)
        self._over = WindowIntegral(self.settings.lookback)

    def on_item(self, item: Item) -> list[ConditionEvent]:
        if not isinstance(item, PeerMoisture):
            return []
        span = self._held.span(item.ts)
        if span is None:
            return []
        s = self.settings
        start_s, now_s = span
        fence = s.fence_g_m3(item)
        self._over.add(start_s, now_s, 1.0 if item.home_g_m3 > fence else 0.0)
        covered_s, over_s = self._over.totals(now_s)
        evidence = self._evidence(item, fence, covered_s, over_s)
        if not self.active:
            if over_s < s.min_time_over.total_seconds():
                return []
            first = self._over.first_start(now_s)
            return [
                self._turn_on(
                    at=item.ts,
                    since=item.ts if first is None else from_epoch(first),
                    severity=s.severity,
                    reason=self._reason(item, fence, over_s),
                    evidence=evidence,
                )
            ]
        clear = (
            covered_s >= s.min_coverage * s.lookback.total_seconds()
            and over_s <= s.clear_time_over.total_seconds()
        )
        if not clear:
            return []
        return [
            self._turn_off(at=item.ts, reason=self._reason(item, fence, over_s), evidence=evidence)
        ]

    def _reason(self, item: PeerMoisture, fence: float, over_s: float) -> str:
        lookback_days = self.settings.lookback.total_seconds() / _DAY
        return (
            f"air held {item.home_g_m3:.1f} g/m3 of water over the last day against a median "
            f"of {item.peer_median_g_m3:.1f} in {item.peer_count} other homes (far above the "
            f"rest from {fence:.1f}); far above on {over_s / _DAY:.1f} of the last "
            f"{lookback_days:g} days"
        )

    def _evidence(
        self, item: PeerMoisture, fence: float, covered_s: float, over_s: float
    ) -> dict[str, EvidenceValue]:
        s = self.settings
        return {
            "home_g_m3": item.home_g_m3,
            "peer_median_g_m3": item.peer_median_g_m3,
            "peer_q1_g_m3": item.peer_q1_g_m3,
            "peer_q3_g_m3": item.peer_q3_g_m3,
            "peer_count": item.peer_count,
            "fence_g_m3": round(fence, 3),
            "excess_over_median_g_m3": round(item.home_g_m3 - item.peer_median_g_m3, 3),
            "days_far_above": round(over_s / _DAY, 3),
            "lookback_days": s.lookback.total_seconds() / _DAY,
            "min_days_far_above": s.min_time_over.total_seconds() / _DAY,
            "coverage": round(covered_s / s.lookback.total_seconds(), 3),
        }
