"""FIWARE Smart Data Models entities under the API's scopes: bins (``bins:read``) and the
latest reading of each home sensor the caller may read (``readings:read``; address, UPRN, void
flag and exact place only with ``homes:read``, logged). Patches are applied in SQL."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from api.deps import Caller, Db, audit
from api.problems import PROBLEM_RESPONSES
from api.security import Principal
from fiware.entities import render
from fiware.load import load_entities

router = APIRouter(prefix="/api/v1/fiware", tags=["open data"], responses=PROBLEM_RESPONSES)

LD_JSON = "application/ld+json"
_CONTENT: dict[int | str, dict[str, Any]] = {200: {"content": {LD_JSON: {}}}}
Form = Literal["keyvalues", "normalized"]


def _entities(entities: list[dict[str, Any]], form: Form) -> JSONResponse:
    return JSONResponse(render(entities, form), media_type=LD_JSON)


@router.get("/WasteContainer", response_class=JSONResponse, responses=_CONTENT)
def waste_containers(
    conn: Db,
    principal: Annotated[Principal, Caller("bins:read")],
    format: Form = "keyvalues",
) -> JSONResponse:
    """Every bin as a ``WasteContainer``: fill (0..1), temperature, status from its open alerts
    (burning, dropped, unknown when silent, else ok), last emptying seen in its readings, the
    fill forecast's deadline, threshold, place and model. Key-values or NGSI-LD normalized."""
    return _entities(load_entities(conn, "WasteContainer"), format)


@router.get("/WasteContainerModel", response_class=JSONResponse, responses=_CONTENT)
def waste_container_models(
    conn: Db,
    principal: Annotated[Principal, Caller("bins:read")],
    format: Form = "keyvalues",
) -> JSONResponse:
    """One ``WasteContainerModel`` per bin size: ``cargoVolume`` (l), ``maximumLoad`` (kg)."""
    return _entities(load_entities(conn, "WasteContainerModel"), format)


@router.get("/IndoorEnvironmentObserved", response_class=JSONResponse, responses=_CONTENT)
def indoor_environment(
    request: Request,
    conn: Db,
    principal: Annotated[Principal, Caller("readings:read")],
    format: Form = "keyvalues",
) -> JSONResponse:
    """The latest reading of each home sensor the caller may read. Address, UPRN, void flag
    and exact place only for callers who may see homes (that read is logged); others get the
    place to 0.1 degree."""
    if "home" not in principal.subject_kinds:
        return _entities([], format)
    personal = principal.sees_addresses
    entities = load_entities(
        conn, "IndoorEnvironmentObserved", personal=personal, patches=principal.patch_filter
    )
    if personal:
        uprns = sorted({e["uprn"] for e in entities if e.get("uprn")})
        if uprns:
            audit(conn, request, principal, "read_personal", uprns)
    return _entities(entities, format)
