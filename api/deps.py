"""What every endpoint asks for: a database connection, and the caller with their scopes.

``Caller(scope)`` is the one way an endpoint names its rule: no credentials → 401, a revoked
token or disabled user → 401, a missing scope → 403, over the rate limit → 429. A caller's
patches are applied in each query (``Principal.patch_filter``), never after the fact.
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

import psycopg
from fastapi import Depends, Request, Security
from fastapi.security import OAuth2PasswordBearer, SecurityScopes
from psycopg.pq import TransactionStatus
from psycopg_pool import ConnectionPool, PoolTimeout
from starlette.concurrency import run_in_threadpool

from api.identity import log_access, still_allowed
from api.problems import Problem
from api.security import SCOPES, Principal, TokenError, VerifiedTokens

__all__ = ["AllowedCache", "Caller", "Db", "audit", "current_principal"]

Conn = psycopg.Connection[dict[str, Any]]

TOKEN_URL = "/api/v1/auth/token"
oauth2_scheme = OAuth2PasswordBearer(tokenUrl=TOKEN_URL, scopes=SCOPES, auto_error=False)


CHECKOUT_WAIT_S = 10.0  # a request waits this long for a connection before a 503
_READY_S = 0.0005  # "is one on the shelf?": the event loop waits no longer than this


async def _db(request: Request) -> AsyncIterator[Conn]:
    """A pooled connection for the request. Taken on the event loop when one is idle (no
    thread needed: it is a list pop), from a worker thread when the request must wait."""
    pool: ConnectionPool[Conn] = request.app.state.pool
    try:
        conn = _idle_connection(pool)
        if conn is None:
            conn = await run_in_threadpool(pool.getconn, CHECKOUT_WAIT_S)
    except psycopg.OperationalError as exc:
        raise Problem(503, "the database is unavailable") from exc
    try:
        yield conn
    except psycopg.OperationalError as exc:
        raise Problem(503, "the database is unavailable") from exc
    finally:
        if conn.pgconn.transaction_status == TransactionStatus.IDLE:
            pool.putconn(conn)  # back on the shelf: no I/O
        else:  # a transaction left open is rolled back, a broken connection closed: I/O
            await run_in_threadpool(pool.putconn, conn)


def _idle_connection(pool: ConnectionPool[Conn]) -> Conn | None:
    try:
        return pool.getconn(timeout=_READY_S)
    except PoolTimeout:
        return None


# Ends with the endpoint function, before the response is sent: a streamed response (the live
# stream, an extract) never holds a pooled connection while the client reads.
Db = Annotated[Conn, Depends(_db, scope="function")]


class AllowedCache:
    """Whether a user is still enabled (or a token unrevoked), asked of the database at most
    once per ``ttl_s`` per caller: a disabled user is refused within that many seconds."""

    def __init__(self, ttl_s: float) -> None:
        self._ttl_s = ttl_s
        self._checked: dict[str, float] = {}

    def fresh(self, principal: Principal) -> bool:
        """Checked within the period: allowed without asking."""
        return time.monotonic() - self._checked.get(principal.actor, -math.inf) < self._ttl_s

    def check(self, principal: Principal, ask: Callable[[], bool]) -> bool:
        now = time.monotonic()
        if self.fresh(principal):
            return True
        if not ask():
            self._checked.pop(principal.actor, None)
            return False
        self._checked[principal.actor] = now
        return True


_CHALLENGE = {"WWW-Authenticate": "Bearer"}


async def current_principal(
    security_scopes: SecurityScopes,
    request: Request,
    token: Annotated[str | None, Depends(oauth2_scheme)],
) -> Principal:
    """On the event loop: the token is checked in memory, and the database is asked (from a
    worker thread) only when the caller's standing or rate allowance is due for renewal."""
    if token is None:
        raise Problem(401, "log in first: send 'Authorization: Bearer <access token>'", _CHALLENGE)
    state = request.app.state
    tokens: VerifiedTokens = state.tokens
    try:
        principal = tokens.principal(token)
    except TokenError as exc:
        raise Problem(401, str(exc), _CHALLENGE) from exc
    try:
        await state.rate_limiter.check(principal.actor)
        allowed: AllowedCache = state.allowed
        if not allowed.fresh(principal) and not await run_in_threadpool(
            allowed.check, principal, lambda: _still_allowed(state.pool, principal)
        ):
            raise Problem(401, "this user is disabled or this token revoked", _CHALLENGE)
    except psycopg.OperationalError as exc:  # as for the request's own connection
        raise Problem(503, "the database is unavailable") from exc
    missing = [s for s in security_scopes.scopes if not principal.allows(s)]
    if missing:
        raise Problem(
            403,
            f"role {principal.role.value} has no scope {', '.join(missing)} for this request",
        )
    request.state.principal = principal
    return principal


def _still_allowed(pool: ConnectionPool[Conn], principal: Principal) -> bool:
    with pool.connection(timeout=CHECKOUT_WAIT_S) as conn:
        return still_allowed(conn, principal)


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
