"""Property-based fuzzing of the whole OpenAPI schema, logged in as an admin (every scope):
whatever the input, no 5xx, and every error is ``application/problem+json``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings

from dashboards.web import create_web_app
from tests import conftest as base
from tests.api.conftest import PASSWORD, api_settings, build_estate

# Enough to reach every parameter's edge cases in CI without making it the slowest test.
EXAMPLES_PER_OPERATION = 12


@pytest.fixture(scope="module")
def fuzz_target(services: base.TestServices) -> Iterator[tuple[Any, dict[str, str]]]:
    for url in base._fresh_database(services, None):
        build_estate(url)
        app = create_web_app(url, api_settings(api_route_max_seconds=1))
        with TestClient(app) as client:
            token = client.post(
                "/api/v1/auth/token",
                data={"grant_type": "password", "username": "ada", "password": PASSWORD},
            ).json()["access_token"]
            yield app, {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def api_schema(fuzz_target: tuple[Any, dict[str, str]]) -> Any:
    app, _ = fuzz_target
    return schemathesis.openapi.from_asgi("/openapi.json", app)


def _check(case: Any, headers: dict[str, str]) -> None:
    response = case.call(headers=headers)
    where = (case.method, case.formatted_path, response.status_code, response.text[:300])
    if case.path == "/readyz":
        return  # 503 with which service is down, by design (there is no broker here)
    assert response.status_code < 500, where
    if response.status_code >= 400:
        content_type = response.headers.get("content-type", "")
        if isinstance(content_type, list):
            content_type = content_type[0]
        assert content_type.startswith("application/problem+json"), where


def test_no_input_breaks_the_api(api_schema: Any, fuzz_target: tuple[Any, dict[str, str]]) -> None:
    _, headers = fuzz_target
    fuzzed = []
    for result in api_schema.get_all_operations():
        operation = result.ok()
        if operation.path == "/api/v1/live":
            continue  # an endless stream: tested in test_resources

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        def run(case: Any) -> None:
            _check(case, headers)

        run()
        fuzzed.append(f"{operation.method.upper()} {operation.path}")
    assert len(fuzzed) >= 30, fuzzed
