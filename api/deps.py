"""What every endpoint asks for: a database connection, and the caller with their scopes.

``Caller(scope)`` is the one way an endpoint names its rule: no credentials → 401, a revoked
token or disabled user → 401, a missing scope → 403, over the rate limit → 429. A caller's
patches are applied in each query (``Principal.patch_filter``), never after the fact.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from typing import Annotated, Any

import psycopg
from fastapi import Depends, Request, Security
from fastapi.security import OAuth2PasswordBearer, SecurityScopes
from psycopg_pool import ConnectionPool

from api.identity import log_access, still_allowed
from api.problems import Problem
from api.security import SCOPES, Principal, TokenError, decode_access_token

__all__ = ["AllowedCache", "Caller", "Db", "audit", "current_principal"]

TOKEN_URL = "/api/v1/auth/token"
oauth2_scheme = OAuth2PasswordBearer(tokenUrl=TOKEN_URL, scopes=SCOPES, auto_error=False)


def _db(request: Request) -> Iterator[psycopg.Connection[dict[str, Any]]]:
    pool: ConnectionPool[psycopg.Connection[dict[str, Any]]] = request.app.state.pool
    try:
        with pool.connection(timeout=10) as conn:
            yield conn
    except psycopg.OperationalError as exc:
        raise Problem(503, "the database is unavailable") from exc


# Ends with the endpoint function, before the response is sent: a streamed response (the live
# stream, an extract) never holds a pooled connection while the client reads.
Db = Annotated[psycopg.Connection[dict[str, Any]], Depends(_db, scope="function")]


class AllowedCache:
    """Whether a user is still enabled (or a token unrevoked), asked of the database at most
    once per ``ttl_s`` per caller: a disabled user is refused within that many seconds."""

    def __init__(self, ttl_s: float) -> None:
        self._ttl_s = ttl_s
        self._checked: dict[str, float] = {}

    def check(self, principal: Principal, ask: Callable[[], bool]) -> bool:
        now = time.monotonic()
        if now - self._checked.get(principal.actor, -math.inf) < self._ttl_s:
            return True
        if not ask():
            self._checked.pop(principal.actor, None)
            return False
        self._checked[principal.actor] = now
        return True


_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def current_principal(
    security_scopes: SecurityScopes,
    request: Request,
    conn: Db,
    token: Annotated[str | None, Depends(oauth2_scheme)],
) -> Principal:
    if token is None:
        raise Problem(401, "log in first: send 'Authorization: Bearer <access token>'", _CHALLENGE)
    try:
        principal = decode_access_token(token, secret=request.app.state.secret)
    except TokenError as exc:
        raise Problem(401, str(exc), _CHALLENGE) from exc
    request.app.state.rate_limiter.check(conn, principal.actor)
    if not request.app.state.allowed.check(principal, lambda: still_allowed(conn, principal)):
        raise Problem(401, "this user is disabled or this token revoked", _CHALLENGE)
    missing = [s for s in security_scopes.scopes if not principal.allows(s)]
    if missing:
        raise Problem(
            403,
            f"role {principal.role.value} has no scope {', '.join(missing)} for this request",
        )
    request.state.principal = principal
    return principal


def Caller(*scopes: str) -> Any:  # noqa: N802 - reads as a type in signatures
    """``principal: Annotated[Principal, Caller("homes:read")]``."""
    return Security(current_principal, scopes=list(scopes))


def audit(
    conn: psycopg.Connection[dict[str, Any]],
    request: Request,
    principal: Principal,
    action: str,
    subjects: list[str],
    **detail: Any,
) -> None:
    """Write the access log row for this request: a write, a command, or personal data given."""
    resource = f"{request.method} {request.url.path}"
    if request.url.query:
        resource += f"?{request.url.query}"
    log_access(conn, principal, action, resource, subjects=subjects, detail=detail or None)
