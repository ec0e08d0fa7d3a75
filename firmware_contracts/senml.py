"""SenML (RFC 8428) JSON packs: decoded into readings on the ``senml`` topic, and encoded from
readings for extracts.

A pack is resolved as RFC 8428 says (base name, base time, base unit and base value apply to
the records after them), its records grouped by time into one reading each, and every reading
checked under the same rules as a v1 telemetry message (ranges, at least one metric, no time
in the future). A pack that is not SenML at all is rejected as ``senml_malformed``; SenML that
does not map onto the contract (a known name in an unknown unit, a text value where a number
belongs, two values for one metric at one time) as ``schema``.

Pure, like the rest of the contract: ``now`` is an argument.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from firmware_contracts.errors import ContractError, Reason
from firmware_contracts.messages import MAX_BATCH_READINGS, METRICS, Reading

__all__ = [
    "SENML_CONTENT_TYPE",
    "SENML_METRICS",
    "decode_senml",
    "encode_senml",
]

SENML_CONTENT_TYPE = "application/senml+json"
SENML_VERSION = 10  # RFC 8428's version; a pack asking for a later one is not understood
RELATIVE_TIME_LIMIT = 2**28  # RFC 8428: resolved times below this are relative to "now"
MAX_RECORDS = MAX_BATCH_READINGS * (len(METRICS) + 1)
DECIMALS = 9  # unit conversions are rounded here, so a value written out comes back unchanged
_NAME = re.compile(r"^[A-Za-z0-9][-:./_A-Za-z0-9]*$")  # RFC 8428 section 4.5.1
_SEPARATORS = ":/"
_VALUE_FIELDS = ("v", "vs", "vb", "vd")


def _same(x: float) -> float:
    return x


def _scaled(factor: float, offset: float = 0.0) -> Callable[[float], float]:
    def convert(x: float) -> float:
        return round(x * factor + offset, DECIMALS)

    return convert


# SenML name -> (contract field, the unit written out, {accepted unit: to the contract's unit}).
# A record without a unit is read in the written-out unit.
SENML_METRICS: dict[str, tuple[str, str, dict[str, Callable[[float], float]]]] = {
    "fill": ("fill_pct", "/", {"/": _scaled(100.0), "%": _same}),
    "temperature": ("temp_c", "Cel", {"Cel": _same, "K": _scaled(1.0, -273.15)}),
    "battery": ("battery_v", "V", {"V": _same}),
    "humidity": ("rh_pct", "%RH", {"%RH": _same}),
    "co2": ("co2_ppm", "ppm", {"ppm": _same}),
    "tilt": ("tilt_deg", "deg", {"deg": _same, "rad": _scaled(180.0 / math.pi)}),
    "rssi": ("rssi_dbm", "dBm", {"dBm": _same}),
    "seq": ("seq", "", {"": _same, "count": _same}),
}
_BY_FIELD = {field: (name, unit) for name, (field, unit, _) in SENML_METRICS.items()}


def _malformed(detail: str) -> ContractError:
    return ContractError(Reason.SENML_MALFORMED, detail)


def _number(record: dict[str, Any], key: str, where: str) -> float | None:
    value = record.get(key)
    if value is None:
        return None
    if type(value) not in (int, float) or not math.isfinite(value):
        raise _malformed(f"{where}: {key} must be a number, got {value!r}")
    return float(value)


def _text(record: dict[str, Any], key: str, where: str) -> str | None:
    value = record.get(key)
    if value is None or isinstance(value, str):
        return value
    raise _malformed(f"{where}: {key} must be a string, got {value!r}")


class _Resolver:
    """RFC 8428 section 4.6: base fields carry forward to every later record."""

    def __init__(self, now: datetime) -> None:
        self.now = now
        self.bn = ""
        self.bt = 0.0
        self.bu: str | None = None
        self.bv = 0.0

    def resolve(self, index: int, record: object) -> tuple[str, str | None, object, datetime]:
        where = f"record {index}"
        if not isinstance(record, dict):
            raise _malformed(f"{where}: each record must be a JSON object")
        must_understand = sorted(k for k in record if k.endswith("_"))
        if must_understand:
            raise _malformed(f"{where}: must-understand fields not supported: {must_understand}")
        bver = _number(record, "bver", where)
        if bver is not None and bver > SENML_VERSION:
            raise ContractError(
                Reason.UNSUPPORTED_VERSION, f"{where}: bver={bver:g}; supported: {SENML_VERSION}"
            )
        bn, bu = _text(record, "bn", where), _text(record, "bu", where)
        bt, bv = _number(record, "bt", where), _number(record, "bv", where)
        self.bn = self.bn if bn is None else bn
        self.bu = self.bu if bu is None else bu
        self.bt = self.bt if bt is None else bt
        self.bv = self.bv if bv is None else bv
        name = self.bn + (_text(record, "n", where) or "")
        if not _NAME.match(name):
            raise _malformed(f"{where}: name {name!r} is empty or not an RFC 8428 name")
        values = [k for k in _VALUE_FIELDS if k in record]
        if len(values) > 1:
            raise _malformed(f"{where}: more than one value ({', '.join(values)})")
        if not values and "s" not in record:
            raise _malformed(f"{where}: no value (v, vs, vb or vd) and no sum")
        value: object = None
        if values == ["v"]:
            v = _number(record, "v", where)
            value = None if v is None else self.bv + v
        elif values:
            value = record[values[0]]
        t = self.bt + (_number(record, "t", where) or 0.0)
        return name, _text(record, "u", where) or self.bu, value, self._time(t, where)

    def _time(self, t: float, where: str) -> datetime:
        try:
            if t < RELATIVE_TIME_LIMIT:
                return self.now + timedelta(seconds=t)
            seconds = math.floor(t)
            micros = round((t - seconds) * 1e6)
            return datetime.fromtimestamp(seconds, UTC) + timedelta(microseconds=micros)
        except (OverflowError, ValueError, OSError) as exc:
            raise _malformed(f"{where}: time {t!r} is out of range") from exc


def _measurement(name: str) -> str:
    """The part of a resolved name after the device's prefix: ``bin-7:fill`` -> ``fill``."""
    cut = max(name.rfind(sep) for sep in _SEPARATORS)
    return name[cut + 1 :]


def _check_device(name: str, device_id: str) -> None:
    cut = max(name.rfind(sep) for sep in _SEPARATORS)
    prefix = name[:cut].rstrip(_SEPARATORS) if cut >= 0 else ""
    owner = prefix[-len(device_id) - 1 :]
    if prefix and prefix != device_id and owner not in {sep + device_id for sep in ":/;."}:
        raise ContractError(
            Reason.TOPIC_MISMATCH, f"name {name!r} is not of the topic's device {device_id!r}"
        )


def _parse_pack(payload: bytes | str) -> list[object]:
    try:
        pack = json.loads(payload)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ContractError(Reason.INVALID_JSON, str(exc)) from exc
    if not isinstance(pack, list):
        raise _malformed("a SenML pack is a JSON array of records")
    if not pack:
        raise _malformed("the pack has no records")
    if len(pack) > MAX_RECORDS:
        raise ContractError(Reason.SCHEMA, f"{len(pack)} records; at most {MAX_RECORDS}")
    return pack


def decode_senml(
    device_id: str, payload: bytes | str, *, now: datetime
) -> list[tuple[datetime, dict[str, Any]]]:
    """The contract fields of a SenML pack from ``device_id``, one dict per time, in time order.

    The caller (``decode_telemetry``) validates each dict as a reading; names this platform
    does not know are ignored, as unknown fields of a v1 message are.
    """
    resolver = _Resolver(now)
    by_time: dict[datetime, dict[str, Any]] = {}
    for index, record in enumerate(_parse_pack(payload)):
        name, unit, value, ts = resolver.resolve(index, record)
        _check_device(name, device_id)
        known = SENML_METRICS.get(_measurement(name))
        if known is None or value is None:
            continue  # another measurement, or a sum only: not the contract's
        field, default_unit, converters = known
        convert = converters.get(default_unit if unit is None else unit)
        if convert is None:
            raise ContractError(
                Reason.SCHEMA,
                f"record {index}: {name!r} in unit {unit!r}; accepted: {sorted(converters)}",
            )
        if type(value) not in (int, float):
            raise ContractError(
                Reason.SCHEMA, f"record {index}: {name!r} needs a number (v), got {value!r}"
            )
        fields = by_time.setdefault(ts, {})
        if field in fields:
            raise ContractError(
                Reason.SCHEMA, f"record {index}: a second {name!r} at {ts.isoformat()}"
            )
        converted = convert(float(value))  # type: ignore[arg-type]
        fields[field] = int(converted) if field == "seq" and converted.is_integer() else converted
    if not by_time:
        raise ContractError(
            Reason.SCHEMA, "no record names a metric of the contract: " + ", ".join(SENML_METRICS)
        )
    if len(by_time) > MAX_BATCH_READINGS:
        raise ContractError(
            Reason.SCHEMA, f"{len(by_time)} readings in one pack; at most {MAX_BATCH_READINGS}"
        )
    return sorted(by_time.items(), key=lambda item: item[0])


def _senml_time(ts: datetime) -> float:
    return ts.timestamp()


def encode_senml(readings: Iterable[Reading]) -> list[dict[str, Any]]:
    """Readings as one SenML pack: a base name per device (``{device_id}:``), RFC 8428 units,
    absolute times in seconds since the epoch (``bt`` per device, ``t`` relative to it).

    Fill goes out as a ratio (unit ``/``), so 63.5 % is 0.635.
    """
    pack: list[dict[str, Any]] = []
    current: str | None = None
    base = 0.0
    for reading in readings:
        first: dict[str, Any] = {}
        if reading.device_id != current:
            current = reading.device_id
            base = float(math.floor(_senml_time(reading.ts)))
            first = {"bn": f"{reading.device_id}:", "bt": base}
        offset = _exact_offset(reading.ts, base)
        for field in ("seq", *METRICS):
            value = getattr(reading, field)
            if value is None:
                continue
            name, unit = _BY_FIELD[field]
            record: dict[str, Any] = {**first, "n": name}
            first = {}
            if unit:
                record["u"] = unit
            record["v"] = value / 100.0 if unit == "/" else value
            if offset:
                record["t"] = offset
            pack.append(record)
    return pack


def _exact_offset(ts: datetime, base: float) -> float | int:
    """Seconds from ``base``, to the microsecond (small numbers: no precision lost)."""
    delta = ts - datetime.fromtimestamp(base, UTC)
    micros = delta // timedelta(microseconds=1)
    return micros // 1_000_000 if micros % 1_000_000 == 0 else micros / 1e6
