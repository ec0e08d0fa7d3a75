"""Settings for every ``civic`` process, read once from the environment (or ``.env``).

``CIVIC_DATABASE_URL`` and ``CIVIC_MQTT_URL`` point at existing servers; when they are unset the
project-local services started by ``civic services up`` are used (their ports are recorded in
the data directory).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

from pydantic_settings import BaseSettings, SettingsConfigDict

from common.mqtt import MqttAuth

SIM_LAST_RUN_FILE = "sim-last-run.json"
"""In the data directory: ``civic sim``'s report of its last run, for the engineer's console."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CIVIC_", env_file=".env", extra="ignore")

    env: Literal["development", "production"] = "production"
    database_url: str | None = None
    mqtt_url: str | None = None
    topic_prefix: str = "civic"
    data_dir: Path = Path(".civic")
    fleet_file: Path | None = None  # the council's fleet TOML (routing/fleet.default.toml if unset)
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
    """The secret every device's command key is derived from (common.command_keys).

    Made on first use only on a developer's machine (``CIVIC_ENV=development``) or for the
    project-local broker of ``civic services up``. Anywhere else it must already exist: a
    secret made afresh by a misconfigured process would sign commands no device accepts, and
    one left in a working directory is easily lost or leaked. ``CIVIC_COMMAND_SECRET_FILE``,
    when set, must name an existing file everywhere.
    """
    from common.command_keys import load_command_secret
    from common.services import ServicesError

    settings = settings or get_settings()
    configured = settings.command_secret_file
    path = configured or settings.data_dir / "command.secret"
    create = configured is None and (settings.env == "development" or _local_broker(settings))
    try:
        return load_command_secret(path, create=create)
    except FileNotFoundError:
        raise ServicesError(
            f"no command secret at {path}: heating commands cannot be signed. Outside "
            "development, make one (`python -c 'import secrets; print(secrets.token_hex(32))' "
            "> FILE`, mode 0600, kept with the platform's other secrets) and set "
            "CIVIC_COMMAND_SECRET_FILE=FILE; on a developer's machine CIVIC_ENV=development "
            "makes one in the data directory"
        ) from None
    except ValueError as exc:
        raise ServicesError(str(exc)) from exc


def _local_broker(settings: Settings) -> bool:
    """Whether this process talks to the project-local broker of ``civic services up`` (no
    broker configured, or the configured one is the local one recorded in the data dir)."""
    from common.services import LocalServices, parse_mqtt_url

    if settings.mqtt_url is None:
        return True
    state = LocalServices(settings.data_dir).load_state()
    host, port = parse_mqtt_url(settings.mqtt_url)
    return host in ("127.0.0.1", "localhost") and port in (state.mqtt_port, state.mqtt_tls_port)
