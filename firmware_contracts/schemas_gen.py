"""Regenerate the published JSON Schemas from the wire models.

``python -m firmware_contracts.schemas_gen`` rewrites ``schemas/*.json``; a test fails when the
committed files drift from the models.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel

from firmware_contracts.messages import (
    CommandAckV1,
    CommandV1,
    StatusV1,
    TelemetryBatchV1,
    TelemetryV1,
)

SCHEMA_DIR = Path(__file__).with_name("schemas")
SCHEMAS: dict[str, type[BaseModel]] = {
    "telemetry.v1.json": TelemetryV1,
    "telemetry-batch.v1.json": TelemetryBatchV1,
    "status.v1.json": StatusV1,
    "command.v1.json": CommandV1,
    "command-ack.v1.json": CommandAckV1,
}


def render(model: type[BaseModel]) -> str:
    schema = model.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def main() -> None:
    for name, model in SCHEMAS.items():
        (SCHEMA_DIR / name).write_text(render(model))


if __name__ == "__main__":
    main()
