"""FIWARE Smart Data Models entities, in key-values and NGSI-LD normalized form. Pure.

- ``WasteContainer``: a bin's fill (``fillingLevel`` 0..1), temperature, safety ``status`` from
  its open alerts, when it was last seen emptied, when it is forecast to reach its threshold
  (``nextActuationDeadline``), its threshold (``binFullnessThreshold``, %), its place.
- ``WasteContainerModel``: one per bin size (``cargoVolume`` in litres, ``maximumLoad`` in kg).
- ``IndoorEnvironmentObserved``: each home sensor's latest reading. Without the caller's right
  to see homes it carries no address, UPRN or void flag, and its place only to 0.1 degree.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from firmware_contracts import format_rfc3339

__all__ = [
    "CONTEXTS",
    "ENTITY_TYPES",
    "BinState",
    "EntityType",
    "Form",
    "HomeObservation",
    "indoor_environment_observed",
    "normalized",
    "waste_container",
    "waste_container_model",
]

EntityType = Literal["WasteContainer", "WasteContainerModel", "IndoorEnvironmentObserved"]
ENTITY_TYPES: tuple[EntityType, ...] = (
    "WasteContainer",
    "WasteContainerModel",
    "IndoorEnvironmentObserved",
)
Form = Literal["keyvalues", "normalized"]

CORE_CONTEXT = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld"
_MODELS = "https://raw.githubusercontent.com/smart-data-models"
_WASTE = f"{_MODELS}/dataModel.WasteManagement/master/context.jsonld"
_ENVIRONMENT = f"{_MODELS}/dataModel.Environment/master/context.jsonld"
CONTEXTS: dict[EntityType, list[str]] = {
    "WasteContainer": [_WASTE, CORE_CONTEXT],
    "WasteContainerModel": [_WASTE, CORE_CONTEXT],
    "IndoorEnvironmentObserved": [_ENVIRONMENT, CORE_CONTEXT],
}

# FIWARE storedWasteKind for each stream a council collects.
STORED_WASTE_KIND = {
    "general": "other",
    "recycling": "other",
    "garden": "organic",
    "food": "organic",
    "glass": "glass",
}
# EN 840 rates wheeled bins for a load of 0.4 kg per litre of volume (240 l: 96 kg).
EN840_KG_PER_L = 0.4
# Home sensors' places are given to this many decimals of a degree (about 11 km by 7 km) to
# callers who may not see homes.
COARSE_DECIMALS = 1
# CO2 in ppm to mg/l (what the model asks for) at 25 °C and 101.325 kPa: 44.01 / 24.45 / 1000.
CO2_MG_PER_L_PER_PPM = 44.01 / 24.45 / 1000
# UN/CEFACT unit codes for the normalized form.
_UNIT_CODES = {"temperature": "CEL", "co2": "M1", "cargoVolume": "LTR", "maximumLoad": "KGM"}
_DATETIMES = frozenset({"dateObserved", "dateLastEmptying", "nextActuationDeadline", "timeInstant"})
_MEASURED = frozenset({"fillingLevel", "temperature", "relativeHumidity", "co2"})


@dataclass(frozen=True, slots=True)
class BinState:
    """What the platform knows of one bin, from the registry, readings, alerts and forecast."""

    device_id: str
    lat: float
    lon: float
    waste_stream: str
    capacity_l: float
    threshold_pct: float
    fill_pct: float | None = None
    temp_c: float | None = None
    reading_ts: datetime | None = None
    active_alerts: frozenset[str] = frozenset()
    """Types of the bin's alerts not resolved (``bin_fire``, ``bin_knocked_over``, ...)."""
    last_emptied: datetime | None = None
    full_at: datetime | None = None
    """When the fill forecast reaches ``threshold_pct`` (None: not within the horizon)."""


@dataclass(frozen=True, slots=True)
class HomeObservation:
    """One home sensor's latest reading; the personal fields are None unless the caller may
    see homes (the query leaves them out, not this code)."""

    device_id: str
    lat: float
    lon: float
    ts: datetime
    temp_c: float | None = None
    rh_pct: float | None = None
    co2_ppm: float | None = None
    uprn: str | None = None
    address: str | None = None
    void: bool | None = None


def entity_id(entity_type: EntityType, local_id: str) -> str:
    return f"urn:ngsi-ld:{entity_type}:{local_id}"


def device_ref(device_id: str) -> str:
    return f"urn:ngsi-ld:Device:{device_id}"


def model_id(capacity_l: float) -> str:
    return entity_id("WasteContainerModel", f"{capacity_l:g}l")


def status(active_alerts: Iterable[str], has_reading: bool) -> str:
    """The model's safety status from the bin's open alerts. This platform has no lid sensor,
    so ``lidOpen`` is never given; a silent bin is ``unknown``."""
    active = set(active_alerts)
    if "bin_fire" in active:
        return "burning"
    if "bin_knocked_over" in active:
        return "dropped"
    if "device_offline" in active or not has_reading:
        return "unknown"
    return "ok"


def _point(lat: float, lon: float) -> dict[str, Any]:
    return {"type": "Point", "coordinates": [lon, lat]}


def _drop_none(entity: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in entity.items() if v is not None}


def _time(ts: datetime | None) -> str | None:
    return None if ts is None else format_rfc3339(ts)


def waste_container(state: BinState) -> dict[str, Any]:
    """One bin as a key-values ``WasteContainer`` (without ``@context``)."""
    fill = None
    if state.fill_pct is not None:
        # The contract takes -5..110 % (sensor noise, overflow); the model 0..1.
        fill = round(min(max(state.fill_pct / 100.0, 0.0), 1.0), 4)
    return _drop_none(
        {
            "id": entity_id("WasteContainer", state.device_id),
            "type": "WasteContainer",
            "location": _point(state.lat, state.lon),
            "fillingLevel": fill,
            "temperature": state.temp_c,
            "status": status(state.active_alerts, state.reading_ts is not None),
            "storedWasteKind": STORED_WASTE_KIND.get(state.waste_stream, "other"),
            "binCapacity": state.capacity_l,
            "binFullnessThreshold": state.threshold_pct,
            "dateLastEmptying": _time(state.last_emptied),
            "nextActuationDeadline": _time(state.full_at),
            "refWasteContainerModel": model_id(state.capacity_l),
            "refDevice": [device_ref(state.device_id)],
            "timeInstant": _time(state.reading_ts),
        }
    )


def waste_container_model(capacity_l: float) -> dict[str, Any]:
    """A bin size as a key-values ``WasteContainerModel`` (without ``@context``)."""
    return {
        "id": model_id(capacity_l),
        "type": "WasteContainerModel",
        "name": f"{capacity_l:g} l container",
        "cargoVolume": capacity_l,
        "maximumLoad": round(capacity_l * EN840_KG_PER_L, 1),
    }


def indoor_environment_observed(obs: HomeObservation) -> dict[str, Any]:
    """A home sensor's latest reading as a key-values ``IndoorEnvironmentObserved``.

    The model's ``temperature`` has a minimum of 0, so a reading below freezing is left out
    rather than exported as an entity that breaks the model (the frost alert and the readings
    extract carry it)."""
    personal = obs.uprn is not None
    lat, lon = obs.lat, obs.lon
    if not personal:
        lat, lon = round(lat, COARSE_DECIMALS), round(lon, COARSE_DECIMALS)
    entity = {
        "id": entity_id("IndoorEnvironmentObserved", obs.device_id),
        "type": "IndoorEnvironmentObserved",
        "dateObserved": format_rfc3339(obs.ts),
        "location": _point(lat, lon),
        "temperature": obs.temp_c if obs.temp_c is not None and obs.temp_c >= 0 else None,
        "relativeHumidity": None if obs.rh_pct is None else round(obs.rh_pct / 100.0, 4),
        "co2": None if obs.co2_ppm is None else round(obs.co2_ppm * CO2_MG_PER_L_PER_PPM, 6),
        "refDevice": device_ref(obs.device_id),
    }
    if personal:
        entity["address"] = (
            {"streetAddress": obs.address, "addressCountry": "GB"} if obs.address else None
        )
        entity["uprn"] = obs.uprn
        entity["void"] = obs.void
    return _drop_none(entity)


def _attribute(name: str, value: Any, observed_at: str | None) -> dict[str, Any]:
    if name == "location":
        return {"type": "GeoProperty", "value": value}
    if name.startswith("ref"):
        return {"type": "Relationship", "object": value}
    attribute: dict[str, Any] = {"type": "Property", "value": value}
    if name in _DATETIMES:
        attribute["value"] = {"@type": "DateTime", "@value": value}
    if name in _UNIT_CODES:
        attribute["unitCode"] = _UNIT_CODES[name]
    if name in _MEASURED and observed_at is not None:
        attribute["observedAt"] = observed_at
    return attribute


def normalized(entity: Mapping[str, Any]) -> dict[str, Any]:
    """A key-values entity in NGSI-LD normalized form: each attribute a Property (with its
    unit and observation time where known), GeoProperty or Relationship."""
    observed_at = entity.get("timeInstant") or entity.get("dateObserved")
    out: dict[str, Any] = {"id": entity["id"], "type": entity["type"]}
    for name, value in entity.items():
        if name not in {"id", "type", "@context"}:
            out[name] = _attribute(name, value, observed_at)
    return out


def with_context(entity: Mapping[str, Any]) -> dict[str, Any]:
    return {**entity, "@context": CONTEXTS[entity["type"]]}


def render(entities: Iterable[Mapping[str, Any]], form: Form) -> list[dict[str, Any]]:
    """Entities in ``form``, each with its ``@context``."""
    if form == "normalized":
        return [with_context(normalized(e)) for e in entities]
    return [with_context(e) for e in entities]
