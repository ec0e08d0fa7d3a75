"""The screens' tests use the API tests' estate (two patches, a user per role, real alerts),
built once per module: the screens' tests only read it, or act on different alerts."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from store.db import connect
from tests.api.conftest import build_estate
from tests.conftest import _fresh_database


@pytest.fixture(scope="module")
def estate_url(services: Any) -> Iterator[str]:
    for url in _fresh_database(services, None):
        build_estate(url)
        yield url


@pytest.fixture(autouse=True)
def _no_requests_counted_yet(request: pytest.FixtureRequest) -> None:
    """Each test starts with no requests counted against the rate limits, as it would against
    a fresh server: the limits are kept in the database, and the module's tests share the
    estate and log the same people in more often than a person would in a minute."""
    if "estate_url" in request.fixturenames:
        with connect(request.getfixturevalue("estate_url")) as conn:
            conn.execute("DELETE FROM api_rate_counts")
