"""Wire models of contract v1 (pydantic: the published JSON Schemas are generated from them)
and the domain value every later stage sees, :class:`Reading`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

MAX_BATCH_READINGS = 500

# Physical ranges; a value outside is a broken sensor or encoder, rejected as out_of_range.
# One table for the wire models and for Reading, so no later stage narrows them on its own.
METRIC_RANGES: dict[str, tuple[float, float]] = {
    "fill_pct": (-5, 110),
    "temp_c": (-40, 125),  # a burning bin reads far above room or weather: stored, not rejected
    "battery_v": (0, 5),
    "rh_pct": (0, 100),
    "co2_ppm": (0, 40000),
    "tilt_deg": (0, 180),
    "rssi_dbm": (-200, 0),
}


_R = METRIC_RANGES
FillPct = Annotated[
    float,
    Field(ge=_R["fill_pct"][0], le=_R["fill_pct"][1], description="bin fill level, % of capacity"),
]
TempC = Annotated[
    float, Field(ge=_R["temp_c"][0], le=_R["temp_c"][1], description="temperature, °C (SenML Cel)")
]
BatteryV = Annotated[
    float, Field(ge=_R["battery_v"][0], le=_R["battery_v"][1], description="battery voltage, V")
]
RhPct = Annotated[
    float,
    Field(ge=_R["rh_pct"][0], le=_R["rh_pct"][1], description="relative humidity, % (SenML %RH)"),
]
Co2Ppm = Annotated[float, Field(ge=_R["co2_ppm"][0], le=_R["co2_ppm"][1], description="CO2, ppm")]
TiltDeg = Annotated[
    float,
    Field(ge=_R["tilt_deg"][0], le=_R["tilt_deg"][1], description="tilt from upright, degrees"),
]
RssiDbm = Annotated[
    float,
    Field(ge=_R["rssi_dbm"][0], le=_R["rssi_dbm"][1], description="radio signal strength, dBm"),
]
Seq = Annotated[int, Field(ge=0, le=2**32 - 1, description="per-device message counter")]

METRICS = ("fill_pct", "temp_c", "battery_v", "rh_pct", "co2_ppm", "tilt_deg", "rssi_dbm")


def parse_rfc3339(value: object) -> datetime:
    """RFC 3339 timestamp with an explicit offset, normalised to UTC."""
    if not isinstance(value, str):
        raise ValueError("ts must be an RFC 3339 string")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise ValueError(f"ts {value!r} is not RFC 3339") from exc
    if parsed.tzinfo is None or "T" not in value.upper():
        raise ValueError(f"ts {value!r} needs a date, a 'T' and a UTC offset such as 'Z'")
    return parsed.astimezone(UTC)


def format_rfc3339(ts: datetime, timespec: str = "auto") -> str:
    """The platform's timestamp form everywhere it writes one: RFC 3339 in UTC with a 'Z'."""
    return ts.astimezone(UTC).isoformat(timespec=timespec).replace("+00:00", "Z")


class _Metrics(BaseModel):
    # Unknown fields are ignored so newer firmware can add fields without breaking ingest.
    model_config = ConfigDict(extra="ignore", frozen=True, strict=True)

    seq: Seq
    ts: datetime
    fill_pct: FillPct | None = None
    temp_c: TempC | None = None
    battery_v: BatteryV | None = None
    rh_pct: RhPct | None = None
    co2_ppm: Co2Ppm | None = None
    tilt_deg: TiltDeg | None = None
    rssi_dbm: RssiDbm | None = None

    _ts = field_validator("ts", mode="before")(parse_rfc3339)

    @model_validator(mode="after")
    def _has_a_metric(self) -> _Metrics:
        if all(getattr(self, name) is None for name in METRICS):
            raise ValueError("a reading needs at least one metric: " + ", ".join(METRICS))
        return self


class TelemetryV1(_Metrics):
    """One reading: ``{"v":1,"device_id":...,"seq":...,"ts":...,<metrics>}``."""

    v: Literal[1]
    device_id: str = Field(min_length=1, max_length=64)


class BatchItemV1(_Metrics):
    """One buffered reading inside a batch (the device_id is the batch's)."""


class HistoricalRecordV1(_Metrics):
    """A reading imported from an old system: the same rules, but ``seq`` may be absent."""

    seq: Seq | None = None  # type: ignore[assignment]


class TelemetryBatchV1(BaseModel):
    """Readings a device buffered while offline: ``{"v":1,"device_id":...,"readings":[...]}``."""

    model_config = ConfigDict(extra="ignore", frozen=True, strict=True)

    v: Literal[1]
    device_id: str = Field(min_length=1, max_length=64)
    readings: list[BatchItemV1] = Field(min_length=1, max_length=MAX_BATCH_READINGS)


class StatusV1(BaseModel):
    """Retained device status; the last will publishes ``{"state":"offline"}``."""

    model_config = ConfigDict(extra="allow")

    state: Literal["online", "offline"]
    fw: str | None = None


class CommandV1(BaseModel):
    """Platform → device command envelope (e.g. remote frost-protection heating)."""

    model_config = ConfigDict(extra="ignore")

    v: Literal[1] = 1
    id: str = Field(min_length=1, max_length=64, description="command id, echoed in the ack")
    name: str = Field(min_length=1, max_length=64, examples=["set_heating_setpoint"])
    args: dict[str, Any] = Field(default_factory=dict)
    issued_at: datetime
    expires_at: datetime = Field(description="a device must not act on it after this time")
    sig: str | None = Field(
        default=None,
        description=(
            "base64url HMAC-SHA256 with the device's command key over the canonical command "
            "(CONTRACT.md, Commands); a device with a key refuses a command without a valid one"
        ),
    )


class CommandAckV1(BaseModel):
    """Device → platform answer to a command."""

    model_config = ConfigDict(extra="ignore")

    v: Literal[1] = 1
    id: str = Field(min_length=1, max_length=64)
    status: Literal["accepted", "done", "rejected", "expired"]
    detail: str | None = None
    reason: Literal["unsigned", "bad_signature", "replayed", "expired"] | None = Field(
        default=None, description="why a command was refused, when it was refused for security"
    )
    ts: datetime


@dataclass(frozen=True, slots=True)
class Reading:
    """One validated sensor reading, in UTC. Metrics a device does not have are None.

    The one reading type of the platform: ingest stores it, alerts and forecasts read it. It
    is checked on construction against the contract's ranges (:data:`METRIC_RANGES`), so a
    value the contract accepted is never refused further down the flow.
    """

    device_id: str
    ts: datetime
    seq: int | None = None
    fill_pct: float | None = None
    temp_c: float | None = None
    battery_v: float | None = None
    rh_pct: float | None = None
    co2_ppm: float | None = None
    tilt_deg: float | None = None
    rssi_dbm: float | None = None

    def __post_init__(self) -> None:
        offset = self.ts.utcoffset()
        if offset is None:
            raise ValueError("Reading.ts must be timezone-aware (UTC)")
        if offset:
            raise ValueError(f"Reading.ts must be in UTC, got offset {offset}")
        if not 0 < len(self.device_id) <= 64:
            raise ValueError(
                f"Reading.device_id must be 1 to 64 characters, got {self.device_id!r}"
            )
        if self.seq is not None and self.seq < 0:
            raise ValueError(f"Reading.seq must be non-negative, got {self.seq}")
        for name in METRICS:
            value = getattr(self, name)
            if value is None:
                continue
            low, high = METRIC_RANGES[name]
            if not low <= value <= high:  # also false for NaN
                raise ValueError(
                    f"Reading.{name}={value!r} is outside the contract's [{low}, {high}]"
                )
