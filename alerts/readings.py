"""Domain values the rules consume: subjects, and the side inputs bins and homes need besides
readings.

Readings are the contract's :class:`firmware_contracts.Reading`, the one type every stage uses.

Everything here is a frozen dataclass validated on construction, so a rule never has to ask
whether a timestamp is naive or a humidity is 140 %.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from firmware_contracts import Reading, WasteStream

__all__ = [
    "Bin",
    "CollectionRecord",
    "FillForecast",
    "Home",
    "Item",
    "PeerChange",
    "PeerMoisture",
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


def _require_peer_summary(device_id: str, ts: datetime, window: timedelta, peers: int) -> None:
    _require_device_id(device_id)
    _require_utc("ts", ts)
    if window <= timedelta(0):
        raise ValueError("window must be positive")
    if peers < 1:
        raise ValueError("peer_count must be at least 1")


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
        _require_peer_summary(self.device_id, self.ts, self.window, self.peer_count)
        if not math.isfinite(self.change_pct) or self.change_pct < 0:
            raise ValueError(f"change_pct must be a non-negative number, got {self.change_pct!r}")


@dataclass(frozen=True, slots=True)
class PeerMoisture:
    """A home's mean absolute humidity over ``window`` up to ``ts``, beside the same figure's
    quartiles over the other occupied homes of the estate (:mod:`alerts.peers`).

    Every home breathes the same outdoor air, so the difference is the moisture the home adds
    or keeps beyond its neighbours', on the same days, whatever the weather.
    """

    device_id: str
    ts: datetime
    window: timedelta
    home_g_m3: float
    peer_q1_g_m3: float
    peer_median_g_m3: float
    peer_q3_g_m3: float
    peer_count: int

    def __post_init__(self) -> None:
        _require_peer_summary(self.device_id, self.ts, self.window, self.peer_count)
        values = (self.home_g_m3, self.peer_q1_g_m3, self.peer_median_g_m3, self.peer_q3_g_m3)
        if not all(math.isfinite(v) and v >= 0 for v in values):
            raise ValueError(f"absolute humidities must be non-negative numbers, got {values}")
        if not self.peer_q1_g_m3 <= self.peer_median_g_m3 <= self.peer_q3_g_m3:
            raise ValueError("need peer_q1_g_m3 <= peer_median_g_m3 <= peer_q3_g_m3")


@dataclass(frozen=True, slots=True)
class CollectionRecord:
    """A crew's record that a bin was emptied at ``ts`` (from the round sheet or in-cab app)."""

    device_id: str
    ts: datetime
    crew: str | None = None

    def __post_init__(self) -> None:
        _require_device_id(self.device_id)
        _require_utc("ts", self.ts)


Item = Reading | FillForecast | PeerChange | PeerMoisture | CollectionRecord
"""Anything a detector consumes, in time order: readings plus the side inputs."""


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
