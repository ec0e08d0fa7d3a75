"""``GET /api/v1/routes/plans/{id}/bins``: each offered bin's forecast, place in the plan and
collection record, for the waste screen's map and progress."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.api.conftest import Api
from tests.api.test_resources import _wait_for


@pytest.fixture
def plan_id(api: Api) -> str:
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date()
    call = api.as_("wendy")
    started = call(
        "POST",
        "/api/v1/routes/plans",
        json={"date": tomorrow.isoformat(), "stream": "general", "seconds": 2},
    )
    job = _wait_for(call, started.headers["location"])
    assert job["state"] == "done", job
    return str(job["result"]["plan_id"])


def test_a_planned_bin_has_its_forecast_truck_and_stop(api: Api, plan_id: str) -> None:
    bins = api.as_("wendy")("GET", f"/api/v1/routes/plans/{plan_id}/bins").json()
    first = next(b for b in bins if b["device_id"] == "bin-1")
    assert (first["must_collect"], first["vehicle_id"] is not None, first["seq"] > 0) == (
        True,
        True,
        True,
    )


def test_the_forecast_at_the_visit_is_above_the_fill_now(api: Api, plan_id: str) -> None:
    bins = api.as_("wendy")("GET", f"/api/v1/routes/plans/{plan_id}/bins").json()
    first = next(b for b in bins if b["device_id"] == "bin-1")
    assert first["forecast_pct"] > first["fill_now_pct"]


def test_a_collection_record_on_the_plans_day_marks_the_bin_collected(
    api: Api, plan_id: str
) -> None:
    call = api.as_("wendy")
    day = call("GET", f"/api/v1/routes/plans/{plan_id}").json()["date"]
    sheet = f"device_id,ts,crew\nbin-1,{day}T10:00:00+00:00,A\n"
    call("POST", "/api/v1/routes/collections", files={"file": ("s.csv", sheet, "text/csv")})
    bins = call("GET", f"/api/v1/routes/plans/{plan_id}/bins").json()
    collected = {b["device_id"]: b["collected_at"] for b in bins}
    assert collected["bin-1"] == f"{day}T10:00:00Z"


def test_an_officer_may_not_read_a_plans_bins(api: Api, plan_id: str) -> None:
    response = api.as_("olivia")("GET", f"/api/v1/routes/plans/{plan_id}/bins")
    assert response.status_code == 403


def test_without_a_token_a_plans_bins_are_refused(api: Api, plan_id: str) -> None:
    assert api.client.get(f"/api/v1/routes/plans/{plan_id}/bins").status_code == 401


def test_an_unknown_plans_bins_are_a_404(api: Api) -> None:
    response = api.as_("wendy")("GET", "/api/v1/routes/plans/nope/bins")
    assert response.status_code == 404
