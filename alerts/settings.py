"""Settings of the alerts service, from the environment (``CIVIC_*``) or ``.env``.

The library never reads these itself: the command line builds the service's keyword-only
configuration from them.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["AlertsSettings"]


class AlertsSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CIVIC_", env_file=".env", extra="ignore")

    smtp_url: str | None = None
    """Where email goes, e.g. ``smtp://127.0.0.1:2525``; unset: email waits in the outbox."""
    smtp_from: str = "civic-alerts@localhost"
    alerts_lateness_s: float = Field(default=120.0, ge=0)
    alerts_interval_s: float = Field(default=1.0, gt=0)
    alerts_command_ttl_s: float = Field(default=1800.0, gt=0)
    alerts_frost_setpoint_c: float = Field(default=12.0, ge=5, le=25)
    alerts_webhook_attempts: int = Field(default=6, ge=1)
    alerts_rules: str | None = None
    """A rules file (TOML) with settings per portfolio, patch, property or device; see
    :mod:`alerts.rule_config`. Unset: the documented defaults."""
    alerts_overdue_check_s: float = Field(default=300.0, ge=0)
    """How often ``civic alerts run`` chases Awaab's Law due dates, by the wall clock (they
    are real-world deadlines); 0 leaves it to ``civic alerts overdue`` (say, when replaying
    old data, which would otherwise all be overdue today)."""
