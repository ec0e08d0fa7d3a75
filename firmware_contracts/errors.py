"""Why a device message was rejected: stable reason codes that firmware teams and the
dead-letter store rely on. Never rename a code; add new ones."""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    INVALID_JSON = "invalid_json"  # not UTF-8 JSON, or not a JSON object
    UNSUPPORTED_VERSION = "unsupported_version"  # "v" missing or not a version we speak
    SCHEMA = "schema"  # wrong shape: missing/extra-typed fields, bad timestamp, empty batch
    TOPIC_MISMATCH = "topic_mismatch"  # payload device_id differs from the topic's
    BAD_TOPIC = "bad_topic"  # not a {prefix}/v1/devices/{id}/telemetry (or /senml) topic
    OUT_OF_RANGE = "out_of_range"  # a value outside its physical range
    FUTURE_TS = "future_ts"  # a timestamp more than 5 minutes ahead of the platform clock
    UNKNOWN_DEVICE = "unknown_device"  # not in the device registry (checked by ingest only)
    SENML_MALFORMED = "senml_malformed"  # on the senml topic: not an RFC 8428 SenML JSON pack


class ContractError(Exception):
    """A message that breaks the contract, with its stable reason code."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail
