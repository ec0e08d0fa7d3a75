"""Run a subject's rules over one device's items, live or as a backfill, with equal results.

One :class:`Detector` per device: a home with a bedroom and a bathroom sensor has two, both
reporting events under the home's UPRN. Feed items in time order with :meth:`Detector.feed`
and let time pass with :meth:`Detector.advance` (offline detection and other deadlines).
A whole history fed at once gives exactly the events that feeding it piece by piece does,
as long as ``advance`` is only called up to a time by which every item up to that time has
arrived (the wall clock minus the ingest latency allowance).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from alerts.awaab import ClockPolicy
from alerts.errors import OutOfOrderError
from alerts.events import ConditionEvent, Transition
from alerts.readings import Bin, Home, Item
from alerts.rules import (
    Adf2006Rule,
    Adf2006Settings,
    Adf2010Rule,
    Adf2010Settings,
    BatteryLowRule,
    BatteryLowSettings,
    BinFireRule,
    BinFireSettings,
    Co2Rule,
    Co2Settings,
    ColdHomeRule,
    ColdHomeSettings,
    CondensationRule,
    CondensationSettings,
    FrozenReadingsRule,
    FrozenReadingsSettings,
    KnockedOverRule,
    KnockedOverSettings,
    MoistureExcessRule,
    MoistureExcessSettings,
    MouldIndexRule,
    MouldIndexSettings,
    OfflineRule,
    OfflineSettings,
    OverflowRule,
    OverflowSettings,
    Rule,
    RuleContext,
    SequenceGapRule,
    SequenceGapSettings,
    StuckSensorRule,
    StuckSensorSettings,
    SuspectedLeakRule,
    SuspectedLeakSettings,
    UnrecordedEmptyingRule,
    UnrecordedEmptyingSettings,
    VoidFrostRule,
    VoidFrostSettings,
    VoidHeatingOffRule,
    VoidHeatingOffSettings,
    WastedCollectionRule,
    WastedCollectionSettings,
)

__all__ = [
    "BinRuleSettings",
    "Detector",
    "DeviceRuleSettings",
    "HomeRuleSettings",
    "OpenCondition",
    "bin_rules",
    "detect",
    "home_rules",
]


@dataclass(frozen=True, slots=True)
class DeviceRuleSettings:
    """Health rules every device gets."""

    offline: OfflineSettings = field(default_factory=OfflineSettings)
    battery: BatteryLowSettings = field(default_factory=BatteryLowSettings)
    sequence: SequenceGapSettings = field(default_factory=SequenceGapSettings)


@dataclass(frozen=True, slots=True)
class HomeRuleSettings:
    """Settings of every home rule; ``disabled`` names conditions to leave out."""

    adf2006: Adf2006Settings = field(default_factory=Adf2006Settings)
    adf2010: Adf2010Settings = field(default_factory=Adf2010Settings)
    mould: MouldIndexSettings = field(default_factory=MouldIndexSettings)
    moisture_excess: MoistureExcessSettings = field(default_factory=MoistureExcessSettings)
    condensation: CondensationSettings = field(default_factory=CondensationSettings)
    cold_home: ColdHomeSettings = field(default_factory=ColdHomeSettings)
    void_heating_off: VoidHeatingOffSettings = field(default_factory=VoidHeatingOffSettings)
    void_frost: VoidFrostSettings = field(default_factory=VoidFrostSettings)
    leak: SuspectedLeakSettings = field(default_factory=SuspectedLeakSettings)
    co2: Co2Settings = field(default_factory=Co2Settings)
    frozen: FrozenReadingsSettings = field(default_factory=FrozenReadingsSettings)
    device: DeviceRuleSettings = field(default_factory=DeviceRuleSettings)
    clock_policy: ClockPolicy = field(default_factory=ClockPolicy)
    disabled: frozenset[str] = frozenset()


def _bin_device_defaults() -> DeviceRuleSettings:
    # Bins report hourly to save battery, so "offline" waits for missed hourly reports.
    return DeviceRuleSettings(offline=OfflineSettings(expected_interval=timedelta(hours=1)))


@dataclass(frozen=True, slots=True)
class BinRuleSettings:
    overflow: OverflowSettings = field(default_factory=OverflowSettings)
    fire: BinFireSettings = field(default_factory=BinFireSettings)
    knocked_over: KnockedOverSettings = field(default_factory=KnockedOverSettings)
    stuck: StuckSensorSettings = field(default_factory=StuckSensorSettings)
    unrecorded_emptying: UnrecordedEmptyingSettings = field(
        default_factory=UnrecordedEmptyingSettings
    )
    wasted_collection: WastedCollectionSettings = field(default_factory=WastedCollectionSettings)
    device: DeviceRuleSettings = field(default_factory=_bin_device_defaults)
    disabled: frozenset[str] = frozenset()


@functools.cache
def _default_home_settings() -> HomeRuleSettings:
    return HomeRuleSettings()  # immutable, so one instance serves every detector


@functools.cache
def _default_bin_settings() -> BinRuleSettings:
    return BinRuleSettings()


def _device_rules(subject_id: str, device_id: str, settings: DeviceRuleSettings) -> list[Rule]:
    context = RuleContext(subject_id, device_id)
    return [
        OfflineRule(context, settings.offline),
        BatteryLowRule(context, settings.battery),
        SequenceGapRule(context, settings.sequence),
    ]


def home_rules(home: Home, device_id: str, settings: HomeRuleSettings | None = None) -> list[Rule]:
    """The rules for one environment sensor in ``home``, occupied or void."""
    s = settings or _default_home_settings()

    def context(rule_type: type[Rule]) -> RuleContext:
        starts = s.clock_policy.starts_clock(rule_type.condition, rule_type.hazard, void=home.void)
        return RuleContext(
            home.subject_id,
            device_id,
            starts_statutory_clock=starts,
            clock_min_severity=s.clock_policy.min_severity,
        )

    rules: list[Rule] = [
        # First: while it is on, the detector gives the room rules after it nothing.
        FrozenReadingsRule(context(FrozenReadingsRule), s.frozen),
        Adf2006Rule(context(Adf2006Rule), s.adf2006),
        Adf2010Rule(context(Adf2010Rule), s.adf2010.for_void() if home.void else s.adf2010),
        MouldIndexRule(context(MouldIndexRule), s.mould),
        CondensationRule(context(CondensationRule), s.condensation),
        SuspectedLeakRule(context(SuspectedLeakRule), s.leak),
        Co2Rule(context(Co2Rule), s.co2),
    ]
    if home.void:
        # No household adds moisture to an empty home (and it is nobody's peer).
        rules += [
            VoidHeatingOffRule(context(VoidHeatingOffRule), s.void_heating_off),
            VoidFrostRule(context(VoidFrostRule), s.void_frost),
        ]
    else:
        rules += [
            ColdHomeRule(context(ColdHomeRule), s.cold_home),
            MoistureExcessRule(context(MoistureExcessRule), s.moisture_excess),
        ]
    rules += _device_rules(home.subject_id, device_id, s.device)
    return [rule for rule in rules if rule.condition not in s.disabled]


def bin_rules(bin_: Bin, settings: BinRuleSettings | None = None) -> list[Rule]:
    """The rules for one bin's sensor."""
    s = settings or _default_bin_settings()
    context = RuleContext(bin_.subject_id, bin_.device_id)
    rules: list[Rule] = [
        OverflowRule(context, bin_.threshold_pct, s.overflow),
        BinFireRule(context, s.fire),
        KnockedOverRule(context, s.knocked_over),
        StuckSensorRule(context, s.stuck),
        UnrecordedEmptyingRule(context, s.unrecorded_emptying),
        WastedCollectionRule(context, s.wasted_collection),
        *_device_rules(bin_.subject_id, bin_.device_id, s.device),
    ]
    return [rule for rule in rules if rule.condition not in s.disabled]


@dataclass(frozen=True, slots=True)
class OpenCondition:
    condition: str
    severity: str
    since: datetime


class Detector:
    """One device's rules and their state; feed items in time order.

    The state is plain Python objects: ``copy.deepcopy`` or ``pickle`` a detector to
    checkpoint it between batches.
    """

    def __init__(self, device_id: str, rules: Sequence[Rule]) -> None:
        if not rules:
            raise ValueError("a detector needs at least one rule")
        for rule in rules:
            if rule.context.device_id != device_id:
                raise ValueError(
                    f"rule {rule.condition} is for device {rule.context.device_id!r}, "
                    f"not {device_id!r}"
                )
        self.device_id = device_id
        self.rules = list(rules)
        self.horizon: datetime | None = None
        """Latest time the detector has reached, by an item or by ``advance``."""

    @classmethod
    def for_home(
        cls, home: Home, device_id: str, settings: HomeRuleSettings | None = None
    ) -> Detector:
        return cls(device_id, home_rules(home, device_id, settings))

    @classmethod
    def for_bin(cls, bin_: Bin, settings: BinRuleSettings | None = None) -> Detector:
        return cls(bin_.device_id, bin_rules(bin_, settings))

    def feed(self, items: Iterable[Item]) -> list[ConditionEvent]:
        """Process items (time-ordered, this device's) and return the events they cause."""
        batch = list(items)
        horizon = self.horizon
        for item in batch:
            if item.device_id != self.device_id:
                raise ValueError(
                    f"item for device {item.device_id!r} fed to the detector of {self.device_id!r}"
                )
            if horizon is not None and item.ts < horizon:
                raise OutOfOrderError(self.device_id, item.ts, horizon)
            horizon = item.ts
        events: list[ConditionEvent] = []
        for item in batch:
            events += self._pass_time(item.ts)
            frozen = False
            for rule in self.rules:
                if frozen and rule.reads_room:
                    continue  # a stuck sensor's repeated values say nothing about the room
                events += rule.on_item(item)
                if isinstance(rule, FrozenReadingsRule):
                    frozen = rule.active
        return events

    def advance(self, now: datetime) -> list[ConditionEvent]:
        """Let time pass to ``now`` with no new item; returns deadline-driven events."""
        if self.horizon is not None and now < self.horizon:
            raise OutOfOrderError(self.device_id, now, self.horizon)
        return self._pass_time(now)

    @functools.cached_property
    def _timed_rules(self) -> list[Rule]:
        """The rules with deadlines; asking the others the time on every item is wasted work."""
        return [rule for rule in self.rules if type(rule).on_time is not Rule.on_time]

    def _pass_time(self, now: datetime) -> list[ConditionEvent]:
        self.horizon = now
        events: list[ConditionEvent] = []
        for rule in self._timed_rules:
            events += rule.on_time(now)
        if not events:
            return events
        # Deadlines may fall in any order across rules: report them in time order, which is
        # what a live run calling advance() often would see.
        events.sort(key=lambda event: event.at)
        return [self._annotate(event) for event in events]

    def _annotate(self, event: ConditionEvent) -> ConditionEvent:
        if event.condition != OfflineRule.condition or event.transition is not Transition.ON:
            return event
        still_open = ",".join(item.condition for item in self.open_conditions())
        return dataclasses.replace(
            event, evidence=(*event.evidence, ("open_conditions", still_open))
        )

    def open_conditions(self) -> list[OpenCondition]:
        """Conditions currently on, other than the device being offline."""
        return [
            OpenCondition(rule.condition, rule.severity.label, rule.since)
            for rule in self.rules
            if rule.active
            and rule.severity is not None
            and rule.since is not None
            and rule.condition != OfflineRule.condition
        ]


def detect(
    detector: Detector, items: Iterable[Item], *, until: datetime | None = None
) -> list[ConditionEvent]:
    """Backfill: feed a whole history, then let time run to ``until`` if given."""
    events = detector.feed(items)
    if until is not None:
        events += detector.advance(until)
    return events
