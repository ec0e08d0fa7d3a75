"""Homes, bins and devices: the registry as each role may see it.

Housing officers see homes (address, UPRN, void) in their patches only, and every such read is
logged; waste crews see bins; engineers see devices without addresses or the position of a
home's sensor; admins import and disable.
"""

from __future__ import annotations

import io
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, UploadFile
from pydantic import BaseModel

from api.deps import Caller, Db, audit
from api.problems import PROBLEM_RESPONSES, Problem
from api.security import Principal
from store.registry import RegistryImportError, parse_devices_csv, upsert_devices

router = APIRouter(prefix="/api/v1", responses=PROBLEM_RESPONSES)

MAX_PAGE = 5000


class Home(BaseModel):
    uprn: str
    address: str | None
    patch: str | None
    void: bool
    device_ids: list[str]


class Bin(BaseModel):
    device_id: str
    lat: float
    lon: float
    patch: str | None
    waste_stream: str
    capacity_l: float
    threshold_pct: float
    fill_pct: float | None
    """At the bin's latest reading."""
    reading_ts: datetime | None
    disabled: bool


class Device(BaseModel):
    device_id: str
    kind: Literal["bin", "env"]
    patch: str | None
    lat: float | None
    """Bins always; a home's sensor only for callers who may see homes."""
    lon: float | None
    uprn: str | None
    """Only for callers who may see homes."""
    status: str | None
    status_at: datetime | None
    disabled: bool


class ImportReport(BaseModel):
    added: int
    updated: int


_HOMES = """
SELECT uprn, min(address) AS address, min(patch) AS patch, bool_or(void) AS void,
       array_agg(device_id ORDER BY device_id) AS device_ids
FROM devices
WHERE kind = 'env' AND uprn IS NOT NULL
  AND (%(patches)s::text[] IS NULL OR patch = ANY(%(patches)s))
  AND (%(patch)s::text IS NULL OR patch = %(patch)s)
  AND (%(uprn)s::text IS NULL OR uprn = %(uprn)s)
  AND (%(after)s::text IS NULL OR uprn > %(after)s)
GROUP BY uprn
HAVING (%(void)s::boolean IS NULL OR bool_or(void) = %(void)s)
ORDER BY uprn
LIMIT %(limit)s
"""


@router.get("/homes", tags=["homes"])
def list_homes(
    request: Request,
    conn: Db,
    principal: Annotated[Principal, Caller("homes:read")],
    patch: str | None = None,
    void: bool | None = None,
    after: Annotated[
        str | None, Query(description="page on: the last UPRN of the page before")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 500,
) -> list[Home]:
    """Council homes with sensors, in the caller's patches (personal data: logged)."""
    rows = conn.execute(
        _HOMES,
        {
            "patches": principal.patch_filter,
            "patch": patch,
            "uprn": None,
            "void": void,
            "after": after,
            "limit": limit,
        },
    ).fetchall()
    audit(conn, request, principal, "read_personal", [r["uprn"] for r in rows])
    return [Home(**r) for r in rows]


@router.get("/homes/{uprn}", tags=["homes"])
def get_home(
    request: Request, conn: Db, principal: Annotated[Principal, Caller("homes:read")], uprn: str
) -> Home:
    """One home; 404 when it is not in the caller's patches (personal data: logged)."""
    row = conn.execute(
        _HOMES,
        {
            "patches": principal.patch_filter,
            "patch": None,
            "uprn": uprn,
            "void": None,
            "after": None,
            "limit": 1,
        },
    ).fetchone()
    if row is None:
        raise Problem(404, f"no home {uprn!r} in your patches")
    audit(conn, request, principal, "read_personal", [uprn])
    return Home(**row)


_BINS = """
SELECT d.device_id, d.lat, d.lon, d.patch, d.waste_stream, d.capacity_l, d.threshold_pct,
       d.disabled_at IS NOT NULL AS disabled, r.fill_pct, r.ts AS reading_ts
FROM devices d
LEFT JOIN latest_readings r USING (device_id)
WHERE d.kind = 'bin'
  AND (%(stream)s::text IS NULL OR d.waste_stream = %(stream)s)
  AND (%(patch)s::text IS NULL OR d.patch = %(patch)s)
  AND (%(device)s::text IS NULL OR d.device_id = %(device)s)
  AND (%(after)s::text IS NULL OR d.device_id > %(after)s)
ORDER BY d.device_id
LIMIT %(limit)s
"""


@router.get("/bins", tags=["bins"])
def list_bins(
    conn: Db,
    _: Annotated[Principal, Caller("bins:read")],
    stream: str | None = None,
    patch: str | None = None,
    after: Annotated[str | None, Query(description="the last device id of the page before")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1000,
) -> list[Bin]:
    """Street bins with their latest fill."""
    params = {"stream": stream, "patch": patch, "device": None, "after": after, "limit": limit}
    return [Bin(**r) for r in conn.execute(_BINS, params).fetchall()]


@router.get("/bins/{device_id}", tags=["bins"])
def get_bin(conn: Db, _: Annotated[Principal, Caller("bins:read")], device_id: str) -> Bin:
    params = {"stream": None, "patch": None, "device": device_id, "after": None, "limit": 1}
    row = conn.execute(_BINS, params).fetchone()
    if row is None:
        raise Problem(404, f"no bin {device_id!r}")
    return Bin(**row)


_DEVICES = """
SELECT d.device_id, d.kind, d.patch, d.lat, d.lon, d.uprn, d.disabled_at IS NOT NULL AS disabled,
       s.state AS status, s.updated_at AS status_at
FROM devices d LEFT JOIN device_status s USING (device_id)
WHERE (%(kind)s::text IS NULL OR d.kind = %(kind)s)
  AND (%(patch)s::text IS NULL OR d.patch = %(patch)s)
  AND (%(device)s::text IS NULL OR d.device_id = %(device)s)
  AND (%(after)s::text IS NULL OR d.device_id > %(after)s)
ORDER BY d.device_id
LIMIT %(limit)s
"""


def _device(row: dict[str, Any], principal: Principal) -> Device:
    if row["kind"] == "env" and not principal.sees_addresses:
        row = {**row, "lat": None, "lon": None, "uprn": None}
    return Device(**row)


@router.get("/devices", tags=["devices"])
def list_devices(
    conn: Db,
    principal: Annotated[Principal, Caller("devices:read")],
    kind: Literal["bin", "env"] | None = None,
    patch: str | None = None,
    after: Annotated[str | None, Query(description="the last device id of the page before")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1000,
) -> list[Device]:
    """Every device with its last status; no tenant's address or home position."""
    params = {"kind": kind, "patch": patch, "device": None, "after": after, "limit": limit}
    return [_device(r, principal) for r in conn.execute(_DEVICES, params).fetchall()]


@router.get("/devices/{device_id}", tags=["devices"])
def get_device(
    conn: Db, principal: Annotated[Principal, Caller("devices:read")], device_id: str
) -> Device:
    params = {"kind": None, "patch": None, "device": device_id, "after": None, "limit": 1}
    row = conn.execute(_DEVICES, params).fetchone()
    if row is None:
        raise Problem(404, f"no device {device_id!r}")
    return _device(row, principal)


@router.post("/devices/import", tags=["devices"])
async def import_devices(
    request: Request,
    conn: Db,
    principal: Annotated[Principal, Caller("devices:write")],
    file: UploadFile,
) -> ImportReport:
    """The registry CSV, checked as ``civic devices import`` checks it: any bad row and nothing
    is imported (422 lists every bad row)."""
    raw = await file.read()
    try:
        devices = parse_devices_csv(io.StringIO(raw.decode("utf-8-sig"), newline=""))
    except UnicodeDecodeError as exc:
        raise Problem(400, "the file is not UTF-8 text") from exc
    except RegistryImportError as exc:
        raise Problem(422, "; ".join(str(e) for e in exc.errors[:50])) from exc
    with conn.transaction():
        added, updated = upsert_devices(conn, devices)
        audit(
            conn,
            request,
            principal,
            "write",
            [d.device_id for d in devices],
            added=added,
            updated=updated,
        )
    return ImportReport(added=added, updated=updated)


@router.post("/devices/{device_id}/disable", tags=["devices"])
def disable_device(
    request: Request,
    conn: Db,
    principal: Annotated[Principal, Caller("devices:write")],
    device_id: str,
) -> Device:
    """Stop accepting the device's messages (they go to dead letters as ``unknown_device``);
    its history stays."""
    with conn.transaction():
        row = conn.execute(
            "UPDATE devices SET disabled_at = coalesce(disabled_at, now()), updated_at = now()"
            " WHERE device_id = %s RETURNING device_id",
            (device_id,),
        ).fetchone()
        if row is None:
            raise Problem(404, f"no device {device_id!r}")
        audit(conn, request, principal, "write", [device_id], change="disabled")
    return get_device(conn, principal, device_id)
