"""The HTTP API against a real database."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from dashboards.web import create_web_app
from firmware_contracts import Reading
from store.db import connect
from store.readings import PartitionGuard, prepare_session, write_batch
from tests.store.helpers import register_devices


@pytest.fixture
def client(database_url: str) -> TestClient:
    register_devices(database_url, ["bin-1", "env-1"])
    base = datetime(2026, 2, 2, 8, 0, tzinfo=UTC)
    readings = [
        Reading("bin-1", base + timedelta(hours=h), seq=h, fill_pct=10.0 * h) for h in range(5)
    ]
    readings.append(Reading("env-1", base, seq=1, rh_pct=72.5, temp_c=15.0))
    with connect(database_url) as conn:
        prepare_session(conn)
        write_batch(conn, readings, [], partitions=PartitionGuard())
    return TestClient(create_web_app(database_url))


def test_health_and_openapi(client: TestClient) -> None:
    assert client.get("/health").json()["status"] == "ok"
    assert "/v1/readings" in client.get("/openapi.json").json()["paths"]


def test_devices_and_latest_reading(client: TestClient) -> None:
    bins = client.get("/v1/devices", params={"kind": "bin"}).json()
    assert [d["device_id"] for d in bins] == ["bin-1"]
    one = client.get("/v1/devices/bin-1").json()
    assert one["latest_reading"]["fill_pct"] == 40.0
    assert one["latest_reading"]["ts"] == "2026-02-02T12:00:00Z"
    missing = client.get("/v1/devices/nope")
    assert missing.status_code == 404
    assert "nope" in missing.json()["detail"]


def test_readings_extract_json_and_csv(client: TestClient) -> None:
    window = {"since": "2026-02-02T09:00:00Z", "until": "2026-02-02T11:30:00Z"}
    data = client.get("/v1/readings", params=window).json()
    assert [(r["device_id"], r["fill_pct"]) for r in data] == [
        ("bin-1", 10.0),
        ("bin-1", 20.0),
        ("bin-1", 30.0),
    ]
    text = client.get("/v1/readings", params={**window, "format": "csv"}).text
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["ts"] for r in rows] == [
        "2026-02-02T09:00:00Z",
        "2026-02-02T10:00:00Z",
        "2026-02-02T11:00:00Z",
    ]


@pytest.mark.parametrize(
    ("params", "status", "message"),
    [
        ({"since": "yesterday-ish"}, 400, "is not a time"),
        ({"since": "2026-02-02", "until": "2026-02-01"}, 400, "until must be after since"),
        ({"since": "1d", "format": "xml"}, 422, "format"),
        ({}, 422, "since"),
    ],
)
def test_bad_requests_are_4xx_with_a_message(client: TestClient, params, status, message) -> None:
    response = client.get("/v1/readings", params=params)
    assert response.status_code == status
    assert message in response.text


def test_hourly_surface(client: TestClient) -> None:
    rows = client.get(
        "/v1/readings/hourly", params={"device_id": "bin-1", "since": "2026-02-01"}
    ).json()
    assert [r["fill_pct_avg"] for r in rows] == [0.0, 10.0, 20.0, 30.0, 40.0]


def test_overview_dashboard_is_accessible_html(client: TestClient, database_url: str) -> None:
    assert "bin-1" not in client.get("/").text  # 40 % is under its 80 % threshold
    with connect(database_url) as conn:
        prepare_session(conn)
        ts = datetime(2026, 2, 3, 8, 0, tzinfo=UTC)
        write_batch(
            conn, [Reading("bin-1", ts, seq=9, fill_pct=95.0)], [], partitions=PartitionGuard()
        )
    page = client.get("/")
    assert page.status_code == 200
    html = page.text
    assert '<html lang="en">' in html
    assert html.count("<caption>") == 3
    assert '<th scope="col" class="num">fill %</th>' in html
    assert '<td>bin-1</td><td>general</td><td class="num">95.0</td>' in html
