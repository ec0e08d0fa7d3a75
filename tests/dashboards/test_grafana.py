"""Every panel of the provisioned Grafana dashboards runs against a real, migrated database
holding the API tests' estate (readings, alerts, dead letters): its SQL is valid over the views
and returns the columns Grafana needs."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from store.db import connect
from tests.api.conftest import build_estate
from tests.conftest import _fresh_database

GRAFANA = Path(__file__).resolve().parents[2] / "dashboards" / "grafana"
TIME_FILTER = re.compile(r"\$__timeFilter\(([^()]*(?:\([^()]*\))?[^()]*)\)")


def _panels() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for path in sorted(GRAFANA.glob("*.json")):
        for panel in json.loads(path.read_text())["panels"]:
            out.append((f"{path.stem}: {panel['title']}", panel))
    return out


PANELS = _panels()


def as_run(sql: str) -> str:
    """The panel's SQL as Grafana sends it for the last 24 hours."""
    return TIME_FILTER.sub(r"(\1 BETWEEN now() - interval '24 hours' AND now())", sql)


@pytest.fixture(scope="module")
def estate(services: Any) -> Iterator[str]:
    for url in _fresh_database(services, None):
        build_estate(url)
        with connect(url) as conn:
            conn.execute(
                "INSERT INTO deadletters (received_at, source, reason, detail, payload)"
                " VALUES (now(), 'mqtt', 'schema_invalid', 'test', '\\x7b7d')"
            )
        yield url


def test_every_dashboard_has_panels() -> None:
    assert len(PANELS) >= 10


def test_no_panel_uses_a_macro_the_test_does_not_replace() -> None:
    leftovers = [t for t, p in PANELS if "$" in as_run(p["targets"][0]["rawSql"])]
    assert leftovers == []


@pytest.mark.parametrize(("title", "panel"), PANELS, ids=[t for t, _ in PANELS])
def test_the_panels_sql_runs_on_the_views(estate: str, title: str, panel: dict) -> None:
    sql = as_run(panel["targets"][0]["rawSql"])
    with psycopg.connect(estate) as conn, conn.cursor() as cur:
        cur.execute(sql)
        columns = [c.name for c in cur.description or []]
        cur.fetchall()
    if panel["type"] == "timeseries":
        assert columns[0] == "time"
    else:
        assert columns != []


def test_the_views_hold_no_uprn_or_address(estate: str) -> None:
    with psycopg.connect(estate) as conn:
        columns = conn.execute(
            "SELECT table_name, column_name FROM information_schema.columns"
            " WHERE table_name LIKE 'grafana_%' AND column_name IN ('uprn', 'address')"
        ).fetchall()
    assert columns == []


def test_the_unwell_panel_lists_the_low_battery_home(estate: str) -> None:
    panel = next(p for t, p in PANELS if t.endswith("Unwell devices"))
    with psycopg.connect(estate) as conn:
        rows = conn.execute(as_run(panel["targets"][0]["rawSql"])).fetchall()
    assert "env-s1" in [r[0] for r in rows]
