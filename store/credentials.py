"""Device credentials: issue, rotate, revoke, and the password entries the broker checks.

A device logs in to the broker with its device id and a random password; only the password's
hash (Mosquitto's ``$7$`` form) is stored. Its heating-command key is derived from the
platform's command secret and a key version (``common.command_keys``), so rotating bumps the
version and both secrets change together.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from common.broker import new_secret, password_hash
from common.command_keys import device_command_key
from store.db import StoreError

__all__ = [
    "IssuedCredential",
    "broker_password_hashes",
    "command_key_versions",
    "disable_device",
    "issue_credentials",
]


@dataclass(frozen=True, slots=True)
class IssuedCredential:
    """What a device is given once: never stored, shown to whoever provisions it."""

    device_id: str
    password: str
    command_key: bytes
    key_version: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "device_id": self.device_id,
            "username": self.device_id,
            "password": self.password,
            "command_key": self.command_key.hex(),
            "key_version": self.key_version,
        }


def _targets(conn: psycopg.Connection[Any], device_ids: Sequence[str] | None) -> list[str]:
    rows = conn.execute(
        "SELECT device_id, disabled_at FROM devices"
        " WHERE %(all)s OR device_id = ANY(%(ids)s) ORDER BY device_id",
        {"all": device_ids is None, "ids": list(device_ids or [])},
    ).fetchall()
    found = {r["device_id"]: r["disabled_at"] for r in rows}
    unknown = sorted(set(device_ids or []) - set(found))
    if unknown:
        raise StoreError(f"not in the device registry: {', '.join(unknown)}")
    disabled = sorted(d for d in (device_ids or []) if found[d] is not None)
    if disabled:
        raise StoreError(f"disabled (issue no credentials to them): {', '.join(disabled)}")
    return [d for d, disabled_at in found.items() if disabled_at is None]


def issue_credentials(
    conn: psycopg.Connection[Any],
    device_ids: Sequence[str] | None,
    *,
    secret: bytes,
    rotate: bool = False,
) -> list[IssuedCredential]:
    """New credentials for the devices (``None``: every enabled device) that have none, or
    for all of them with ``rotate`` (the old password and command key stop working)."""
    issued = []
    with conn.transaction():
        targets = _targets(conn, device_ids)
        versions = command_key_versions(conn)
        for device_id in targets:
            if device_id in versions and not rotate:
                continue
            version = versions.get(device_id, 0) + 1
            password = new_secret()
            conn.execute(
                """INSERT INTO device_credentials (device_id, password_hash, key_version)
                   VALUES (%s, %s, %s)
                   ON CONFLICT (device_id) DO UPDATE SET password_hash = EXCLUDED.password_hash,
                       key_version = EXCLUDED.key_version, rotated_at = now()""",
                (device_id, password_hash(password), version),
            )
            key = device_command_key(secret, device_id, version)
            issued.append(IssuedCredential(device_id, password, key, version))
    return issued


def command_key_versions(conn: psycopg.Connection[Any]) -> dict[str, int]:
    rows = conn.execute("SELECT device_id, key_version FROM device_credentials").fetchall()
    return {r["device_id"]: int(r["key_version"]) for r in rows}


def broker_password_hashes(conn: psycopg.Connection[Any]) -> dict[str, str]:
    """device id -> ``$7$`` hash of every enabled device with credentials."""
    rows = conn.execute(
        """SELECT c.device_id, c.password_hash FROM device_credentials c
           JOIN devices d USING (device_id) WHERE d.disabled_at IS NULL"""
    ).fetchall()
    return {r["device_id"]: r["password_hash"] for r in rows}


def disable_device(conn: psycopg.Connection[Any], device_id: str) -> bool:
    """Take a device out of service: its credentials are deleted and ingest stops accepting
    its readings. False when it was already disabled."""
    with conn.transaction():
        row = conn.execute(
            "SELECT disabled_at FROM devices WHERE device_id = %s", (device_id,)
        ).fetchone()
        if row is None:
            raise StoreError(f"not in the device registry: {device_id}")
        conn.execute("DELETE FROM device_credentials WHERE device_id = %s", (device_id,))
        if row["disabled_at"] is not None:
            return False
        conn.execute(
            "UPDATE devices SET disabled_at = now(), updated_at = now() WHERE device_id = %s",
            (device_id,),
        )
    return True
