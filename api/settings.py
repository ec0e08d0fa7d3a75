"""Settings of the HTTP API, from ``CIVIC_*`` environment variables (or ``.env``).

The signing secret is refused when it is missing or a placeholder, except in development
(``CIVIC_ENV=development``), where one is generated once and kept in the data directory.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Literal

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from common.errors import CivicError

__all__ = ["ApiSettings", "ApiSettingsError"]

MIN_SECRET_LENGTH = 32  # HS256 wants at least 256 bits; 32 random characters carry more
_PLACEHOLDERS = frozenset({"changeme", "change-me", "secret", "placeholder", "development"})


class ApiSettingsError(CivicError):
    """The API cannot start with these settings."""


class ApiSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CIVIC_", env_file=".env", extra="ignore")

    env: Literal["development", "production"] = "production"
    api_secret: SecretStr | None = None
    api_secret_file: Path | None = None
    data_dir: Path = Path(".civic")
    access_token_ttl_s: int = 900
    """Access tokens live 15 minutes: a stolen one is soon useless; refresh tokens renew."""
    refresh_token_ttl_s: int = 14 * 86_400
    api_revocation_check_s: float = 5.0
    """How often a caller's standing (user disabled, token revoked) is re-read: a revoked
    caller is refused within this many seconds, and a busy caller costs one query per period."""
    api_latest_cache_s: float = 1.0
    """How long the estate's latest readings are served again per caller scope before the
    database is asked afresh; past it the kept body is still served while one request remakes
    it, so a body is at most this plus one remaking old (0: every request asks)."""
    api_rate_per_minute: int = 1200
    """Requests per minute per caller before 429 (a screen polling every few seconds uses
    a few dozen)."""
    api_route_max_seconds: float = 600.0
    """The longest route search a caller may ask for (the solver holds a core meanwhile)."""
    api_cors_origins: list[str] = []
    """Origins allowed to call the API from a browser; none by default (same origin only)."""
    map_tile_url: str | None = None
    """A map tile server for the screens' maps (``https://tiles.example/{z}/{x}/{y}.png``);
    unset, maps draw the data over a plain background and need no network."""
    map_tile_attribution: str = ""

    def signing_secret(self) -> str:
        """The JWT signing secret, or :class:`ApiSettingsError` saying how to set one."""
        secret = self._configured_secret()
        if secret is None and self.env == "development":
            secret = self._development_secret()
        if secret is None:
            raise ApiSettingsError(
                "no API signing secret: set CIVIC_API_SECRET (32+ random characters, e.g. "
                "`python -c 'import secrets; print(secrets.token_urlsafe(48))'`) or "
                "CIVIC_API_SECRET_FILE, or CIVIC_ENV=development on a developer's machine"
            )
        if len(secret) < MIN_SECRET_LENGTH or secret.lower() in _PLACEHOLDERS:
            raise ApiSettingsError(
                f"CIVIC_API_SECRET is a placeholder or shorter than {MIN_SECRET_LENGTH} "
                "characters: use a random secret"
            )
        return secret

    def _configured_secret(self) -> str | None:
        if self.api_secret is not None:
            return self.api_secret.get_secret_value().strip()
        if self.api_secret_file is not None:
            try:
                return self.api_secret_file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ApiSettingsError(f"CIVIC_API_SECRET_FILE: {exc}") from exc
        return None

    def _development_secret(self) -> str:
        path = self.data_dir / "api-secret"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:  # another process made it first
                pass
            else:
                with os.fdopen(fd, "w", encoding="utf-8") as out:
                    out.write(secrets.token_urlsafe(48))
        return path.read_text(encoding="utf-8").strip()
