"""Decode a telemetry message into readings, or say exactly why not.

Pure: no broker, no database, no wall clock (``now`` is an argument). The registry check
(``unknown_device``) belongs to ingest, which knows the devices.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from firmware_contracts.errors import ContractError, Reason
from firmware_contracts.messages import (
    METRICS,
    BatchItemV1,
    HistoricalRecordV1,
    Reading,
    TelemetryBatchV1,
    TelemetryV1,
    format_rfc3339,
)
from firmware_contracts.senml import decode_senml
from firmware_contracts.topics import Channel, TopicLayout

SUPPORTED_VERSIONS = frozenset({1})
MAX_FUTURE_SKEW = timedelta(minutes=5)
_RANGE_ERRORS = frozenset({"greater_than_equal", "less_than_equal", "greater_than", "less_than"})


def _first_error(exc: ValidationError) -> tuple[Reason, str]:
    errors = exc.errors(include_url=False, include_context=False)
    # A range error anywhere wins, so a device with one bad value is told which one.
    ranked = sorted(errors, key=lambda e: e["type"] not in _RANGE_ERRORS)
    first = ranked[0]
    where = ".".join(str(part) for part in first["loc"]) or "message"
    reason = Reason.OUT_OF_RANGE if first["type"] in _RANGE_ERRORS else Reason.SCHEMA
    detail = f"{where}: {first['msg']}"
    if reason is Reason.OUT_OF_RANGE:
        detail += f" (got {first.get('input')!r})"
    return reason, detail


def _unwrap_network_server(doc: dict[str, Any], device_id: str) -> dict[str, Any]:
    """Accept LoRaWAN network-server uplinks whose codec output is a v1 reading.

    The Things Stack puts ``decodeUplink`` output in ``uplink_message.decoded_payload``;
    ChirpStack v4 in ``object``. Their codec may omit ``v`` and ``device_id`` (the topic names
    the device), and the uplink's receive time stands in for a missing ``ts``.
    """
    if isinstance(doc.get("uplink_message"), dict):
        uplink = doc["uplink_message"]
        inner, received = uplink.get("decoded_payload"), uplink.get("received_at")
    elif isinstance(doc.get("object"), dict) and isinstance(doc.get("deviceInfo"), dict):
        inner, received = doc["object"], doc.get("time")
    else:
        return doc
    if not isinstance(inner, dict):
        raise ContractError(Reason.SCHEMA, "network-server uplink without a decoded payload")
    unwrapped = {"v": 1, "device_id": device_id, **inner}
    if "ts" not in unwrapped and "readings" not in unwrapped and received:
        unwrapped["ts"] = received
    return unwrapped


def decode_telemetry(
    topic: str, payload: bytes | str, *, now: datetime, layout: TopicLayout | None = None
) -> list[Reading]:
    """The readings in one telemetry message, in ``ts`` order.

    Raises :class:`ContractError` with a stable :class:`Reason` when the message breaks the
    contract; one bad reading in a batch rejects the whole message (it is dead-lettered whole,
    so nothing is lost).
    """
    parsed = (layout or TopicLayout()).parse(topic)
    if parsed is None or parsed.channel not in (Channel.TELEMETRY, Channel.SENML):
        raise ContractError(Reason.BAD_TOPIC, f"not a v1 telemetry topic: {topic!r}")
    if parsed.channel is Channel.SENML:
        return _senml_readings(parsed.device_id, payload, now)
    try:
        doc = json.loads(payload)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ContractError(Reason.INVALID_JSON, str(exc)) from exc
    if not isinstance(doc, dict):
        raise ContractError(Reason.INVALID_JSON, "payload must be a JSON object")
    doc = _unwrap_network_server(doc, parsed.device_id)

    version = doc.get("v")
    if type(version) is not int or version not in SUPPORTED_VERSIONS:
        raise ContractError(
            Reason.UNSUPPORTED_VERSION,
            f"v={version!r}; supported: {sorted(SUPPORTED_VERSIONS)}",
        )
    if doc.get("device_id") != parsed.device_id:
        raise ContractError(
            Reason.TOPIC_MISMATCH,
            f"payload device_id {doc.get('device_id')!r} != topic device {parsed.device_id!r}",
        )
    items: list[BatchItemV1] | list[TelemetryV1]
    try:
        if "readings" in doc:
            items = list(TelemetryBatchV1.model_validate(doc).readings)
        else:
            items = [TelemetryV1.model_validate(doc)]
    except ValidationError as exc:
        raise ContractError(*_first_error(exc)) from exc

    readings = [_to_reading(parsed.device_id, item, now) for item in items]
    readings.sort(key=lambda r: r.ts)
    return readings


def _senml_readings(device_id: str, payload: bytes | str, now: datetime) -> list[Reading]:
    """A SenML pack's readings, each checked as a v1 reading is (``seq`` may be absent)."""
    return [
        validate_record(device_id, {**fields, "ts": format_rfc3339(ts)}, now=now)
        for ts, fields in decode_senml(device_id, payload, now=now)
    ]


def _to_reading(
    device_id: str, item: BatchItemV1 | TelemetryV1 | HistoricalRecordV1, now: datetime
) -> Reading:
    if item.ts > now + MAX_FUTURE_SKEW:
        raise ContractError(
            Reason.FUTURE_TS,
            f"ts {item.ts.isoformat()} is more than 5 minutes after {now.isoformat()}",
        )
    return Reading(
        device_id=device_id,
        ts=item.ts,
        seq=item.seq,
        **{name: getattr(item, name) for name in METRICS},
    )


def validate_record(device_id: str, record: dict[str, Any], *, now: datetime) -> Reading:
    """One reading from another source (e.g. a history CSV) under the same rules."""
    try:
        item = HistoricalRecordV1.model_validate(record)
    except ValidationError as exc:
        raise ContractError(*_first_error(exc)) from exc
    return _to_reading(device_id, item, now)
