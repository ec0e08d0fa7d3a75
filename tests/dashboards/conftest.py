"""The screens' tests use the API tests' estate (two patches, a user per role, real alerts)."""

from __future__ import annotations

import pytest

from tests.api.conftest import build_estate


@pytest.fixture
def estate_url(database_url: str) -> str:
    build_estate(database_url)
    return database_url
