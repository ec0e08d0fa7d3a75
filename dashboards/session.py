"""Logging in to the screens: the API's own tokens, kept in cookies the page's script cannot read.

A person logs in through the API's password grant (:func:`api.routes.auth.token`: the same
rate limit, access log and refresh token as any API client). The access token goes in an
``httpOnly``, ``SameSite=Strict`` cookie (``Secure`` over https) and is checked exactly as a
bearer token is (:func:`api.deps.current_principal`: signature, expiry, disabled user, scope).
When it has expired the refresh token (a second such cookie) is spent for a new pair, once;
requests racing with that refresh get the same new pair.

The API itself reads only the ``Authorization`` header, never these cookies, so a page on
another site cannot make a browser call the API with them. Form posts to the screens carry a
CSRF token that must match a third cookie (double submit); ``SameSite=Strict`` already keeps
the cookies off cross-site requests, the token is the second lock.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any

from fastapi import Depends, Request, Response
from fastapi.security import SecurityScopes
from starlette.concurrency import run_in_threadpool

from api.deps import Db, current_principal
from api.identity import rotate_refresh_token
from api.problems import Problem
from api.security import Principal, issue_access_token

__all__ = [
    "ACCESS_COOKIE",
    "CSRF_COOKIE",
    "REFRESH_COOKIE",
    "CsrfError",
    "LoginRequiredError",
    "Viewer",
    "check_csrf",
    "clear_session",
    "csrf_token",
    "screen_viewer",
    "set_session",
]

ACCESS_COOKIE = "civic_access"
REFRESH_COOKIE = "civic_refresh"
CSRF_COOKIE = "civic_csrf"
PENDING_COOKIES = "civic.set_cookies"  # ASGI scope key: cookies a dependency wants sent
RACE_WINDOW_S = 30.0  # a page, its live stream and a poll may all refresh at once


class LoginRequiredError(Exception):
    """No usable session: the screen sends the browser to the login form."""


class CsrfError(Exception):
    """A form post without the session's CSRF token."""


@dataclass(frozen=True, slots=True)
class Viewer:
    """The person looking at a screen: their principal (the API's) and the form token."""

    principal: Principal
    csrf: str

    def can(self, scope: str) -> bool:
        return self.principal.allows(scope)


def _cookie_args(request: Request) -> dict[str, Any]:
    return {
        "httponly": True,
        "samesite": "strict",
        "secure": request.url.scheme == "https",
        "path": "/",
    }


def _pending(request: Request) -> list[tuple[str, str, int | None]]:
    pending: list[tuple[str, str, int | None]] = request.scope.setdefault(PENDING_COOKIES, [])
    return pending


def set_session(
    request: Request, response: Response, access: str, access_ttl_s: int, refresh: str | None
) -> None:
    """Put a token pair in the response's cookies."""
    args = _cookie_args(request)
    response.set_cookie(ACCESS_COOKIE, access, max_age=access_ttl_s, **args)
    if refresh is not None:
        refresh_ttl = request.app.state.settings.refresh_token_ttl_s
        response.set_cookie(REFRESH_COOKIE, refresh, max_age=refresh_ttl, **args)


def clear_session(request: Request, response: Response) -> None:
    args = _cookie_args(request)
    for name in (ACCESS_COOKIE, REFRESH_COOKIE):
        response.delete_cookie(name, **args)


def csrf_token(request: Request) -> str:
    """This browser's CSRF token; a new one is set when it has none."""
    token = request.cookies.get(CSRF_COOKIE)
    if token and len(token) >= 32:
        return token
    token = secrets.token_urlsafe(32)
    _pending(request).append((CSRF_COOKIE, token, None))
    request.cookies[CSRF_COOKIE] = token  # the same token for the rest of this request
    return token


def check_csrf(request: Request, submitted: str | None) -> None:
    expected = request.cookies.get(CSRF_COOKIE)
    if not expected or not submitted or not hmac.compare_digest(expected, submitted):
        raise CsrfError


class _Refreshes:
    """Recently spent refresh tokens and the pair each became, for requests racing it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._recent: dict[str, tuple[float, Principal, str]] = {}

    def spend(self, conn: Db, refresh: str, ttl: timedelta) -> tuple[Principal, str] | None:
        with self._lock:
            now = time.monotonic()
            self._recent = {k: v for k, v in self._recent.items() if now - v[0] < RACE_WINDOW_S}
            if refresh in self._recent:
                _, principal, new = self._recent[refresh]
                return principal, new
            rotated = rotate_refresh_token(conn, refresh, ttl)
            if rotated is not None:
                self._recent[refresh] = (now, *rotated)
            return rotated


_REFRESHES = _Refreshes()


def _refresh(request: Request, conn: Db) -> str:
    """A new access token from the refresh cookie (queued as cookies for the response)."""
    refresh = request.cookies.get(REFRESH_COOKIE)
    if not refresh:
        raise LoginRequiredError
    settings = request.app.state.settings
    rotated = _REFRESHES.spend(conn, refresh, timedelta(seconds=settings.refresh_token_ttl_s))
    if rotated is None:
        raise LoginRequiredError
    principal, new_refresh = rotated
    ttl = settings.access_token_ttl_s
    access = issue_access_token(
        principal, secret=request.app.state.secret, ttl=timedelta(seconds=ttl)
    )
    pending = _pending(request)
    pending.append((ACCESS_COOKIE, access, ttl))
    pending.append((REFRESH_COOKIE, new_refresh, settings.refresh_token_ttl_s))
    return access


async def _principal(scopes: SecurityScopes, request: Request, token: str) -> Principal | None:
    try:
        return await current_principal(scopes, request, token)
    except Problem as exc:
        if exc.status_code == 401:
            return None  # expired, forged, or the user disabled: try the refresh token
        raise  # 403 (no scope for this screen) and 429 are answers, not a reason to log in


async def screen_viewer(security_scopes: SecurityScopes, request: Request, conn: Db) -> Viewer:
    """The logged-in person with the scopes a screen needs: :class:`LoginRequiredError` without a
    session, the API's 403 without the scope."""
    token = request.cookies.get(ACCESS_COOKIE)
    principal = await _principal(security_scopes, request, token) if token else None
    if principal is None:
        refreshed = await run_in_threadpool(_refresh, request, conn)  # spends it in the database
        principal = await _principal(security_scopes, request, refreshed)
        if principal is None:
            raise LoginRequiredError
    return Viewer(principal, csrf_token(request))


def Screen(*scopes: str) -> Any:  # noqa: N802 - reads as a type in signatures
    """``viewer: Annotated[Viewer, Screen("alerts:read")]``: a screen's one access rule."""
    from fastapi import Security

    return Security(screen_viewer, scopes=list(scopes))


AnyViewer = Annotated[Viewer, Depends(screen_viewer)]
