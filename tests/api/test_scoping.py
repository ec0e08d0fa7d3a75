"""Each role's allowed and forbidden calls: patches in SQL, no addresses for engineers, and
the access log of who was given personal data."""

from __future__ import annotations

import pytest

from store.db import connect
from tests.api.conftest import NORTH_OCCUPIED, NORTH_VOID, SOUTH_VOID, Api


def test_an_officer_sees_only_homes_in_their_patches(api: Api) -> None:
    homes = api.as_("olivia")("GET", "/api/v1/homes").json()
    assert {h["uprn"] for h in homes} == {NORTH_OCCUPIED, NORTH_VOID}
    assert {h["patch"] for h in homes} == {"north"}
    # The void flag of a south home never reaches a north officer, not even as a filter.
    void_only = api.as_("olivia")("GET", "/api/v1/homes", params={"void": True}).json()
    assert [h["uprn"] for h in void_only] == [NORTH_VOID]


def test_a_home_outside_the_officers_patch_is_not_found(api: Api) -> None:
    response = api.as_("olivia")("GET", f"/api/v1/homes/{SOUTH_VOID}")
    assert response.status_code == 404
    assert api.as_("sam")("GET", f"/api/v1/homes/{SOUTH_VOID}").json()["void"] is True


@pytest.mark.parametrize("user", ["ed", "wendy"])
def test_only_people_who_work_with_homes_see_them(api: Api, user: str) -> None:
    response = api.as_(user)("GET", "/api/v1/homes")
    assert response.status_code == 403
    assert "homes:read" in response.json()["detail"]


def test_an_engineer_never_sees_where_a_home_is(api: Api) -> None:
    devices = api.as_("ed")("GET", "/api/v1/devices").json()
    homes = [d for d in devices if d["kind"] == "env"]
    assert len(homes) == 3
    assert all(d["uprn"] is None and d["lat"] is None and d["lon"] is None for d in homes)
    assert "address" not in devices[0]
    assert "void" not in devices[0]
    bins = [d for d in devices if d["kind"] == "bin"]
    assert all(d["lat"] is not None for d in bins)  # a bin's place is no one's home


def test_alerts_follow_the_callers_patch_and_work(api: Api) -> None:
    olivia = api.as_("olivia")("GET", "/api/v1/alerts").json()
    assert olivia, "the frozen void home in the north raises an alert"
    assert {a["patch"] for a in olivia} == {"north"}
    assert {a["subject_kind"] for a in olivia} == {"home"}
    wendy = api.as_("wendy")("GET", "/api/v1/alerts").json()
    assert wendy
    assert {a["subject_kind"] for a in wendy} == {"bin"}
    south = api.as_("sam")("GET", "/api/v1/alerts").json()
    assert south
    response = api.as_("olivia")("GET", f"/api/v1/alerts/{south[0]['id']}")
    assert response.status_code == 404


def test_reads_of_personal_data_are_logged_with_who_and_what(api: Api) -> None:
    api.as_("olivia")("GET", f"/api/v1/homes/{NORTH_VOID}")
    api.as_("ed")("GET", "/api/v1/devices")  # no personal data: not logged
    with connect(api.url) as conn:
        rows = conn.execute(
            "SELECT actor, role, action, resource, subjects FROM access_log ORDER BY id"
        ).fetchall()
    personal = [r for r in rows if r["action"] == "read_personal"]
    assert personal[-1]["actor"] == "user:olivia"
    assert personal[-1]["subjects"] == [NORTH_VOID]
    assert personal[-1]["resource"] == f"GET /api/v1/homes/{NORTH_VOID}"
    assert not any(r["actor"] == "user:ed" and r["action"] == "read_personal" for r in rows)


def test_the_access_log_cannot_be_rewritten(api: Api) -> None:
    api.as_("olivia")("GET", "/api/v1/homes")
    import psycopg

    with connect(api.url) as conn:
        for sql in ("UPDATE access_log SET actor = 'nobody'", "DELETE FROM access_log"):
            with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
                conn.execute(sql)
