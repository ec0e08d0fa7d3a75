"""Subject access: everything the platform holds about one home, found by its UPRN.

Sensor data from an occupied home is personal data under UK GDPR (temperature, humidity and
CO2 reveal when people are in, cook, wash and sleep). This gathers, for one property, the
registry rows of its devices, their readings and statuses, the alerts and every event on them,
heating commands, notifications, rejected messages from its devices, and the access log of who
read or changed any of it. docs/SECURITY.md says where each lives and how long it is kept.
"""

from __future__ import annotations

from typing import Any

import psycopg

from store.db import StoreError
from store.retention import pseudonym

__all__ = ["subject_access_export"]

# (section, SQL with %(devices)s (the home's device ids), %(uprn)s, %(alerts)s (its alert ids))
_SECTIONS: tuple[tuple[str, str], ...] = (
    (
        "device_status",
        "SELECT * FROM device_status WHERE device_id = ANY(%(devices)s) ORDER BY device_id",
    ),
    (
        "credentials",
        "SELECT device_id, key_version, issued_at, rotated_at FROM device_credentials"
        " WHERE device_id = ANY(%(devices)s) ORDER BY device_id",
    ),
    (
        "readings",
        "SELECT * FROM readings WHERE device_id = ANY(%(devices)s) ORDER BY device_id, ts",
    ),
    ("alerts", "SELECT * FROM alerts WHERE id = ANY(%(alerts)s) ORDER BY opened_at"),
    (
        "alert_events",
        "SELECT * FROM alert_events WHERE alert_id = ANY(%(alerts)s) ORDER BY id",
    ),
    (
        "condition_events",
        "SELECT * FROM condition_events WHERE device_id = ANY(%(devices)s) ORDER BY id",
    ),
    ("commands", "SELECT * FROM commands WHERE device_id = ANY(%(devices)s) ORDER BY issued_at"),
    (
        "notifications",
        "SELECT * FROM notifications WHERE alert_id = ANY(%(alerts)s) ORDER BY id",
    ),
    (
        "deadletters",
        "SELECT id, received_at, source, reason, detail, topic,"
        " encode(payload, 'escape') AS payload FROM deadletters"
        " WHERE split_part(topic, '/', 4) = ANY(%(devices)s) ORDER BY id",
    ),
    (
        "access_log",
        "SELECT * FROM access_log WHERE subjects &&"
        " (%(devices)s::text[] || %(uprn_list)s::text[] || %(alerts)s::text[])"
        " OR resource LIKE '%%' || %(uprn)s || '%%' ORDER BY id",
    ),
)


def subject_access_export(
    conn: psycopg.Connection[Any], uprn: str, *, pseudonym_key: bytes | None = None
) -> dict[str, Any]:
    """Everything held about the home ``uprn``, section by section (JSON-ready rows). With
    ``pseudonym_key`` (store.retention), also its readings pseudonymised after the homes'
    retention period: the platform can link them back, so they are the home's data too."""
    homes = conn.execute(
        "SELECT * FROM devices WHERE uprn = %s ORDER BY device_id", (uprn,)
    ).fetchall()
    alert_rows = conn.execute("SELECT id FROM alerts WHERE uprn = %s", (uprn,)).fetchall()
    if not homes and not alert_rows:
        raise StoreError(f"nothing is held about UPRN {uprn}")
    params = {
        "uprn": uprn,
        "uprn_list": [uprn],
        "devices": [d["device_id"] for d in homes],
        "alerts": [str(a["id"]) for a in alert_rows],
    }
    export: dict[str, Any] = {"uprn": uprn, "devices": homes}
    for section, sql in _SECTIONS:
        export[section] = conn.execute(sql, params).fetchall()
    if pseudonym_key is not None:
        export["readings_pseudonymised"] = conn.execute(
            "SELECT * FROM readings_pseudonymised WHERE pseudonym = ANY(%s) ORDER BY hour",
            ([pseudonym(pseudonym_key, d) for d in params["devices"]],),
        ).fetchall()
    return export
