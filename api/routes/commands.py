"""Heating setpoints sent to homes, and their acknowledgement state.

A housing officer may switch the heating of a home in their patches (a void home in a cold
snap, say); the command is queued, published by ``civic alerts run`` and tracked to the
device's acknowledgement. Every command is written to the access log.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from alerts.commands import MAX_SETPOINT_C, MIN_SETPOINT_C, open_command, queue_setpoint
from api.deps import Caller, Db, audit
from api.problems import PROBLEM_RESPONSES, Problem
from api.security import Principal

router = APIRouter(prefix="/api/v1", tags=["commands"], responses=PROBLEM_RESPONSES)

COMMAND_TTL = timedelta(minutes=30)  # as frost protection: after this, a visit instead


class SetpointRequest(BaseModel):
    setpoint_c: float = Field(ge=MIN_SETPOINT_C, le=MAX_SETPOINT_C)
    device_id: str | None = Field(
        None, description="which of the home's devices (needed when it has more than one)"
    )
    reason: str = Field("officer_request", max_length=200)


class Command(BaseModel):
    id: str
    device_id: str
    name: str
    args: dict[str, Any]
    state: str
    """pending → accepted → done; or rejected / expired (then an officer visits)."""
    issued_at: datetime
    expires_at: datetime
    published_at: datetime | None
    acked_at: datetime | None
    ack_detail: str | None
    alert_id: str | None


_HOME_DEVICES = """
SELECT device_id FROM devices
WHERE kind = 'env' AND uprn = %(uprn)s AND disabled_at IS NULL
  AND (%(patches)s::text[] IS NULL OR patch = ANY(%(patches)s))
ORDER BY device_id
"""

_COMMANDS = """
SELECT c.id, c.device_id, c.name, c.args, c.state, c.issued_at, c.expires_at, c.published_at,
       c.acked_at, c.ack_detail, c.alert_id
FROM commands c JOIN devices d USING (device_id)
WHERE (%(patches)s::text[] IS NULL OR d.patch = ANY(%(patches)s))
  AND (%(uprn)s::text IS NULL OR d.uprn = %(uprn)s)
  AND (%(id)s::text IS NULL OR c.id = %(id)s)
ORDER BY c.issued_at DESC
LIMIT 200
"""


def _home_devices(conn: Db, principal: Principal, uprn: str) -> list[str]:
    rows = conn.execute(_HOME_DEVICES, {"uprn": uprn, "patches": principal.patch_filter})
    devices = [r["device_id"] for r in rows.fetchall()]
    if not devices:
        raise Problem(404, f"no home {uprn!r} with a working device in your patches")
    return devices


@router.post("/homes/{uprn}/heating", status_code=202)
def set_heating(
    request: Request,
    conn: Db,
    principal: Annotated[Principal, Caller("commands:write")],
    uprn: str,
    body: SetpointRequest,
) -> Command:
    """Queue a heating setpoint for the home's device; 409 while an earlier command to it
    waits for its acknowledgement."""
    devices = _home_devices(conn, principal, uprn)
    if body.device_id is None and len(devices) > 1:
        raise Problem(422, f"home {uprn} has devices {', '.join(devices)}: give device_id")
    device_id = body.device_id or devices[0]
    if device_id not in devices:
        raise Problem(404, f"no device {device_id!r} in home {uprn}")
    with conn.transaction():
        waiting = open_command(conn, device_id)
        if waiting is not None:
            raise Problem(409, f"command {waiting} to {device_id} still waits for its ack")
        command_id = queue_setpoint(
            conn,
            device_id,
            body.setpoint_c,
            reason=body.reason,
            ttl=COMMAND_TTL,
            now=datetime.now(UTC),
        )
        audit(
            conn,
            request,
            principal,
            "command",
            [uprn, device_id, command_id],
            setpoint_c=body.setpoint_c,
        )
    return get_command(conn, principal, command_id)


@router.get("/homes/{uprn}/commands")
def home_commands(
    conn: Db, principal: Annotated[Principal, Caller("commands:write")], uprn: str
) -> list[Command]:
    """The home's commands, newest first."""
    _home_devices(conn, principal, uprn)
    rows = conn.execute(_COMMANDS, {"patches": principal.patch_filter, "uprn": uprn, "id": None})
    return [Command(**r) for r in rows.fetchall()]


@router.get("/commands/{command_id}")
def get_command(
    conn: Db, principal: Annotated[Principal, Caller("commands:write")], command_id: str
) -> Command:
    """One command and where it is: published, acknowledged, done, rejected or expired."""
    row = conn.execute(
        _COMMANDS, {"patches": principal.patch_filter, "uprn": None, "id": command_id}
    ).fetchone()
    if row is None:
        raise Problem(404, f"no command {command_id!r} you may see")
    return Command(**row)
