from __future__ import annotations

from store.aggregates import refresh_hourly_rollup
from store.db import connect
from store.registry import Device, upsert_devices


def register_devices(url: str, device_ids: list[str]) -> None:
    devices = []
    for device_id in device_ids:
        if device_id.startswith("env"):
            devices.append(
                Device(device_id, "env", 52.6, -1.1, uprn="100000000001", patch="north", void=False)
            )
        else:
            devices.append(
                Device(
                    device_id,
                    "bin",
                    52.6,
                    -1.1,
                    waste_stream="general",
                    capacity_l=240,
                    threshold_pct=80,
                )
            )
    with connect(url) as conn:
        upsert_devices(conn, devices)


def refresh_rollup(url: str) -> None:
    """On TimescaleDB, readings written into hours the hourly rollup already materialised show
    at the aggregate's next refresh (its policy runs every 15 minutes; real-time aggregation
    covers only the hours after the last one): run that refresh now, as the policy would.
    Native partitioning keeps the rollup with triggers, so there is nothing to do."""
    with connect(url) as conn:
        refresh_hourly_rollup(conn)
