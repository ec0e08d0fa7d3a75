"""FIWARE entities built from values, checked against the published Smart Data Models schemas;
and the check itself catches a broken entity."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from fiware.entities import (
    BinState,
    HomeObservation,
    indoor_environment_observed,
    render,
    status,
    waste_container,
    waste_container_model,
)
from fiware.entities import normalized as to_normalized

from .schemas import FIWARE, errors

NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
BIN = BinState(
    "bin-7",
    52.6301,
    -1.1302,
    "garden",
    240.0,
    80.0,
    fill_pct=63.5,
    temp_c=8.1,
    reading_ts=NOW,
    last_emptied=NOW - timedelta(days=3),
    full_at=NOW + timedelta(hours=20),
)
HOME = HomeObservation("env-3", 52.63456, -1.13789, NOW, temp_c=14.3, rh_pct=78.2, co2_ppm=900.0)
PERSONAL_HOME = HomeObservation(
    "env-3",
    52.63456,
    -1.13789,
    NOW,
    temp_c=14.3,
    rh_pct=78.2,
    uprn="100000000101",
    address="101 High Street",
    void=True,
)


@pytest.mark.parametrize("entity_type", ["WasteContainer", "WasteContainerModel"])
def test_the_published_examples_pass_the_check(entity_type: str) -> None:
    example = json.loads((FIWARE / entity_type / "example.json").read_text())
    assert errors({**example, "@context": []}, entity_type) == []


@pytest.mark.parametrize("form", ["keyvalues", "normalized"])
def test_every_built_entity_validates_in_both_forms(form: str) -> None:
    cases = [
        ("WasteContainer", waste_container(BIN)),
        ("WasteContainer", waste_container(BinState("bin-8", 51.5, -0.1, "general", 1100, 75))),
        ("WasteContainerModel", waste_container_model(1100.0)),
        ("IndoorEnvironmentObserved", indoor_environment_observed(HOME)),
        ("IndoorEnvironmentObserved", indoor_environment_observed(PERSONAL_HOME)),
    ]
    for entity_type, keyvalues in cases:
        (entity,) = render([keyvalues], form)
        assert entity["@context"], entity_type
        assert errors(entity, entity_type, normalized=form == "normalized") == [], entity


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"fillingLevel": 1.7}, "1.7 is greater than the maximum of 1"),
        ({"type": "Bin"}, "'Bin' is not one of ['WasteContainer']"),
        ({"status": "onFire"}, "is not one of"),
        ({"dateLastEmptying": "yesterday"}, "is not a 'date-time'"),
        ({"location": {"type": "Point", "coordinates": [1]}}, "location"),
    ],
)
def test_a_broken_entity_is_rejected_by_the_same_check(change: dict, why: str) -> None:
    (good,) = render([waste_container(BIN)], "keyvalues")
    assert errors(good, "WasteContainer") == []
    broken = errors({**good, **change}, "WasteContainer")
    assert broken
    assert any(why in e for e in broken), broken
    (normalized,) = render([waste_container(BIN)], "normalized")
    assert errors(normalized, "WasteContainer", normalized=True) == []
    normalized.update(to_normalized({"id": good["id"], "type": "WasteContainer", **change}))
    assert errors(normalized, "WasteContainer", normalized=True)


def test_a_bin_carries_its_fill_status_forecast_and_model() -> None:
    entity = waste_container(BIN)
    assert entity["fillingLevel"] == 0.635
    assert entity["status"] == "ok"
    assert entity["storedWasteKind"] == "organic"
    assert entity["binFullnessThreshold"] == 80.0
    assert entity["nextActuationDeadline"] == "2026-11-23T06:00:00Z"
    assert entity["dateLastEmptying"] == "2026-11-19T10:00:00Z"
    assert entity["location"] == {"type": "Point", "coordinates": [-1.1302, 52.6301]}
    assert entity["refWasteContainerModel"] == waste_container_model(240.0)["id"]
    assert waste_container_model(240.0)["maximumLoad"] == 96.0
    # Overflowing past the lid (the contract allows 110 %) is full, not invalid.
    overflowing = BinState("bin-9", 51.5, -0.1, "general", 1100, 80, fill_pct=108.0)
    assert waste_container(overflowing)["fillingLevel"] == 1.0


@pytest.mark.parametrize(
    ("alerts", "has_reading", "expected"),
    [
        ({"bin_fire", "bin_knocked_over"}, True, "burning"),
        ({"bin_knocked_over", "bin_overflow"}, True, "dropped"),
        ({"device_offline"}, True, "unknown"),
        (set(), False, "unknown"),
        ({"bin_overflow", "sensor_stuck"}, True, "ok"),
    ],
)
def test_status_comes_from_the_open_alerts(alerts: set, has_reading: bool, expected: str) -> None:
    assert status(alerts, has_reading) == expected


def test_a_home_without_the_right_to_see_homes_has_no_address_or_exact_place() -> None:
    anonymous = indoor_environment_observed(HOME)
    assert not {"address", "uprn", "void"} & set(anonymous)
    assert anonymous["location"]["coordinates"] == [-1.1, 52.6]
    assert anonymous["relativeHumidity"] == 0.782
    assert anonymous["co2"] == pytest.approx(900 * 44.01 / 24.45 / 1000)
    personal = indoor_environment_observed(PERSONAL_HOME)
    assert personal["address"] == {"streetAddress": "101 High Street", "addressCountry": "GB"}
    assert (personal["uprn"], personal["void"]) == ("100000000101", True)
    assert personal["location"]["coordinates"] == [-1.13789, 52.63456]


def test_a_frozen_home_leaves_out_the_temperature_the_model_cannot_hold() -> None:
    frozen = HomeObservation("env-4", 52.6, -1.1, NOW, temp_c=-2.0, rh_pct=90.0)
    entity = indoor_environment_observed(frozen)
    assert "temperature" not in entity
    assert errors(render([entity], "keyvalues")[0], "IndoorEnvironmentObserved") == []


def test_normalized_attributes_carry_units_and_observation_times() -> None:
    (entity,) = render([waste_container(BIN)], "normalized")
    assert entity["temperature"] == {
        "type": "Property",
        "value": 8.1,
        "unitCode": "CEL",
        "observedAt": "2026-11-22T10:00:00Z",
    }
    assert entity["refWasteContainerModel"]["type"] == "Relationship"
    assert entity["location"]["type"] == "GeoProperty"
    assert entity["dateLastEmptying"]["value"] == {
        "@type": "DateTime",
        "@value": "2026-11-19T10:00:00Z",
    }
