"""Domain values the rules consume: readings, subjects, and the side inputs bins need.

Everything here is a frozen dataclass validated on construction, so a rule never has to ask
whether a timestamp is naive or a humidity is 140 %.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

__all__ = [
    "Bin",
    "CollectionRecord",
    "FillForecast",
    "Home",
    "Item",
    "PeerChange",
    "Reading",
    "WasteStream",
]

_UPRN = re.compile(r"^[0-9]{1,12}$")
_DEVICE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def _require_utc(name: str, value: datetime) -> None:
    offset = value.utcoffset()
    if offset is None:
        raise ValueError(f"{name} must be timezone-aware (UTC), got naive {value.isoformat()}")
    if offset != timedelta(0):
        raise ValueError(f"{name} must be in UTC, got offset {offset} in {value.isoformat()}")


def _require_device_id(value: str) -> None:
    if not _DEVICE_ID.match(value):
        raise ValueError(f"device_id {value!r} must match {_DEVICE_ID.pattern}")


def _check_range(name: str, value: float | None, low: float, high: float) -> None:
    if value is None:
        return
    if not math.isfinite(value) or not low <= value <= high:
        raise ValueError(f"{name}={value!r} is outside the plausible range [{low}, {high}]")


@dataclass(frozen=True, slots=True)
class Reading:
    """One decoded uplink from one device. Absent quantities are ``None``.

    The plausible ranges below reject decoder faults (a bin at 400 °C, RH of 140 %), not
    unusual weather: a bin fire reads hot, so the temperature range is wide on purpose.
    """

    device_id: str
    ts: datetime
    fill_pct: float | None = None
    temp_c: float | None = None
    rh_pct: float | None = None
    battery_v: float | None = None
    co2_ppm: float | None = None
    tilt_deg: float | None = None
    seq: int | None = None

    def __post_init__(self) -> None:
        _require_device_id(self.device_id)
        _require_utc("ts", self.ts)
        _check_range("fill_pct", self.fill_pct, 0.0, 100.0)
        _check_range("temp_c", self.temp_c, -50.0, 200.0)
        _check_range("rh_pct", self.rh_pct, 0.0, 100.0)
        _check_range("battery_v", self.battery_v, 0.0, 30.0)
        _check_range("co2_ppm", self.co2_ppm, 0.0, 100_000.0)
        _check_range("tilt_deg", self.tilt_deg, 0.0, 180.0)
        if self.seq is not None and self.seq < 0:
            raise ValueError(f"seq must be non-negative, got {self.seq}")


@dataclass(frozen=True, slots=True)
class FillForecast:
    """A caller's forecast for one bin: ``fill_pct`` expected at ``target_ts``, made at ``ts``.

    The forecasting model lives elsewhere (routing); the overflow rule only reads its output.
    A forecast stays in force until a newer one for the same bin arrives or its target passes.
    """

    device_id: str
    ts: datetime
    target_ts: datetime
    fill_pct: float

    def __post_init__(self) -> None:
        _require_device_id(self.device_id)
        _require_utc("ts", self.ts)
        _require_utc("target_ts", self.target_ts)
        if self.target_ts < self.ts:
            raise ValueError("target_ts must not be before ts: a forecast looks forward")
        if not math.isfinite(self.fill_pct) or self.fill_pct < 0:
            raise ValueError(f"fill_pct must be a non-negative number, got {self.fill_pct!r}")


@dataclass(frozen=True, slots=True)
class PeerChange:
    """How much comparable bins (same stream and area) changed over ``window`` up to ``ts``.

    ``change_pct`` is a robust summary the caller computes, typically the median over peers of
    (max fill - min fill) in the window. A flat sensor is only "stuck" when its peers moved.
    """

    device_id: str
    ts: datetime
    window: timedelta
    change_pct: float
    peer_count: int

    def __post_init__(self) -> None:
        _require_device_id(self.device_id)
        _require_utc("ts", self.ts)
        if self.window <= timedelta(0):
            raise ValueError("window must be positive")
        if not math.isfinite(self.change_pct) or self.change_pct < 0:
            raise ValueError(f"change_pct must be a non-negative number, got {self.change_pct!r}")
        if self.peer_count < 1:
            raise ValueError("peer_count must be at least 1")


@dataclass(frozen=True, slots=True)
class CollectionRecord:
    """A crew's record that a bin was emptied at ``ts`` (from the round sheet or in-cab app)."""

    device_id: str
    ts: datetime
    crew: str | None = None

    def __post_init__(self) -> None:
        _require_device_id(self.device_id)
        _require_utc("ts", self.ts)


Item = Reading | FillForecast | PeerChange | CollectionRecord
"""Anything a detector consumes, in time order: readings plus the bin side inputs."""


@dataclass(frozen=True, slots=True)
class Home:
    """A council home, identified by its UPRN. Void homes are empty between tenancies."""

    uprn: str
    void: bool = False
    patch: str | None = None

    def __post_init__(self) -> None:
        if not _UPRN.match(self.uprn):
            raise ValueError(f"uprn {self.uprn!r} must be 1 to 12 digits")

    @property
    def subject_id(self) -> str:
        return self.uprn


class WasteStream(StrEnum):
    """FIWARE ``storedWasteKind`` values the council collects separately."""

    GENERAL = "general"
    RECYCLING = "recycling"
    GARDEN = "garden"
    FOOD = "food"


@dataclass(frozen=True, slots=True)
class Bin:
    """A street bin; its fill sensor's device id identifies it."""

    device_id: str
    threshold_pct: float = 80.0
    waste_stream: WasteStream = WasteStream.GENERAL

    def __post_init__(self) -> None:
        _require_device_id(self.device_id)
        if not 0.0 < self.threshold_pct <= 100.0:
            raise ValueError(f"threshold_pct must be in (0, 100], got {self.threshold_pct}")

    @property
    def subject_id(self) -> str:
        return self.device_id
