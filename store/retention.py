"""Retention of homes' readings: after a shorter period than the rest, dropped or pseudonymised.

Readings from a home are personal data (UK GDPR): temperature, humidity and CO2 show when
people are in, cook, wash and sleep. Street bins' readings are not. Whether a home was occupied
when a reading was taken is not kept (``devices.void`` is today's status), so every home's
readings are treated as an occupied home's.

Past the homes' retention period each home's readings are either

- ``drop``: deleted, or
- ``pseudonymise``: replaced by hourly means of temperature, humidity and CO2 in
  ``readings_pseudonymised``, under a pseudonym (HMAC-SHA256 of the device id with a key only
  the platform holds) and the home's patch, then deleted. Area statistics survive; the link
  to an address needs the key.

Alerts keep their own evidence (``condition_events``), so Awaab's Law records do not depend on
the readings kept here. Everything else ages out with the overall retention
(``civic db maintain --retention-days``).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import psycopg

RetentionMode = Literal["drop", "pseudonymise"]
MODES: tuple[RetentionMode, ...] = ("drop", "pseudonymise")
DEFAULT_HOME_RETENTION_DAYS = 400
"""A year and a winter: the alert rules and forecasts compare a home with last winter."""
PSEUDONYM_HEX = 16  # 64 bits: unique across any estate, short enough to read


@dataclass(frozen=True, slots=True)
class RetentionResult:
    homes: int  # homes with readings past the period
    readings: int  # readings removed from ``readings``
    pseudonymised_hours: int  # hourly rows written (pseudonymise mode)


def pseudonym(key: bytes, device_id: str) -> str:
    return hmac.new(key, f"civic-pseudonym|{device_id}".encode(), hashlib.sha256).hexdigest()[
        :PSEUDONYM_HEX
    ]


def apply_home_retention(
    conn: psycopg.Connection[Any],
    *,
    now: datetime,
    days: int,
    mode: RetentionMode,
    key: Callable[[], bytes] | None = None,
) -> RetentionResult:
    """Drop or pseudonymise every home's readings older than ``days`` before ``now``, in one
    transaction. ``key`` gives the pseudonym key, asked for only when there is something to
    pseudonymise."""
    if days < 1:
        raise ValueError("the homes' retention period must be at least one day")
    if mode not in MODES:
        raise ValueError(f"retention mode must be one of {', '.join(MODES)}")
    if mode == "pseudonymise" and not key:
        raise ValueError("pseudonymising needs a key")
    cutoff = now - timedelta(days=days)
    with conn.transaction():
        homes = [
            r["device_id"]
            for r in conn.execute(
                "SELECT DISTINCT r.device_id FROM readings r JOIN devices d USING (device_id)"
                " WHERE d.kind = 'env' AND r.ts < %s",
                (cutoff,),
            )
        ]
        if not homes:
            return RetentionResult(0, 0, 0)
        hours = 0
        if mode == "pseudonymise":
            assert key is not None
            secret = key()
            hours = _pseudonymise(conn, homes, [pseudonym(secret, h) for h in homes], cutoff)
        deleted = conn.execute(
            "DELETE FROM readings WHERE device_id = ANY(%s) AND ts < %s", (homes, cutoff)
        ).rowcount
    return RetentionResult(len(homes), deleted, hours)


# Late readings for an hour already pseudonymised: merge the means, weighted by count.
_MERGE = (
    "{m} = CASE WHEN t.{m} IS NULL THEN EXCLUDED.{m} WHEN EXCLUDED.{m} IS NULL THEN t.{m}"
    " ELSE (t.{m} * t.n + EXCLUDED.{m} * EXCLUDED.n) / (t.n + EXCLUDED.n) END"
)


def _pseudonymise(
    conn: psycopg.Connection[Any], homes: list[str], pseudonyms: list[str], cutoff: datetime
) -> int:
    return conn.execute(
        """INSERT INTO readings_pseudonymised AS t
               (pseudonym, patch, hour, n, temp_c, rh_pct, co2_ppm)
           SELECT p.pseudonym, d.patch, date_trunc('hour', r.ts), count(*),
                  avg(r.temp_c), avg(r.rh_pct), avg(r.co2_ppm)
           FROM readings r
           JOIN unnest(%s::text[], %s::text[]) AS p (device_id, pseudonym) USING (device_id)
           JOIN devices d USING (device_id)
           WHERE r.ts < %s
           GROUP BY p.pseudonym, d.patch, date_trunc('hour', r.ts)
           ON CONFLICT (pseudonym, hour) DO UPDATE SET n = t.n + EXCLUDED.n, """
        + ", ".join(_MERGE.format(m=m) for m in ("temp_c", "rh_pct", "co2_ppm")),
        (homes, pseudonyms, cutoff),
    ).rowcount
