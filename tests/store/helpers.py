from __future__ import annotations

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
