"""Settings for every ``civic`` process, read once from the environment (or ``.env``).

``CIVIC_DATABASE_URL`` and ``CIVIC_MQTT_URL`` point at existing servers; when they are unset the
project-local services started by ``civic services up`` are used (their ports are recorded in
the data directory).
"""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CIVIC_", env_file=".env", extra="ignore")

    database_url: str | None = None
    mqtt_url: str | None = None
    topic_prefix: str = "civic"
    data_dir: Path = Path(".civic")


def get_settings() -> Settings:
    return Settings()


def database_url(settings: Settings | None = None) -> str:
    """The configured database, or the project-local one from ``civic services up``."""
    from common.services import LocalServices, ServicesError

    settings = settings or get_settings()
    if settings.database_url:
        return settings.database_url
    state = LocalServices(settings.data_dir).load_state()
    if state.pg_port is None:
        raise ServicesError(
            "no database configured: run `civic services up` or set CIVIC_DATABASE_URL"
        )
    return state.database_url


def mqtt_url(settings: Settings | None = None) -> str:
    """The configured broker, or the project-local one from ``civic services up``."""
    from common.services import LocalServices, ServicesError

    settings = settings or get_settings()
    if settings.mqtt_url:
        return settings.mqtt_url
    state = LocalServices(settings.data_dir).load_state()
    if state.mqtt_port is None:
        raise ServicesError("no broker configured: run `civic services up` or set CIVIC_MQTT_URL")
    return state.mqtt_url
