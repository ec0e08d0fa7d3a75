"""An estate for the API tests: homes in two patches (one void in each, frozen), bins, users
of every role, and the alerts the real evaluator raises from the readings."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from alerts.service import Evaluator, EvaluatorConfig
from api.identity import add_user
from api.settings import ApiSettings
from dashboards.web import create_web_app
from firmware_contracts import Reading
from store.db import connect
from store.readings import PartitionGuard, prepare_session, write_batch
from store.registry import Device, upsert_devices

PASSWORD = "correct horse battery"
NORTH_OCCUPIED, NORTH_VOID, SOUTH_VOID = "100000000101", "100000000102", "100000000201"
USERS = {
    "olivia": ("housing_officer", ["north"]),
    "sam": ("housing_officer", ["south"]),
    "wendy": ("waste_ops", []),
    "ed": ("engineer", []),
    "ada": ("admin", []),
}
NOW = datetime.now(UTC).replace(second=0, microsecond=0)
START = NOW - timedelta(hours=30)


def api_settings(**overrides: Any) -> ApiSettings:
    values: dict[str, Any] = {
        "env": "production",
        "api_secret": SecretStr("t" * 48),
        "api_rate_per_minute": 100_000,
        "api_revocation_check_s": 0,  # refuse a disabled user at once
    }
    values.update(overrides)
    return ApiSettings(**values)


def _devices() -> list[Device]:
    def home(device_id: str, uprn: str, patch: str, void: bool) -> Device:
        return Device(
            device_id,
            "env",
            52.63,
            -1.13,
            uprn=uprn,
            address=f"{uprn[-3:]} High Street",
            patch=patch,
            void=void,
        )

    def bin_(device_id: str, patch: str) -> Device:
        return Device(
            device_id,
            "bin",
            52.63,
            -1.13,
            patch=patch,
            waste_stream="general",
            capacity_l=1100,
            threshold_pct=80,
        )

    return [
        home("env-n1", NORTH_OCCUPIED, "north", False),
        home("env-n2", NORTH_VOID, "north", True),
        home("env-s1", SOUTH_VOID, "south", True),
        bin_("bin-1", "north"),
        bin_("bin-2", "south"),
    ]


def _readings() -> list[Reading]:
    out = []
    for k in range(61):  # every 30 minutes for 30 hours
        ts = START + timedelta(minutes=30 * k)
        out.append(Reading("env-n1", ts, seq=k, temp_c=20.0, rh_pct=50.0, battery_v=3.6))
        out.append(Reading("env-n2", ts, seq=k, temp_c=2.0, rh_pct=60.0, battery_v=3.6))
        out.append(Reading("env-s1", ts, seq=k, temp_c=2.0, rh_pct=60.0, battery_v=3.1))
        out.append(Reading("bin-1", ts, seq=k, fill_pct=min(20.0 + k, 105.0), battery_v=3.6))
        out.append(Reading("bin-2", ts, seq=k, fill_pct=30.0, battery_v=3.6))
    return out


@dataclass
class Api:
    client: TestClient
    url: str

    def token(self, user: str) -> str:
        response = self.client.post(
            "/api/v1/auth/token",
            data={"grant_type": "password", "username": user, "password": PASSWORD},
        )
        assert response.status_code == 200, response.text
        return str(response.json()["access_token"])

    def as_(self, user: str) -> Callable[..., Any]:
        headers = {"Authorization": f"Bearer {self.token(user)}"}

        def call(method: str, path: str, **kwargs: Any) -> Any:
            return self.client.request(method, path, headers=headers, **kwargs)

        return call


def build_estate(database_url: str) -> None:
    """Devices, 30 hours of readings, a user per role, and the alerts they raise."""
    with connect(database_url) as conn:
        upsert_devices(conn, _devices())
        prepare_session(conn)
        write_batch(conn, _readings(), [], partitions=PartitionGuard())
        for name, (role, patches) in USERS.items():
            add_user(conn, name, role, patches, PASSWORD)
        evaluator = Evaluator(conn, EvaluatorConfig())
        evaluator.run_cycle(notify=False)
        evaluator.close()


@pytest.fixture
def estate_url(database_url: str) -> str:
    build_estate(database_url)
    return database_url


@pytest.fixture
def api(estate_url: str) -> Iterator[Api]:
    with TestClient(create_web_app(estate_url, api_settings())) as client:
        yield Api(client, estate_url)
