"""FIWARE entities from the API: every one validates against the published schemas, each
endpoint refuses callers without its scope, and homes are narrowed and stripped in SQL."""

from __future__ import annotations

from store.db import connect
from tests.api.conftest import NORTH_OCCUPIED, NORTH_VOID, SOUTH_VOID, Api
from tests.fiware.schemas import errors

BASE = "/api/v1/fiware"


TYPES = ["WasteContainer", "WasteContainerModel", "IndoorEnvironmentObserved"]


def test_every_entity_served_validates_in_both_forms(api: Api) -> None:
    # One estate for every type and form: each API test builds its own, which is slow.
    for entity_type in TYPES:
        for form in ("keyvalues", "normalized"):
            response = api.as_("ada")("GET", f"{BASE}/{entity_type}", params={"format": form})
            assert response.status_code == 200, response.text
            assert response.headers["content-type"].startswith("application/ld+json")
            entities = response.json()
            assert entities
            for entity in entities:
                assert entity["type"] == entity_type
                assert errors(entity, entity_type, normalized=form == "normalized") == [], entity


def test_bins_carry_forecast_deadline_and_status(api: Api) -> None:
    bins = {
        e["id"].rsplit(":", 1)[1]: e
        for e in api.as_("wendy")("GET", f"{BASE}/WasteContainer").json()
    }
    assert set(bins) == {"bin-1", "bin-2"}
    assert bins["bin-1"]["fillingLevel"] == 0.8  # 20 % plus 1 % a reading, 61 readings
    assert bins["bin-1"]["status"] == "ok"  # overflowing is not a safety status
    assert "nextActuationDeadline" in bins["bin-1"]
    assert "nextActuationDeadline" not in bins["bin-2"]  # flat at 30 %: never full
    models = api.as_("wendy")("GET", f"{BASE}/WasteContainerModel").json()
    assert [m["id"] for m in models] == [bins["bin-1"]["refWasteContainerModel"]]


def test_each_endpoint_refuses_callers_without_its_scope(api: Api) -> None:
    for entity_type in ("WasteContainer", "WasteContainerModel"):
        response = api.as_("olivia")("GET", f"{BASE}/{entity_type}")
        assert response.status_code == 403
        assert "bins:read" in response.json()["detail"]
    for entity_type in TYPES:
        assert api.client.get(f"{BASE}/{entity_type}").status_code == 401
    with connect(api.url) as conn:
        from api.identity import create_token

        token = create_token(
            conn, "crm", role="housing_officer", scopes=["homes:read"], patches=["north"]
        )
    body = api.client.post(
        "/api/v1/auth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": token.client_id,
            "client_secret": token.client_secret,
        },
    ).json()
    headers = {"Authorization": f"Bearer {body['access_token']}"}
    response = api.client.get(f"{BASE}/IndoorEnvironmentObserved", headers=headers)
    assert response.status_code == 403
    assert "readings:read" in response.json()["detail"]


def _homes(api: Api, user: str) -> dict[str, dict]:
    entities = api.as_(user)("GET", f"{BASE}/IndoorEnvironmentObserved").json()
    return {e["refDevice"].rsplit(":", 1)[1]: e for e in entities}


def test_homes_follow_patches_and_the_right_to_see_addresses(api: Api) -> None:
    # An officer: the homes of their patch, with address and occupancy, and the read logged.
    homes = _homes(api, "olivia")
    assert set(homes) == {"env-n1", "env-n2"}
    assert {h["uprn"] for h in homes.values()} == {NORTH_OCCUPIED, NORTH_VOID}
    assert homes["env-n2"]["void"] is True
    assert homes["env-n2"]["address"]["streetAddress"] == "102 High Street"
    with connect(api.url) as conn:
        logged = conn.execute(
            "SELECT subjects FROM access_log WHERE action = 'read_personal' ORDER BY id DESC"
        ).fetchone()
    assert logged["subjects"] == [NORTH_OCCUPIED, NORTH_VOID]
    assert SOUTH_VOID not in str(_homes(api, "olivia"))
    # An engineer: every home sensor, but no address, occupancy or exact place.
    homes = _homes(api, "ed")
    assert set(homes) == {"env-n1", "env-n2", "env-s1"}
    for home in homes.values():
        assert not {"address", "uprn", "void"} & set(home)
        assert home["location"]["coordinates"] == [-1.1, 52.6]
    # Waste crews read bins' readings only.
    assert _homes(api, "wendy") == {}
