"""Errors as RFC 9457 ``application/problem+json``, for every 4xx and 5xx the API sends."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from http import HTTPStatus
from typing import Any

import psycopg
from fastapi import FastAPI, HTTPException, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from common.timeparse import parse_when

__all__ = [
    "PROBLEM_RESPONSES",
    "Problem",
    "ProblemDetail",
    "install_problem_handlers",
    "query_time",
]

log = logging.getLogger(__name__)

MEDIA_TYPE = "application/problem+json"


class ProblemDetail(BaseModel):
    """RFC 9457 problem details."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    errors: list[dict[str, Any]] | None = None
    """For 422: each invalid parameter or field, where it is and what is wrong."""


class Problem(HTTPException):
    """An HTTP error with a sentence the caller can act on."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(status, detail, headers)


def query_time(text: str | None, name: str) -> datetime | None:
    """A time query parameter (RFC 3339, a date, or an age such as ``7d``), or a 400."""
    if text is None:
        return None
    try:
        return parse_when(text)
    except ValueError as exc:
        raise Problem(400, f"{name}: {exc}") from exc


def _problem_schema(description: str) -> dict[str, Any]:
    return {"description": description, "model": ProblemDetail, "content": {MEDIA_TYPE: {}}}


PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _problem_schema("Bad request"),
    401: _problem_schema("No credentials, or credentials not valid"),
    403: _problem_schema("The caller's role or token lacks the scope"),
    404: _problem_schema("Not found, or not in the caller's patches"),
    422: _problem_schema("A parameter or field is not valid"),
    429: _problem_schema("Too many requests: wait Retry-After seconds"),
}


def _response(
    request: Request,
    status: int,
    detail: str | None,
    headers: Mapping[str, str] | None = None,
    errors: list[dict[str, Any]] | None = None,
) -> JSONResponse:
    body = ProblemDetail(
        title=HTTPStatus(status).phrase,
        status=status,
        detail=detail,
        instance=request.url.path,
        errors=errors,
    )
    return JSONResponse(
        jsonable_encoder(body, exclude_none=True),
        status_code=status,
        headers=headers,
        media_type=MEDIA_TYPE,
    )


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def http_problem(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else None
        return _response(request, exc.status_code, detail, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_problem(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": e.get("type")}
            for e in exc.errors()
        ]
        first = errors[0] if errors else None
        where = ".".join(str(p) for p in first["loc"]) if first else "request"
        detail = f"{where}: {first['msg']}" if first else "the request is not valid"
        return _response(request, 422, detail, errors=errors)

    @app.exception_handler(psycopg.DataError)
    async def data_problem(request: Request, exc: psycopg.DataError) -> JSONResponse:
        # SQLSTATE class 22: a value from the request the database cannot take (a NUL
        # character, a number out of range). The caller's input, so a 400, not a 500.
        log.info("data error in %s %s: %s", request.method, request.url.path, exc)
        return _response(request, 400, f"a value in the request cannot be used: {exc}")

    @app.exception_handler(Exception)
    async def server_problem(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error in %s %s", request.method, request.url.path)
        return _response(request, 500, "an internal error; it has been logged")
