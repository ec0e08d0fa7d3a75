"""Alerts: readings in, condition events and alerts out, with Awaab's Law clocks.

Pure and deterministic: no database, no broker, no wall clock. The store feeds each
device's items in time order to a :class:`Detector` and folds the resulting
:class:`ConditionEvent` values into an :class:`AlertBook`.

    detector = Detector.for_home(Home(uprn="100023336956"), device_id="env-0042")
    events = detector.feed(readings)           # or detector.advance(now) when idle
    outcome = book.apply_all(events)           # new book, changed alerts, audit trail
    outcome = outcome.book.tick(now)           # auto-resolve, escalate, remind
"""

from alerts.awaab import (
    AwaabSettings,
    ClockPolicy,
    Deadline,
    DeadlineState,
    DeadlineStatus,
    Milestone,
    WorkingDayCalendar,
    alert_deadlines,
    deadline_status,
    emergency_deadlines,
    overdue,
    significant_hazard_deadlines,
)
from alerts.detector import (
    BinRuleSettings,
    Detector,
    DeviceRuleSettings,
    HomeRuleSettings,
    OpenCondition,
    bin_rules,
    detect,
    home_rules,
)
from alerts.errors import AlertsError, LifecycleError, OutOfOrderError
from alerts.events import AlertType, ConditionEvent, EvidenceValue, Hazard, Severity, Transition
from alerts.lifecycle import (
    SYSTEM_ACTOR,
    Alert,
    AlertBook,
    AlertStatus,
    AuditAction,
    AuditEvent,
    LifecycleSettings,
    Outcome,
)
from alerts.mould import MouldSettings, MouldState, MouldStep, SensitivityClass, mould_step
from alerts.psychrometrics import condensation_margin_c, dew_point_c, surface_rh_pct
from alerts.readings import (
    Bin,
    CollectionRecord,
    FillForecast,
    Home,
    Item,
    PeerChange,
    PeerMoisture,
)
from firmware_contracts import Reading, WasteStream

__all__ = [
    "SYSTEM_ACTOR",
    "Alert",
    "AlertBook",
    "AlertStatus",
    "AlertType",
    "AlertsError",
    "AuditAction",
    "AuditEvent",
    "AwaabSettings",
    "Bin",
    "BinRuleSettings",
    "ClockPolicy",
    "CollectionRecord",
    "ConditionEvent",
    "Deadline",
    "DeadlineState",
    "DeadlineStatus",
    "Detector",
    "DeviceRuleSettings",
    "EvidenceValue",
    "FillForecast",
    "Hazard",
    "Home",
    "HomeRuleSettings",
    "Item",
    "LifecycleError",
    "LifecycleSettings",
    "Milestone",
    "MouldSettings",
    "MouldState",
    "MouldStep",
    "OpenCondition",
    "OutOfOrderError",
    "Outcome",
    "PeerChange",
    "PeerMoisture",
    "Reading",
    "SensitivityClass",
    "Severity",
    "Transition",
    "WasteStream",
    "WorkingDayCalendar",
    "alert_deadlines",
    "bin_rules",
    "condensation_margin_c",
    "deadline_status",
    "detect",
    "dew_point_c",
    "emergency_deadlines",
    "home_rules",
    "mould_step",
    "overdue",
    "significant_hazard_deadlines",
    "surface_rh_pct",
]
