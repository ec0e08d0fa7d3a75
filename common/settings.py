"""Settings for every ``civic`` process, read once from the environment (or ``.env``).

``CIVIC_DATABASE_URL`` and ``CIVIC_MQTT_URL`` point at existing servers; when they are unset the
project-local services started by ``civic services up`` are used (their ports are recorded in
the data directory).
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import unquote, urlsplit

from pydantic_settings import BaseSettings, SettingsConfigDict

from common.mqtt import MqttAuth

SIM_LAST_RUN_FILE = "sim-last-run.json"
"""In the data directory: ``civic sim``'s report of its last run, for the engineer's console."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CIVIC_", env_file=".env", extra="ignore")

    database_url: str | None = None
    mqtt_url: str | None = None
    topic_prefix: str = "civic"
    data_dir: Path = Path(".civic")
    # This process's broker account, when not the local services' account for its role
    # (or give them in the URL: mqtt://user:password@host:1883).
    mqtt_username: str | None = None
    mqtt_password: str | None = None
    mqtt_ca_file: Path | None = None  # with an mqtts:// URL: the CA that signed the broker
    mqtt_accounts_file: Path | None = None  # role -> password JSON of the local services
    command_secret_file: Path | None = None  # signs heating commands; default in data_dir


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


def mqtt_auth(role: str, settings: Settings | None = None) -> MqttAuth:
    """How the service ``role`` (``ingest``, ``alerts``, ``sim``) logs in to the broker:
    ``CIVIC_MQTT_USERNAME``/``CIVIC_MQTT_PASSWORD`` or credentials in ``CIVIC_MQTT_URL``
    when given, otherwise the role's account of the project-local broker."""
    from common.broker import SERVICE_ROLES
    from common.services import LocalServices, ServicesError

    settings = settings or get_settings()
    url = urlsplit(settings.mqtt_url or "")
    tls = url.scheme in ("mqtts", "ssl")
    ca_file = settings.mqtt_ca_file
    if tls and ca_file is None:
        ca_file = LocalServices(settings.data_dir).ca_file
    if not tls:
        ca_file = None
    if settings.mqtt_username:
        return MqttAuth(settings.mqtt_username, settings.mqtt_password or "", ca_file)
    if url.username:
        return MqttAuth(unquote(url.username), unquote(url.password or ""), ca_file)
    if role not in SERVICE_ROLES:
        raise ServicesError(f"no broker account for {role!r}")
    accounts_file = settings.mqtt_accounts_file
    if accounts_file is None:
        local = LocalServices(settings.data_dir)
        if not local.accounts_file.exists():
            raise ServicesError(
                "no broker credentials: run `civic services up`, or set CIVIC_MQTT_USERNAME and "
                "CIVIC_MQTT_PASSWORD"
            )
        return local.service_auth(role)
    accounts = json.loads(accounts_file.read_text())
    return MqttAuth(SERVICE_ROLES[role].username, accounts[role], ca_file)


def command_secret(settings: Settings | None = None) -> bytes:
    """The secret every device's command key is derived from (common.command_keys)."""
    from common.command_keys import load_command_secret

    settings = settings or get_settings()
    return load_command_secret(settings.command_secret_file or settings.data_dir / "command.secret")
