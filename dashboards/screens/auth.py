"""Log in, log out, and the front door that sends each role to its screen."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.security import SecurityScopes

from api.deps import Db
from api.identity import revoke_refresh_token
from api.problems import Problem
from api.routes.auth import token as api_token
from dashboards.flash import local_path
from dashboards.render import render
from dashboards.session import (
    REFRESH_COOKIE,
    LoginRequiredError,
    Viewer,
    check_csrf,
    clear_session,
    csrf_token,
    screen_viewer,
    set_session,
)

router = APIRouter(include_in_schema=False)


def home_screen(viewer: Viewer) -> str:
    """Where a role starts its day."""
    if viewer.can("homes:read") and viewer.can("alerts:read"):
        return "/queue"
    if viewer.can("routes:read"):
        return "/waste"
    if viewer.can("ops:read"):
        return "/engineer"
    return "/docs"


def _local(next_url: str | None) -> str:
    """Only a path on this site (never ``//host`` or a scheme): no open redirect."""
    return local_path(next_url, "/")


@router.get("/")
async def front(request: Request, conn: Db) -> Response:
    try:
        viewer = await screen_viewer(SecurityScopes([]), request, conn)
    except LoginRequiredError:
        return render(request, "landing.html", {})
    return RedirectResponse(home_screen(viewer), status_code=303)


@router.get("/login")
def login_form(request: Request, next: str | None = None) -> Response:
    return render(request, "login.html", {"csrf": csrf_token(request), "next": _local(next)})


@router.post("/login")
def login(
    request: Request,
    conn: Db,
    username: Annotated[str, Form(max_length=200)],
    password: Annotated[str, Form(max_length=1000)],
    csrf: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/",
) -> Response:
    check_csrf(request, csrf)
    try:
        tokens = api_token(
            request, conn, grant_type="password", username=username, password=password
        )
    except Problem as exc:
        message = (
            "Wrong user name or password, or the account is disabled."
            if exc.status_code == 401
            else str(exc.detail)
        )
        context = {
            "csrf": csrf_token(request),
            "next": _local(next),
            "error": message,
            "username": username,
        }
        return render(request, "login.html", context, status_code=exc.status_code)
    response = RedirectResponse(_local(next), status_code=303)
    set_session(request, response, tokens.access_token, tokens.expires_in, tokens.refresh_token)
    return response


@router.post("/logout")
def logout(request: Request, conn: Db, csrf: Annotated[str, Form()] = "") -> Response:
    check_csrf(request, csrf)
    refresh = request.cookies.get(REFRESH_COOKIE)
    if refresh:
        revoke_refresh_token(conn, refresh)
    response = RedirectResponse("/login", status_code=303)
    clear_session(request, response)
    return response
