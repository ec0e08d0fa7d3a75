"""Firmware contract v1: topics, message schemas and the telemetry decoder.

The contract between device firmware and the platform. Imports nothing else of ours.
See ``CONTRACT.md`` beside this file.
"""

from firmware_contracts.decode import MAX_FUTURE_SKEW, decode_telemetry, validate_record
from firmware_contracts.errors import ContractError, Reason
from firmware_contracts.messages import (
    MAX_BATCH_READINGS,
    METRIC_RANGES,
    METRICS,
    CommandAckV1,
    CommandV1,
    Reading,
    StatusV1,
    TelemetryBatchV1,
    TelemetryV1,
    format_rfc3339,
    parse_rfc3339,
)
from firmware_contracts.registry import DEVICE_CSV_COLUMNS, WasteStream
from firmware_contracts.senml import SENML_CONTENT_TYPE, SENML_METRICS, decode_senml, encode_senml
from firmware_contracts.signing import sign_command, signature_valid, signing_input
from firmware_contracts.topics import DEFAULT_PREFIX, Channel, ParsedTopic, TopicLayout

__all__ = [
    "DEFAULT_PREFIX",
    "DEVICE_CSV_COLUMNS",
    "MAX_BATCH_READINGS",
    "MAX_FUTURE_SKEW",
    "METRICS",
    "METRIC_RANGES",
    "SENML_CONTENT_TYPE",
    "SENML_METRICS",
    "Channel",
    "CommandAckV1",
    "CommandV1",
    "ContractError",
    "ParsedTopic",
    "Reading",
    "Reason",
    "StatusV1",
    "TelemetryBatchV1",
    "TelemetryV1",
    "TopicLayout",
    "WasteStream",
    "decode_senml",
    "decode_telemetry",
    "encode_senml",
    "format_rfc3339",
    "parse_rfc3339",
    "sign_command",
    "signature_valid",
    "signing_input",
    "validate_record",
]
