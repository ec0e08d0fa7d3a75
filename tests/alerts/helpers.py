"""Small builders shared by the alert tests."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from alerts import ConditionEvent, Reading, Transition

T0 = datetime(2025, 11, 3, tzinfo=UTC)
HOME_DEVICE = "env-test-01"
BIN_DEVICE = "bin-test-01"


def series(
    values: Iterable[dict[str, float | int | None]],
    *,
    step: timedelta = timedelta(minutes=15),
    device_id: str = HOME_DEVICE,
    start: datetime = T0,
) -> list[Reading]:
    return [
        Reading(device_id=device_id, ts=start + i * step, **fields)
        for i, fields in enumerate(values)
    ]


def transitions(events: Iterable[ConditionEvent], condition: str) -> list[tuple[str, datetime]]:
    return [(e.transition.value, e.at) for e in events if e.condition == condition]


def ons(events: Iterable[ConditionEvent]) -> list[str]:
    return [e.condition for e in events if e.transition in (Transition.ON, Transition.OCCURRED)]
