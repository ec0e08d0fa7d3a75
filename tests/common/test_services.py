"""How the local services decide whether PostgreSQL preloads TimescaleDB."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.services import ServicesError, timescaledb_wanted

NOWHERE = Path("/nonexistent/postgresql/bin")  # a PostgreSQL without the extension


def test_civic_timescaledb_off_and_auto_without_the_extension_mean_native(monkeypatch) -> None:
    monkeypatch.setenv("CIVIC_TIMESCALEDB", "off")
    assert timescaledb_wanted(NOWHERE) is False
    monkeypatch.delenv("CIVIC_TIMESCALEDB")
    assert timescaledb_wanted(NOWHERE) is False


def test_civic_timescaledb_on_fails_loudly_where_the_extension_is_missing(monkeypatch) -> None:
    monkeypatch.setenv("CIVIC_TIMESCALEDB", "on")
    with pytest.raises(ServicesError, match="CIVIC_TIMESCALEDB=on but the timescaledb extension"):
        timescaledb_wanted(NOWHERE)


def test_civic_timescaledb_rejects_other_values(monkeypatch) -> None:
    monkeypatch.setenv("CIVIC_TIMESCALEDB", "yes please")
    with pytest.raises(ServicesError, match="use auto, on or off"):
        timescaledb_wanted(NOWHERE)
