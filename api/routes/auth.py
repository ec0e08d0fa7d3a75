"""``/api/v1/auth``: log in (OAuth 2.0 password grant), client credentials, refresh, revoke."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Form, Request
from pydantic import BaseModel

from api.deps import Caller, Db, audit
from api.identity import (
    authenticate_client,
    authenticate_user,
    issue_refresh_token,
    log_access,
    revoke_refresh_token,
    rotate_refresh_token,
)
from api.problems import PROBLEM_RESPONSES, Problem
from api.security import Principal, issue_access_token

router = APIRouter(prefix="/api/v1/auth", tags=["auth"], responses=PROBLEM_RESPONSES)


class TokenResponse(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int
    """Seconds the access token is valid."""
    refresh_token: str | None = None
    """For people (password grant): exchange it for a new pair before it expires."""
    scope: str


class Me(BaseModel):
    name: str
    kind: Literal["user", "token"]
    role: str
    scopes: list[str]
    patches: list[str]


def _tokens(request: Request, principal: Principal, refresh: str | None) -> TokenResponse:
    settings = request.app.state.settings
    ttl = timedelta(seconds=settings.access_token_ttl_s)
    return TokenResponse(
        access_token=issue_access_token(principal, secret=request.app.state.secret, ttl=ttl),
        expires_in=settings.access_token_ttl_s,
        refresh_token=refresh,
        scope=" ".join(sorted(principal.scopes)),
    )


@router.post("/token")
def token(
    request: Request,
    conn: Db,
    grant_type: Annotated[Literal["password", "client_credentials", "refresh_token"], Form()],
    username: Annotated[str | None, Form()] = None,
    password: Annotated[str | None, Form()] = None,
    client_id: Annotated[str | None, Form()] = None,
    client_secret: Annotated[str | None, Form()] = None,
    refresh_token: Annotated[str | None, Form()] = None,
) -> TokenResponse:
    """OAuth 2.0 token endpoint (form-encoded, RFC 6749): people log in with ``password``,
    scripts with ``client_credentials`` (a token from ``civic tokens create``), and both get a
    short-lived bearer token. ``refresh_token`` spends a refresh token for a new pair."""
    limiter = request.app.state.login_limiter
    refresh_ttl = timedelta(seconds=request.app.state.settings.refresh_token_ttl_s)
    if grant_type == "password":
        if not username or not password:
            raise Problem(400, "the password grant needs username and password")
        limiter.check_now(conn, f"login:{username}")
        principal = authenticate_user(conn, username, password)
        if principal is None:
            raise Problem(401, "wrong user name or password, or the user is disabled")
        log_access(conn, principal, "login", "POST /api/v1/auth/token", status=200)
        return _tokens(request, principal, issue_refresh_token(conn, principal.name, refresh_ttl))
    if grant_type == "client_credentials":
        if not client_id or not client_secret:
            raise Problem(400, "the client_credentials grant needs client_id and client_secret")
        limiter.check_now(conn, f"client:{client_id}")
        principal = authenticate_client(conn, client_id, client_secret)
        if principal is None:
            raise Problem(401, "unknown or revoked client, or wrong secret")
        return _tokens(request, principal, None)
    if not refresh_token:
        raise Problem(400, "the refresh_token grant needs refresh_token")
    rotated = rotate_refresh_token(conn, refresh_token, refresh_ttl)
    if rotated is None:
        raise Problem(401, "the refresh token is unknown, used, revoked or expired: log in again")
    return _tokens(request, *rotated)


@router.post("/revoke", status_code=204)
def revoke(
    request: Request,
    conn: Db,
    principal: Annotated[Principal, Caller()],
    token: Annotated[str, Form()],
) -> None:
    """Log out: the refresh token can no longer be used (RFC 7009: unknown tokens are fine)."""
    if revoke_refresh_token(conn, token):
        audit(conn, request, principal, "logout", [])


@router.get("/me")
def me(principal: Annotated[Principal, Caller()]) -> Me:
    """Who the token belongs to, with its role, scopes and patches."""
    return Me(
        name=principal.name,
        kind="user" if principal.kind == "user" else "token",
        role=principal.role.value,
        scopes=sorted(principal.scopes),
        patches=list(principal.patches),
    )
