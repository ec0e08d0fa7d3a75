"""Users, API tokens, refresh tokens and the access log, in the database.

Secrets are stored only as hashes (argon2id for passwords and client secrets, SHA-256 for
refresh tokens); a revoked token or a disabled user is refused on the next request, however
long their access token still has to live.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from api.security import (
    ROLE_SCOPES,
    Principal,
    Role,
    grantable,
    hash_refresh_token,
    hash_secret,
    new_secret,
    verify_secret,
)
from common.errors import CivicError

__all__ = [
    "IdentityError",
    "NewToken",
    "add_user",
    "authenticate_client",
    "authenticate_user",
    "create_token",
    "disable_user",
    "issue_refresh_token",
    "iter_access_log",
    "list_tokens",
    "list_users",
    "log_access",
    "revoke_refresh_token",
    "revoke_token",
    "rotate_refresh_token",
    "set_password",
    "still_allowed",
]

Conn = psycopg.Connection[dict[str, Any]]

# A hash to check against when the name is unknown (see _secret_matches).
_DUMMY_HASH = hash_secret(secrets.token_urlsafe(16))


class IdentityError(CivicError):
    """A user or token operation that cannot be done (unknown name, duplicate, bad role)."""


def _role(text: str) -> Role:
    try:
        return Role(text)
    except ValueError:
        roles = ", ".join(r.value for r in Role)
        raise IdentityError(f"unknown role {text!r}; roles: {roles}") from None


def _patches(role: Role, patches: Sequence[str]) -> list[str]:
    cleaned = sorted({p.strip() for p in patches if p.strip()})
    if role is Role.HOUSING_OFFICER and not cleaned:
        raise IdentityError(
            "a housing officer needs at least one --patch (or --patch '*' for every patch)"
        )
    return cleaned


def add_user(conn: Conn, name: str, role: str, patches: Sequence[str], password: str) -> None:
    chosen = _role(role)
    if len(password) < 12:
        raise IdentityError("a password needs at least 12 characters")
    try:
        with conn.transaction():
            conn.execute(
                "INSERT INTO users (name, role, patches, password_hash) VALUES (%s, %s, %s, %s)",
                (name, chosen.value, _patches(chosen, patches), hash_secret(password)),
            )
    except psycopg.errors.UniqueViolation:
        raise IdentityError(f"user {name!r} exists already") from None
    except psycopg.errors.CheckViolation:
        raise IdentityError(
            f"user name {name!r} must be letters, digits, '.', '_', '@' or '-' (up to 64)"
        ) from None


def set_password(conn: Conn, name: str, password: str) -> None:
    """A new password; the user's refresh tokens stop working (log in again everywhere)."""
    if len(password) < 12:
        raise IdentityError("a password needs at least 12 characters")
    with conn.transaction():
        row = conn.execute(
            "UPDATE users SET password_hash = %s WHERE name = %s RETURNING id",
            (hash_secret(password), name),
        ).fetchone()
        if row is None:
            raise IdentityError(f"no user {name!r}")
        conn.execute(
            "UPDATE refresh_tokens SET revoked_at = now()"
            " WHERE user_id = %s AND revoked_at IS NULL",
            (row["id"],),
        )


def list_users(conn: Conn) -> list[dict[str, Any]]:
    return conn.execute(
        "SELECT name, role, patches, created_at, disabled_at FROM users ORDER BY name"
    ).fetchall()


def disable_user(conn: Conn, name: str) -> None:
    """Refuse the user from now on: their access tokens at the next request, their refresh
    tokens at once."""
    with conn.transaction():
        row = conn.execute(
            "UPDATE users SET disabled_at = coalesce(disabled_at, now()) WHERE name = %s"
            " RETURNING id",
            (name,),
        ).fetchone()
        if row is None:
            raise IdentityError(f"no user {name!r}")
        conn.execute(
            "UPDATE refresh_tokens SET revoked_at = now()"
            " WHERE user_id = %s AND revoked_at IS NULL",
            (row["id"],),
        )


def _secret_matches(secret: str, stored_hash: str | None) -> bool:
    """An argon2 check; with no such user or token it checks a dummy hash, so answering takes
    as long either way and response times do not tell which names exist."""
    matches = verify_secret(secret, stored_hash or _DUMMY_HASH)
    return stored_hash is not None and matches


def _user_principal(row: dict[str, Any]) -> Principal:
    role = Role(row["role"])
    return Principal("user", row["name"], role, ROLE_SCOPES[role], tuple(row["patches"]))


def authenticate_user(conn: Conn, name: str, password: str) -> Principal | None:
    row = conn.execute(
        "SELECT id, name, role, patches, password_hash FROM users"
        " WHERE name = %s AND disabled_at IS NULL",
        (name,),
    ).fetchone()
    if not _secret_matches(password, row["password_hash"] if row else None):
        return None
    assert row is not None
    return _user_principal(row)


# -- API tokens (OAuth 2.0 client credentials) -------------------------------------------------


@dataclass(frozen=True, slots=True)
class NewToken:
    """A token as created: the secret is here once and never stored."""

    client_id: str
    client_secret: str
    scopes: frozenset[str]


def create_token(
    conn: Conn,
    name: str,
    *,
    role: str,
    scopes: Sequence[str] = (),
    patches: Sequence[str] = (),
    created_by: str | None = None,
) -> NewToken:
    chosen = _role(role)
    try:
        granted = grantable(chosen, list(scopes))
    except ValueError as exc:
        raise IdentityError(str(exc)) from exc
    client_id = "civic_" + secrets.token_hex(8)
    secret = new_secret()
    try:
        with conn.transaction():
            conn.execute(
                """INSERT INTO api_tokens (id, name, secret_hash, role, scopes, patches,
                       created_by) VALUES (%s, %s, %s, %s, %s, %s, %s)""",
                (
                    client_id,
                    name,
                    hash_secret(secret),
                    chosen.value,
                    sorted(granted),
                    _patches(chosen, patches),
                    created_by,
                ),
            )
    except psycopg.errors.UniqueViolation:
        raise IdentityError(f"a token named {name!r} exists already") from None
    return NewToken(client_id, secret, granted)


def list_tokens(conn: Conn) -> list[dict[str, Any]]:
    return conn.execute(
        "SELECT id AS client_id, name, role, scopes, patches, created_by, created_at,"
        " last_used_at, revoked_at FROM api_tokens ORDER BY name"
    ).fetchall()


def revoke_token(conn: Conn, name_or_id: str) -> None:
    with conn.transaction():
        row = conn.execute(
            "UPDATE api_tokens SET revoked_at = coalesce(revoked_at, now())"
            " WHERE name = %s OR id = %s RETURNING id",
            (name_or_id, name_or_id),
        ).fetchone()
    if row is None:
        raise IdentityError(f"no token {name_or_id!r}")


def authenticate_client(conn: Conn, client_id: str, secret: str) -> Principal | None:
    row = conn.execute(
        "SELECT name, role, scopes, patches, secret_hash FROM api_tokens"
        " WHERE id = %s AND revoked_at IS NULL",
        (client_id,),
    ).fetchone()
    if not _secret_matches(secret, row["secret_hash"] if row else None):
        return None
    assert row is not None
    with conn.transaction():
        conn.execute("UPDATE api_tokens SET last_used_at = now() WHERE id = %s", (client_id,))
    role = Role(row["role"])
    scopes = frozenset(row["scopes"]) & ROLE_SCOPES[role]
    return Principal("token", row["name"], role, scopes, tuple(row["patches"]))


def still_allowed(conn: Conn, principal: Principal) -> bool:
    """The user is not disabled, or the token not revoked, since its access token was made."""
    if principal.kind == "user":
        sql = "SELECT 1 FROM users WHERE name = %s AND disabled_at IS NULL"
    else:
        sql = "SELECT 1 FROM api_tokens WHERE name = %s AND revoked_at IS NULL"
    return conn.execute(sql, (principal.name,)).fetchone() is not None


# -- refresh tokens ----------------------------------------------------------------------------


def issue_refresh_token(conn: Conn, user_name: str, ttl: timedelta) -> str:
    token = secrets.token_urlsafe(32)
    with conn.transaction():
        conn.execute(
            """INSERT INTO refresh_tokens (token_hash, user_id, expires_at)
               SELECT %s, id, now() + %s FROM users WHERE name = %s""",
            (hash_refresh_token(token), ttl, user_name),
        )
    return token


def rotate_refresh_token(conn: Conn, token: str, ttl: timedelta) -> tuple[Principal, str] | None:
    """Spend ``token`` (single use) and give a fresh one with the user; ``None`` when it is
    unknown, used, revoked or expired, or its user is disabled."""
    with conn.transaction():
        row = conn.execute(
            """UPDATE refresh_tokens t SET used_at = now()
               FROM users u
               WHERE t.token_hash = %s AND t.user_id = u.id AND t.used_at IS NULL
                 AND t.revoked_at IS NULL AND t.expires_at > now() AND u.disabled_at IS NULL
               RETURNING u.name, u.role, u.patches""",
            (hash_refresh_token(token),),
        ).fetchone()
    if row is None:
        return None
    return _user_principal(row), issue_refresh_token(conn, row["name"], ttl)


def revoke_refresh_token(conn: Conn, token: str) -> bool:
    with conn.transaction():
        row = conn.execute(
            "UPDATE refresh_tokens SET revoked_at = now() WHERE token_hash = %s"
            " AND revoked_at IS NULL RETURNING 1",
            (hash_refresh_token(token),),
        ).fetchone()
    return row is not None


# -- access log --------------------------------------------------------------------------------


def log_access(
    conn: Conn,
    principal: Principal,
    action: str,
    resource: str,
    *,
    subjects: Sequence[str] = (),
    status: int | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Append who did or was given what. Runs in the caller's transaction when there is one."""
    conn.execute(
        """INSERT INTO access_log (actor, role, action, resource, subjects, status, detail)
           VALUES (%s, %s, %s, %s, %s, %s, %s)""",
        (
            principal.actor,
            principal.role.value,
            action,
            resource,
            list(subjects),
            status,
            Jsonb(detail or {}),
        ),
    )


def iter_access_log(
    conn: Conn,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    actor: str | None = None,
    action: str | None = None,
) -> Iterator[dict[str, Any]]:
    # A server-side cursor (a year of log does not fit in memory) lives in a transaction.
    with conn.transaction(), conn.cursor(name="access_log") as cur:
        cur.execute(
            """SELECT id, at, actor, role, action, resource, subjects, status, detail
               FROM access_log
               WHERE (%(since)s::timestamptz IS NULL OR at >= %(since)s)
                 AND (%(until)s::timestamptz IS NULL OR at < %(until)s)
                 AND (%(actor)s::text IS NULL OR actor = %(actor)s)
                 AND (%(action)s::text IS NULL OR action = %(action)s)
               ORDER BY id""",
            {"since": since, "until": until, "actor": actor, "action": action},
        )
        yield from cur
