"""Who is calling and what they may do: roles, scopes, passwords and access tokens.

Pure functions over values, apart from the clock: nothing here touches the database
(:mod:`api.identity` stores users and tokens).

A role grants a fixed set of scopes; a token carries the scopes it was given, which are never
more than its role's. Endpoints declare the scope they need (FastAPI ``Security`` scopes), and
queries are narrowed by the caller's patches in SQL (:class:`Principal.patch_filter`).
"""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Final

import jwt
from pwdlib import PasswordHash

__all__ = [
    "ROLE_SCOPES",
    "SCOPES",
    "Principal",
    "Role",
    "TokenError",
    "VerifiedTokens",
    "decode_access_token",
    "hash_refresh_token",
    "hash_secret",
    "issue_access_token",
    "new_secret",
    "verify_secret",
]

ALGORITHM: Final = "HS256"
ISSUER: Final = "civic-sensors"


class Role(StrEnum):
    HOUSING_OFFICER = "housing_officer"
    WASTE_OPS = "waste_ops"
    ENGINEER = "engineer"
    ADMIN = "admin"


SCOPES: Final[dict[str, str]] = {
    "homes:read": "council homes: address, UPRN, void or occupied (personal data, logged)",
    "bins:read": "street bins, their fill and forecasts",
    "devices:read": "devices and their health, without tenants' addresses",
    "devices:write": "import the registry, disable devices",
    "readings:read": "readings of the devices the caller may see",
    "alerts:read": "alerts the caller may see, their timeline",
    "alerts:write": "acknowledge, resolve, record Awaab's Law steps",
    "evidence:read": "evidence packs (personal data, logged)",
    "commands:write": "send heating setpoints to homes, see their acknowledgement",
    "routes:read": "route plans, exports, planning jobs",
    "routes:write": "plan and re-plan routes, import crews' collection records",
    "ops:read": "ingest rate and lag, dead letters, device health",
    "users:admin": "users, API tokens and the access log",
}

ROLE_SCOPES: Final[dict[Role, frozenset[str]]] = {
    Role.HOUSING_OFFICER: frozenset(
        {
            "homes:read",
            "readings:read",
            "alerts:read",
            "alerts:write",
            "evidence:read",
            "commands:write",
        }
    ),
    Role.WASTE_OPS: frozenset(
        {"bins:read", "readings:read", "alerts:read", "alerts:write", "routes:read", "routes:write"}
    ),
    Role.ENGINEER: frozenset({"devices:read", "bins:read", "readings:read", "ops:read"}),
    Role.ADMIN: frozenset(SCOPES),
}

ALL_PATCHES: Final = "*"


class TokenError(Exception):
    """An access token that is malformed, forged or expired."""


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller of one request: a person (``user``) or a script's credentials (``token``)."""

    kind: str
    name: str
    role: Role
    scopes: frozenset[str]
    patches: tuple[str, ...] = ()

    @property
    def actor(self) -> str:
        """How the access log and audit trails name the caller."""
        return f"{self.kind}:{self.name}"

    @property
    def patch_filter(self) -> list[str] | None:
        """Patches a housing officer is limited to, for ``patch = ANY(...)`` in SQL; ``None``
        where the role sees every home or bin it may see at all."""
        if self.role is not Role.HOUSING_OFFICER or ALL_PATCHES in self.patches:
            return None
        return list(self.patches)

    @property
    def subject_kinds(self) -> list[str]:
        """Which alert subjects the role works on: officers homes, crews bins."""
        if self.role is Role.HOUSING_OFFICER:
            return ["home"]
        if self.role is Role.WASTE_OPS:
            return ["bin"]
        return ["home", "bin"]

    @property
    def sees_addresses(self) -> bool:
        return "homes:read" in self.scopes

    def allows(self, scope: str) -> bool:
        return scope in self.scopes


def grantable(role: Role, requested: list[str] | None) -> frozenset[str]:
    """Scopes a token of ``role`` may carry: what was asked for, never more than the role's."""
    allowed = ROLE_SCOPES[role]
    if not requested:
        return allowed
    unknown = sorted(set(requested) - set(SCOPES))
    if unknown:
        raise ValueError(f"unknown scope(s): {', '.join(unknown)}; known: {', '.join(SCOPES)}")
    beyond = sorted(set(requested) - allowed)
    if beyond:
        raise ValueError(f"role {role.value} cannot hold scope(s): {', '.join(beyond)}")
    return frozenset(requested)


# -- secrets -----------------------------------------------------------------------------------

_HASHER = PasswordHash.recommended()  # argon2id with the library's current parameters


def hash_secret(secret: str) -> str:
    """A password or client secret as stored: argon2id, salted."""
    return _HASHER.hash(secret)


def verify_secret(secret: str, stored_hash: str) -> bool:
    return _HASHER.verify(secret, stored_hash)


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def hash_refresh_token(token: str) -> str:
    """Refresh tokens are 256 random bits: SHA-256 is enough to store them (nothing to guess),
    and they are looked up by it."""
    return hashlib.sha256(token.encode()).hexdigest()


# -- access tokens -----------------------------------------------------------------------------


def issue_access_token(
    principal: Principal, *, secret: str, ttl: timedelta, now: datetime | None = None
) -> str:
    now = now or datetime.now(UTC)
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "sub": principal.actor,
        "role": principal.role.value,
        "scope": " ".join(sorted(principal.scopes)),
        "patches": list(principal.patches),
        "iat": int(now.timestamp()),
        "exp": int((now + ttl).timestamp()),
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def decode_access_token(token: str, *, secret: str) -> Principal:
    """The caller named by a valid token; :class:`TokenError` otherwise."""
    return _verify(token, secret)[0]


def _verify(token: str, secret: str) -> tuple[Principal, int]:
    """The caller and the token's expiry (seconds since the epoch)."""
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            issuer=ISSUER,
            options={"require": ["exp", "iat", "sub", "iss"]},
        )
        kind, _, name = str(claims["sub"]).partition(":")
        role = Role(claims["role"])
        scopes = frozenset(str(claims.get("scope", "")).split()) & ROLE_SCOPES[role]
        principal = Principal(kind, name, role, scopes, tuple(claims.get("patches", [])))
        return principal, int(claims["exp"])
    except jwt.ExpiredSignatureError as exc:
        raise TokenError("the access token has expired: refresh it or log in again") from exc
    except (jwt.InvalidTokenError, KeyError, ValueError) as exc:
        raise TokenError("the access token is not valid") from exc


class VerifiedTokens:
    """Access tokens whose signature and claims were checked, kept until they expire: a screen
    polling sends the same token many times a minute, and checking its HMAC each time was
    about a tenth of a request's work. Keyed by the whole token, signature included, so only
    the very token that was verified is recognised; never trusted past its ``exp``."""

    def __init__(self, secret: str, max_entries: int = 4096) -> None:
        self._secret = secret
        self._max = max_entries
        self._tokens: dict[str, tuple[Principal, int]] = {}

    def principal(self, token: str) -> Principal:
        """As :func:`decode_access_token`."""
        kept = self._tokens.get(token)
        if kept is not None and time.time() < kept[1]:
            return kept[0]
        principal, expires = _verify(token, self._secret)  # raises for an expired one
        if len(self._tokens) >= self._max:
            self._tokens.clear()  # callers are few; a full table means churn, start again
        self._tokens[token] = (principal, expires)
        return principal
