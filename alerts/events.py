"""What rules emit: condition events with their evidence."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum, StrEnum

__all__ = [
    "AlertType",
    "ConditionEvent",
    "EvidenceValue",
    "Hazard",
    "Severity",
    "Transition",
]

EvidenceValue = float | int | str | bool | None


class Severity(IntEnum):
    """Ordered urgency; comparisons (``>``, ``max``) rank alerts."""

    INFO = 1
    WATCH = 2
    ACT = 3
    URGENT = 4
    EMERGENCY = 5

    @property
    def label(self) -> str:
        return self.name.lower()


class Transition(StrEnum):
    """How a condition changed.

    ``on``/``off`` bound a state that lasts (damp, frost, offline); ``update`` reports a new
    severity while on; ``occurred`` is a point event with no duration (an emptying nobody
    recorded), which only a person closes.
    """

    ON = "on"
    UPDATE = "update"
    OFF = "off"
    OCCURRED = "occurred"


class AlertType(StrEnum):
    """What an officer or crew sees: several rules may feed the same alert type."""

    DAMP_MOULD = "damp_mould"
    EXCESS_COLD = "excess_cold"
    FROST_RISK = "frost_risk"
    VOID_HEATING_OFF = "void_heating_off"
    SUSPECTED_LEAK = "suspected_leak"
    POOR_VENTILATION = "poor_ventilation"
    BIN_OVERFLOW = "bin_overflow"
    BIN_FIRE = "bin_fire"
    BIN_KNOCKED_OVER = "bin_knocked_over"
    SENSOR_STUCK = "sensor_stuck"
    UNRECORDED_EMPTYING = "unrecorded_emptying"
    WASTED_COLLECTION = "wasted_collection"
    DEVICE_OFFLINE = "device_offline"
    BATTERY_LOW = "battery_low"
    SEQUENCE_GAPS = "sequence_gaps"


class Hazard(StrEnum):
    """The Awaab's Law category a rule's condition points to, if any."""

    DAMP_MOULD = "damp_mould"
    """Significant damp and mould hazard (phase 1, in force 27 October 2025)."""
    EMERGENCY = "emergency"
    """Imminent and significant risk of harm: 24-hour investigate and make safe."""
    EXCESS_COLD = "excess_cold"
    """HHSRS excess cold (added in phase 2, 2026)."""
    NONE = "none"
    """Operational: no statutory clock (bins, device health)."""


def _freeze(evidence: Mapping[str, EvidenceValue]) -> tuple[tuple[str, EvidenceValue], ...]:
    return tuple(evidence.items())


@dataclass(frozen=True, slots=True)
class ConditionEvent:
    """One change of one rule's condition for one device of one subject.

    ``at`` is when the rule could decide (the reading or deadline that tipped it); ``since``
    is when the evidence says the condition began (the first high reading in the window), so
    time-to-detect is ``at - since``. ``evidence`` holds the numbers and thresholds compared
    and ``reason`` says in words why the rule fired: no opaque scores.
    """

    subject_id: str
    device_id: str
    condition: str
    alert_type: AlertType
    transition: Transition
    at: datetime
    since: datetime
    severity: Severity
    reason: str
    hazard: Hazard = Hazard.NONE
    starts_statutory_clock: bool = False
    evidence: tuple[tuple[str, EvidenceValue], ...] = field(default=())

    @property
    def evidence_map(self) -> dict[str, EvidenceValue]:
        return dict(self.evidence)

    @staticmethod
    def freeze_evidence(
        evidence: Mapping[str, EvidenceValue],
    ) -> tuple[tuple[str, EvidenceValue], ...]:
        return _freeze(evidence)
