"""A housing officer's screens: the alert queue for their patches and the property page.

Every figure comes from the API's endpoint functions called with the officer's principal:
an alert or home outside their patches is the API's 404 here too.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Form, Header, Query, Request
from fastapi.responses import RedirectResponse, Response

from alerts.commands import MAX_SETPOINT_C, MIN_SETPOINT_C
from alerts.evidence import STYLESHEET, STYLESHEET_VERSION, render_html
from alerts.settings import AlertsSettings
from api.deps import Db
from api.problems import Problem
from api.routes import alerts as alerts_api
from api.routes import commands as commands_api
from api.routes import devices as devices_api
from api.routes import live as live_api
from api.routes import readings as readings_api
from dashboards.flash import flash, local_path
from dashboards.homes_view import home_series, thresholds
from dashboards.render import render
from dashboards.session import Screen, Viewer, check_csrf

router = APIRouter(include_in_schema=False)

QUEUE_SIZE = 500
WINDOWS = {"24h": "15m", "7d": "1h", "30d": "1h"}  # chart window -> the API's bucket
TIMELINE_ALERTS = 20
STYLESHEET_MAX_AGE_S = 365 * 86_400  # its URL changes with its content


def _addresses(request: Request, conn: Db, viewer: Viewer) -> dict[str, Any]:
    if not viewer.can("homes:read"):
        return {}
    homes = devices_api.list_homes(request, conn, viewer.principal, limit=devices_api.MAX_PAGE)
    return {h.uprn: h for h in homes}


def _queue_rows(request: Request, conn: Db, viewer: Viewer) -> list[dict[str, Any]]:
    alerts = alerts_api.list_(
        request, conn, viewer.principal, state="active", order="due", limit=QUEUE_SIZE
    )
    homes = _addresses(request, conn, viewer)
    now = datetime.now(UTC)
    rows = []
    for a in alerts:
        home = homes.get(a.uprn or "")
        rows.append(
            {
                "alert": a,
                "address": home.address if home else None,
                "overdue": a.next_due_at is not None and a.next_due_at < now,
            }
        )
    return rows


@router.get("/queue")
def queue(
    request: Request,
    conn: Db,
    viewer: Annotated[Viewer, Screen("alerts:read")],
    part: Literal["rows"] | None = None,
) -> Response:
    """Active alerts, the earliest statutory due date first (overdue work leads)."""
    rows = _queue_rows(request, conn, viewer)
    context = {
        "viewer": viewer,
        "rows": rows,
        "overdue": sum(r["overdue"] for r in rows),
        "patches": ", ".join(viewer.principal.patches) or "all patches",
    }
    if part == "rows":
        return render(request, "_queue_rows.html", context)
    return render(request, "queue.html", context)


@router.post("/queue/act")
def act(
    request: Request,
    conn: Db,
    viewer: Annotated[Viewer, Screen("alerts:write")],
    alert_id: Annotated[str, Form(max_length=500)],
    action: Annotated[Literal["acknowledge", "resolve", "investigated"], Form()],
    note: Annotated[str, Form(max_length=4000)] = "",
    force: Annotated[bool, Form()] = False,
    back: Annotated[str, Form()] = "/queue",
    csrf: Annotated[str, Form()] = "",
) -> Response:
    """One action on one alert, through the API's own endpoint (its checks, its audit)."""
    check_csrf(request, csrf)
    principal = viewer.principal
    text = note.strip() or None
    try:
        if action == "acknowledge":
            alerts_api.acknowledge(request, conn, principal, alert_id, alerts_api.Note(note=text))
            message = "Acknowledged"
        elif action == "investigated":
            step = alerts_api.Step(at=datetime.now(UTC), note=text)
            alerts_api.investigated(request, conn, principal, alert_id, step)
            message = "Investigation recorded"
        else:
            if text is None:
                raise Problem(422, "say what was done before resolving")
            body = alerts_api.Resolution(note=text, force=force)
            alerts_api.resolve(request, conn, principal, alert_id, body)
            message = "Resolved"
        level = "ok"
        message = f"{message}: {alert_id}"
    except Problem as exc:
        if exc.status_code == 404:
            raise
        level, message = "error", f"Not done: {exc.detail}"
    response = RedirectResponse(local_path(back, "/queue"), status_code=303)
    flash(request, response, level, message)
    return response


@router.get("/homes/{uprn}")
def home(
    request: Request,
    conn: Db,
    viewer: Annotated[Viewer, Screen("homes:read", "readings:read")],
    uprn: str,
    window: Annotated[Literal["24h", "7d", "30d"], Query()] = "7d",
) -> Response:
    """A home: its sensors' charts with the rules' thresholds, its alerts and commands."""
    principal = viewer.principal
    found = devices_api.get_home(request, conn, principal, uprn)  # 404 outside the patches
    sensors = []
    for device_id in found.device_ids:
        response = readings_api.series(
            conn,
            principal,
            device_id,
            since=window,
            bucket=WINDOWS[window],  # type: ignore[arg-type]
        )
        # The API builds the series as JSON in the database; read it back as its model.
        points = [readings_api.SeriesPoint(**p) for p in json.loads(bytes(response.body))]
        lines = thresholds(uprn, found.patch, device_id, found.void)
        sensors.append(
            {
                "device_id": device_id,
                "series": home_series(points),
                "thresholds": [
                    {"metric": t.metric, "value": t.value, "label": t.label} for t in lines
                ],
                "latest": points[-1] if points else None,
            }
        )
    timeline = _timeline(request, conn, viewer, uprn)
    commands = []
    if viewer.can("commands:write"):
        commands = commands_api.home_commands(conn, principal, uprn)
    return render(
        request,
        "home.html",
        {
            "viewer": viewer,
            "home": found,
            "window": window,
            "windows": list(WINDOWS),
            "sensors": sensors,
            "alerts": timeline,
            "commands": commands,
            "setpoint": AlertsSettings().alerts_frost_setpoint_c,
            "setpoint_range": (MIN_SETPOINT_C, MAX_SETPOINT_C),
            "command_waiting": any(c.state in ("pending", "accepted") for c in commands),
        },
    )


def _timeline(request: Request, conn: Db, viewer: Viewer, uprn: str) -> list[Any]:
    if not viewer.can("alerts:read"):
        return []
    found = alerts_api.list_(
        request,
        conn,
        viewer.principal,
        state=None,
        subject=uprn,
        order="newest",
        limit=TIMELINE_ALERTS,
    )
    return [alerts_api.get(request, conn, viewer.principal, a.id) for a in found]


@router.get("/homes/{uprn}/commands")
def home_commands(
    request: Request,
    conn: Db,
    viewer: Annotated[Viewer, Screen("commands:write")],
    uprn: str,
) -> Response:
    """The commands table alone, for the page to refresh while one waits for its ack."""
    commands = commands_api.home_commands(conn, viewer.principal, uprn)
    return render(request, "_commands.html", {"commands": commands})


@router.post("/homes/{uprn}/heating")
def heating(
    request: Request,
    conn: Db,
    viewer: Annotated[Viewer, Screen("commands:write")],
    uprn: str,
    setpoint_c: Annotated[float, Form()],
    csrf: Annotated[str, Form()] = "",
) -> Response:
    check_csrf(request, csrf)
    back = f"/homes/{uprn}"
    try:
        body = commands_api.SetpointRequest(
            setpoint_c=setpoint_c, device_id=None, reason="officer_request"
        )
    except ValueError:
        low, high = MIN_SETPOINT_C, MAX_SETPOINT_C
        response = RedirectResponse(back, status_code=303)
        flash(request, response, "error", f"Not sent: a setpoint from {low:g} to {high:g} °C")
        return response
    try:
        command = commands_api.set_heating(request, conn, viewer.principal, uprn, body)
        level, message = "ok", f"Heating {setpoint_c:g} °C sent to {command.device_id}"
    except Problem as exc:
        if exc.status_code == 404:
            raise
        level, message = "error", f"Not sent: {exc.detail}"
    response = RedirectResponse(back, status_code=303)
    flash(request, response, level, message)
    return response


EVIDENCE_STYLESHEET = f"/static/evidence/{STYLESHEET_VERSION}.css"
"""The evidence pack's stylesheet, named by its content's hash: cached for good, and a new
release's page never meets an old stylesheet."""


@router.get("/alerts/evidence")
def evidence(
    request: Request,
    conn: Db,
    viewer: Annotated[Viewer, Screen("evidence:read")],
    id: str,
    format: Literal["html", "pdf"] = "pdf",
    download: bool = False,
) -> Response:
    """The alert's evidence pack, read through the API (logged there). The web page links its
    stylesheet (these pages' Content-Security-Policy refuses inline styles); downloaded, it is
    the API's page, one file with its stylesheet inside, to keep or send on."""
    name = "evidence-" + id.replace("/", "_").replace(":", "")
    disposition = "attachment" if download else "inline"
    if format == "pdf" or download:
        response = alerts_api.evidence(request, conn, viewer.principal, id, format=format)
        response.headers["Content-Disposition"] = f'{disposition}; filename="{name}.{format}"'
        return response
    pack = alerts_api.evidence_pack(request, conn, viewer.principal, id, format)
    page = render_html(pack, stylesheet_url=EVIDENCE_STYLESHEET)
    return Response(page, media_type="text/html", headers={"Cache-Control": "no-store"})


@router.get("/static/evidence/{name}")
def evidence_stylesheet(name: str) -> Response:
    if name != EVIDENCE_STYLESHEET.rsplit("/", 1)[1]:
        return Response(status_code=404)  # another release's stylesheet, or none
    return Response(
        STYLESHEET,
        media_type="text/css",
        headers={"Cache-Control": f"public, max-age={STYLESHEET_MAX_AGE_S}, immutable"},
    )


@router.get("/live")
async def live(
    request: Request,
    conn: Db,
    viewer: Annotated[Viewer, Screen()],
    last_event_id: Annotated[str | None, Header()] = None,
) -> Response:
    """The API's event stream for the logged-in person (their scopes, their patches)."""
    return await live_api.live(request, conn, viewer.principal, last_event_id)
