"""Alerts: an officer's or a crew's queue, one alert with its timeline, the lifecycle actions
and Awaab's Law steps, and the evidence pack. The same functions as ``civic alerts``.

Housing officers see home alerts in their patches; waste crews bin alerts; an alert outside
the caller's reach is a 404, never a 403 (its existence is not disclosed).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, Field

from alerts.actions import acknowledge_alert, resolve_alert
from alerts.awaab import Milestone
from alerts.errors import LifecycleError
from alerts.evidence import EvidenceNotFoundError, build_evidence, render_html, to_json
from alerts.queries import AlertFilter, alert_timeline, find_alert, list_alerts
from alerts.statutory import record_milestone
from api.deps import Caller, Db, audit
from api.problems import PROBLEM_RESPONSES, Problem, query_time
from api.rows import rows_response
from api.security import Principal

router = APIRouter(prefix="/api/v1/alerts", tags=["alerts"], responses=PROBLEM_RESPONSES)

MAX_PAGE = 1000
MAX_EVIDENCE_WINDOW = timedelta(days=31)


class Alert(BaseModel):
    id: str
    alert_type: str
    hazard: str
    state: Literal["open", "acknowledged", "resolved"]
    severity: str
    subject_kind: Literal["home", "bin"]
    subject_id: str
    uprn: str | None
    patch: str | None
    opened_at: datetime
    since: datetime
    reason: str
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    resolved_at: datetime | None = None
    resolved_by: str | None = None
    resolution_note: str | None = None
    statutory_clock_started_at: datetime | None = None
    investigation_ended_at: datetime | None = None
    next_due_at: datetime | None = None
    """The earliest Awaab's Law due date whose step is not recorded."""
    deadlines: list[dict[str, Any]] = []


ALERT_COLUMNS = tuple(Alert.model_fields)  # the list reads these only (each a column of alerts)


class TimelineEntry(BaseModel):
    at: datetime
    actor: str
    action: str
    severity: str | None
    detail: dict[str, Any]


class AlertDetail(Alert):
    evidence: dict[str, Any] = {}
    timeline: list[TimelineEntry] = []


class Note(BaseModel):
    note: str | None = Field(None, max_length=4000)


class Resolution(BaseModel):
    note: str = Field(min_length=1, max_length=4000, description="what was done")
    force: bool = Field(False, description="resolve although the condition is still on")


class Step(BaseModel):
    at: datetime = Field(description="when it was done (RFC 3339 with offset)")
    note: str | None = Field(None, max_length=4000)


class MilestoneStep(Step):
    step: Milestone


def _scope(principal: Principal) -> dict[str, Any]:
    return {"patches": principal.patch_filter, "subject_kinds": principal.subject_kinds}


def _load(conn: Db, principal: Principal, alert_id: str) -> dict[str, Any]:
    row = find_alert(conn, alert_id, **_scope(principal))
    if row is None:
        raise Problem(404, f"no alert {alert_id!r} you may see")
    return row


def _log_homes(
    conn: Db, request: Request, principal: Principal, rows: list[dict[str, Any]]
) -> None:
    uprns = [r["uprn"] for r in rows if r.get("uprn")]
    if uprns:
        audit(conn, request, principal, "read_personal", uprns)


def alert_rows(
    request: Request,
    conn: Db,
    principal: Annotated[Principal, Caller("alerts:read")],
    type: Annotated[str | None, Query(description="alert type, e.g. damp_mould")] = None,
    state: Literal["open", "acknowledged", "resolved", "active"] | None = "active",
    patch: str | None = None,
    subject: Annotated[str | None, Query(description="a UPRN or a bin's device id")] = None,
    overdue: Annotated[bool, Query(description="only Awaab's Law steps past due")] = False,
    due_before: Annotated[str | None, Query(description="a statutory step due before")] = None,
    since: Annotated[str | None, Query(description="opened at or after")] = None,
    order: Annotated[Literal["due", "newest"], Query(description="due: overdue first")] = "due",
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 200,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[dict[str, Any]]:
    """The rows of :func:`list_page` (the access log written for the homes among them)."""
    f = AlertFilter(
        alert_type=type,
        state=state,
        subject=subject,
        patch=patch,
        since=query_time(since, "since"),
        overdue_at=datetime.now(UTC) if overdue else None,
        due_before=query_time(due_before, "due_before"),
        order=order,
        limit=limit,
        offset=offset,
        **_scope(principal),
    )
    rows = list_alerts(conn, f, columns=ALERT_COLUMNS)
    _log_homes(conn, request, principal, rows)
    return rows


@router.get("", response_model=list[Alert])
async def list_page(rows: Annotated[list[dict[str, Any]], Depends(alert_rows)]) -> Response:
    """Alerts the caller may see. ``order=due`` (default) is an officer's queue: the earliest
    statutory due date first, so overdue work leads. (On the event loop: the rows are read in
    :func:`alert_rows`, and orjson writes a page of them quicker than a hop to a worker thread.)"""
    return rows_response(rows, Alert)


def list_(request: Request, conn: Db, principal: Principal, **filters: Any) -> list[Alert]:
    """:func:`list_page` for the screens, as models (same scoping and access log)."""
    return [Alert(**r) for r in alert_rows(request, conn, principal, **filters)]


def _after_action(
    conn: Db, request: Request, principal: Principal, alert_id: str, action: str, **detail: Any
) -> AlertDetail:
    audit(conn, request, principal, action, [alert_id], **detail)
    return get(request, conn, principal, alert_id)


@router.post("/{alert_id:path}/acknowledge")
def acknowledge(
    request: Request,
    conn: Db,
    principal: Annotated[Principal, Caller("alerts:write")],
    alert_id: str,
    body: Note,
) -> AlertDetail:
    """Someone is on it. 409 when the alert is resolved."""
    _load(conn, principal, alert_id)
    try:
        acknowledge_alert(conn, alert_id, by=principal.actor, at=datetime.now(UTC), note=body.note)
    except LifecycleError as exc:
        raise Problem(409, str(exc)) from exc
    return _after_action(conn, request, principal, alert_id, "write", change="acknowledged")


@router.post("/{alert_id:path}/resolve")
def resolve(
    request: Request,
    conn: Db,
    principal: Annotated[Principal, Caller("alerts:write")],
    alert_id: str,
    body: Resolution,
) -> AlertDetail:
    """Done, with a note of what was done. 409 when already resolved, or when the condition is
    still on and ``force`` is not set."""
    _load(conn, principal, alert_id)
    try:
        resolve_alert(
            conn,
            alert_id,
            by=principal.actor,
            at=datetime.now(UTC),
            note=body.note,
            while_condition_on=body.force,
        )
    except LifecycleError as exc:
        raise Problem(409, str(exc)) from exc
    return _after_action(conn, request, principal, alert_id, "write", change="resolved")


def _record(
    request: Request, conn: Db, principal: Principal, alert_id: str, step: Milestone, body: Step
) -> AlertDetail:
    _load(conn, principal, alert_id)
    if body.at.tzinfo is None:
        raise Problem(422, "at needs a UTC offset, e.g. 2026-11-22T10:00:00Z")
    try:
        record_milestone(
            conn,
            alert_id,
            step,
            by=principal.actor,
            at=body.at,
            note=body.note,
            now=datetime.now(UTC),
        )
    except LifecycleError as exc:
        raise Problem(409, str(exc)) from exc
    return _after_action(conn, request, principal, alert_id, "write", step=step.value)


@router.post("/{alert_id:path}/investigated")
def investigated(
    request: Request,
    conn: Db,
    principal: Annotated[Principal, Caller("alerts:write")],
    alert_id: str,
    body: Step,
) -> AlertDetail:
    """The Awaab's Law investigation ended at ``at``: the written summary and safety work
    fall due from that day."""
    return _record(request, conn, principal, alert_id, Milestone.INVESTIGATE, body)


@router.post("/{alert_id:path}/milestones")
def milestone(
    request: Request,
    conn: Db,
    principal: Annotated[Principal, Caller("alerts:write")],
    alert_id: str,
    body: MilestoneStep,
) -> AlertDetail:
    """Another Awaab's Law step done (written summary, safety work, ...)."""
    return _record(request, conn, principal, alert_id, body.step, body)


@router.get(
    "/{alert_id:path}/evidence",
    response_class=Response,
    responses={200: {"content": {"application/json": {}, "text/html": {}, "application/pdf": {}}}},
)
def evidence(
    request: Request,
    conn: Db,
    principal: Annotated[Principal, Caller("evidence:read")],
    alert_id: str,
    format: Literal["json", "html", "pdf"] = "json",
    before_h: Annotated[float, Query(gt=0, le=MAX_EVIDENCE_WINDOW.total_seconds() / 3600)] = 48,
    after_h: Annotated[float, Query(gt=0, le=MAX_EVIDENCE_WINDOW.total_seconds() / 3600)] = 24,
) -> Response:
    """The case file of an alert: readings around it, the rule's reasoning, the timeline and
    the statutory dates (personal data: logged). The HTML page stands alone (its stylesheet
    inlined): a file to keep or send on."""
    pack = evidence_pack(request, conn, principal, alert_id, format, before_h, after_h)
    if format == "pdf":
        from alerts.evidence_pdf import render_pdf

        return Response(render_pdf(pack), media_type="application/pdf")
    if format == "html":
        return Response(render_html(pack), media_type="text/html")
    return Response(to_json(pack), media_type="application/json")


def evidence_pack(
    request: Request,
    conn: Db,
    principal: Principal,
    alert_id: str,
    format: str,
    before_h: float = 48,
    after_h: float = 24,
) -> dict[str, Any]:
    """The pack the evidence endpoint renders, read and logged as it reads it: for a screen
    that renders the same pack its own way."""
    _load(conn, principal, alert_id)
    try:
        pack = build_evidence(
            conn, alert_id, before=timedelta(hours=before_h), after=timedelta(hours=after_h)
        )
    except EvidenceNotFoundError as exc:
        raise Problem(404, str(exc)) from exc
    audit(conn, request, principal, "read_personal", [alert_id], evidence=format)
    return pack


# Last: an alert id has slashes (uprn/type/time), so this path would also match the
# action and evidence paths above if it came first.
@router.get("/{alert_id:path}")
def get(
    request: Request,
    conn: Db,
    principal: Annotated[Principal, Caller("alerts:read")],
    alert_id: str,
) -> AlertDetail:
    """One alert with the evidence its rule gave and its timeline (who did what, when)."""
    row = _load(conn, principal, alert_id)
    _log_homes(conn, request, principal, [row])
    timeline = [TimelineEntry(**t) for t in alert_timeline(conn, alert_id)]
    return AlertDetail(**row, timeline=timeline)
