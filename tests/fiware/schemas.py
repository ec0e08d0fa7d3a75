"""The published FIWARE JSON Schemas, checked offline: ``common-schema.json`` is registered
under its public URL, so the models' ``$ref``s resolve without a network."""

from __future__ import annotations

import json
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource

FIWARE = Path(__file__).resolve().parents[3] / "shared" / "data" / "fiware"
COMMON_URL = "https://smart-data-models.github.io/data-models/common-schema.json"
NORMALIZED_TYPES = {"Property", "GeoProperty", "Relationship"}

_formats = FormatChecker()


def _date_time(value: object) -> bool:
    """RFC 3339 date-time: a date, a 'T', a time and an offset."""
    if not isinstance(value, str):
        return True
    parsed = datetime.fromisoformat(value)
    return "T" in value.upper() and parsed.tzinfo is not None


_formats.checks("date-time", raises=ValueError)(_date_time)


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


@cache
def validator(entity_type: str) -> Draft202012Validator:
    common = Resource.from_contents(_load(FIWARE / "common-schema.json"))
    registry: Registry[Any] = Registry().with_resource(COMMON_URL, common)
    schema = _load(FIWARE / entity_type / "schema.json")
    return Draft202012Validator(schema, registry=registry, format_checker=_formats)


def keyvalues_of(entity: dict[str, Any]) -> dict[str, Any]:
    """A normalized NGSI-LD entity back in key-values form; fails on a malformed attribute."""
    out: dict[str, Any] = {"id": entity["id"], "type": entity["type"]}
    for name, attribute in entity.items():
        if name in {"id", "type", "@context"}:
            continue
        assert isinstance(attribute, dict), f"{name} is not an NGSI-LD attribute"
        assert attribute.get("type") in NORMALIZED_TYPES, f"{name}: type {attribute.get('type')}"
        value = attribute["object"] if attribute["type"] == "Relationship" else attribute["value"]
        if isinstance(value, dict) and value.get("@type") == "DateTime":
            value = value["@value"]
        out[name] = value
    return out


def errors(entity: dict[str, Any], entity_type: str, *, normalized: bool = False) -> list[str]:
    """Why ``entity`` breaks the published schema of ``entity_type`` (empty: it validates)."""
    if "@context" not in entity:
        return ["no @context"]
    keyvalues = keyvalues_of(entity) if normalized else dict(entity)
    keyvalues.pop("@context", None)
    found = validator(entity_type).iter_errors(keyvalues)
    return [f"{'/'.join(map(str, e.path))}: {e.message}" for e in found]
