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
