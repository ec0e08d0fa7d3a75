"""The one exception tree of the alerts package."""

from __future__ import annotations

from datetime import datetime

from common.errors import CivicError


class AlertsError(Exception):
    """Base of every error the alerts package raises on purpose."""


class OutOfOrderError(AlertsError):
    """An item reached a detector with a timestamp earlier than one it has already seen.

    Rules are state machines over time: feeding the past after the present would make live
    and backfill results differ, so the caller (the store) must order items by ``ts``.
    """

    def __init__(self, device_id: str, ts: datetime, last_ts: datetime) -> None:
        super().__init__(
            f"item for device {device_id!r} at {ts.isoformat()} is earlier than "
            f"{last_ts.isoformat()}, already processed; feed items in time order"
        )
        self.device_id = device_id
        self.ts = ts
        self.last_ts = last_ts


class LifecycleError(AlertsError):
    """An alert action that the lifecycle does not allow (e.g. acknowledging a resolved alert)."""

    def __init__(self, alert_id: str, reason: str) -> None:
        super().__init__(f"alert {alert_id!r}: {reason}")
        self.alert_id = alert_id
        self.reason = reason


class CheckpointFormatError(AlertsError, CivicError):
    """Stored detector states were written by rules whose state is laid out differently (an
    upgrade changed a rule): reading them would misread the state, so they are refused."""

    def __init__(self, count: int, found: str, expected: str) -> None:
        super().__init__(
            f"{count} device(s) have alert checkpoints written by another version of the rules "
            f"(state layout {found}, this version's is {expected}); re-evaluate their history "
            "with this version: `civic alerts backfill --since <date>` (from before the oldest "
            "open alert you want re-checked), then start `civic alerts run` again"
        )
        self.count = count
        self.found = found
        self.expected = expected
