"""The entities from the store: one code path for ``civic export fiware``, the API and the push.

Who may see what is decided in SQL: ``patches`` narrows homes to a housing officer's patches,
and a home's address, UPRN, void flag and exact place are selected only when ``personal``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import psycopg

from alerts.queries import AlertFilter, list_alerts
from fiware.entities import (
    BinState,
    EntityType,
    HomeObservation,
    indoor_environment_observed,
    waste_container,
    waste_container_model,
)
from forecast.bins import forecast_bins

__all__ = ["load_bins", "load_entities", "load_homes"]

Conn = psycopg.Connection[dict[str, Any]]

_BINS = """
SELECT d.device_id, d.lat, d.lon, d.waste_stream, d.capacity_l, d.threshold_pct,
       l.fill_pct, l.temp_c, l.ts AS reading_ts
FROM devices d LEFT JOIN latest_readings l USING (device_id)
WHERE d.kind = 'bin' AND d.disabled_at IS NULL
ORDER BY d.device_id
"""

_HOMES = """
SELECT d.device_id, d.lat, d.lon, l.ts, l.temp_c, l.rh_pct, l.co2_ppm,
       CASE WHEN %(personal)s THEN d.uprn END AS uprn,
       CASE WHEN %(personal)s THEN d.address END AS address,
       CASE WHEN %(personal)s THEN d.void END AS void
FROM devices d JOIN latest_readings l USING (device_id)
WHERE d.kind = 'env' AND d.disabled_at IS NULL
  AND (%(patches)s::text[] IS NULL OR d.patch = ANY(%(patches)s))
ORDER BY d.device_id
"""


def load_bins(conn: Conn, *, now: datetime | None = None) -> list[BinState]:
    """Every bin in service with its latest reading, open alerts and fill forecast."""
    now = now or datetime.now(UTC)
    alerts: dict[str, set[str]] = {}
    for alert in list_alerts(
        conn, AlertFilter(state="active", subject_kinds=["bin"], limit=1_000_000)
    ):
        alerts.setdefault(alert["subject_id"], set()).add(alert["alert_type"])
    forecasts = {f.device_id: f for f in forecast_bins(conn, at=now, now=now)}
    out = []
    for row in conn.execute(_BINS).fetchall():
        forecast = forecasts.get(row["device_id"])
        out.append(
            BinState(
                **row,
                active_alerts=frozenset(alerts.get(row["device_id"], ())),
                last_emptied=forecast.last_collection_ts if forecast else None,
                full_at=forecast.forecast_full_time if forecast else None,
            )
        )
    return out


def load_homes(
    conn: Conn, *, personal: bool, patches: list[str] | None = None
) -> list[HomeObservation]:
    """Each home sensor's latest reading, in ``patches`` (None: all)."""
    rows = conn.execute(_HOMES, {"personal": personal, "patches": patches}).fetchall()
    return [HomeObservation(**row) for row in rows]


def load_entities(
    conn: Conn,
    entity_type: EntityType,
    *,
    personal: bool = False,
    patches: list[str] | None = None,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """Key-values entities of one type (``render`` them for the wire)."""
    if entity_type == "WasteContainer":
        return [waste_container(b) for b in load_bins(conn, now=now)]
    if entity_type == "WasteContainerModel":
        sizes = conn.execute(
            "SELECT DISTINCT capacity_l FROM devices WHERE kind = 'bin' ORDER BY capacity_l"
        ).fetchall()
        return [waste_container_model(float(r["capacity_l"])) for r in sizes]
    homes = load_homes(conn, personal=personal, patches=patches)
    return [indoor_environment_observed(h) for h in homes]
