"""The screens' tests use the API tests' estate (two patches, a user per role, real alerts),
built once per module: the screens' tests only read it, or act on different alerts."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.api.conftest import build_estate
from tests.conftest import _fresh_database


@pytest.fixture(scope="module")
def estate_url(services: Any) -> Iterator[str]:
    for url in _fresh_database(services, None):
        build_estate(url)
        yield url
