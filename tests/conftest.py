"""Real PostgreSQL and Mosquitto for the test suite.

The session starts the project's own instances (``common.services``) under ``.civic/test/<pid>`` on
free ports, unless ``CIVIC_TEST_DATABASE_URL`` / ``CIVIC_TEST_MQTT_URL`` point at existing
servers. Each test that asks for ``database_url`` gets a fresh, migrated database of its own;
each that asks for ``mqtt`` gets its own topic prefix.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from hypothesis import settings

from common.command_keys import load_command_secret
from common.mqtt import MqttAuth
from common.services import LocalServices, parse_mqtt_url
from store.db import StoreMode, connect, migrate, timescaledb_usable

# Wall-clock deadlines make property tests flaky on a busy 2-core machine; they test logic.
settings.register_profile("civic", deadline=None)
settings.load_profile("civic")

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class TestServices:
    admin_url: str  # a database we may CREATE DATABASE from
    mqtt_url: str
    local: LocalServices | None  # None when pointing at external servers

    @property
    def mqtt_host_port(self) -> tuple[str, int]:
        return parse_mqtt_url(self.mqtt_url)


@pytest.fixture(scope="session")
def services() -> Iterator[TestServices]:
    external_db = os.environ.get("CIVIC_TEST_DATABASE_URL")
    external_mqtt = os.environ.get("CIVIC_TEST_MQTT_URL")
    if external_db and external_mqtt:
        yield TestServices(external_db, external_mqtt, None)
        return
    # One pair of servers per test session, so concurrent sessions never stop each other's.
    data_dir = ROOT / ".civic" / "test" / str(os.getpid())
    local = LocalServices(data_dir)
    state = local.up()
    admin = state.database_url.rsplit("/", 1)[0] + "/postgres"
    yield TestServices(admin, state.mqtt_url, local)
    local.down()
    shutil.rmtree(local.pg_dir, ignore_errors=True)  # may live outside data_dir (as root)
    shutil.rmtree(data_dir, ignore_errors=True)


def _with_database(admin_url: str, name: str) -> str:
    parts = urlsplit(admin_url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@pytest.fixture(scope="session")
def timescaledb_available(services: TestServices) -> bool:
    with connect(services.admin_url) as conn:
        return timescaledb_usable(conn)


def _fresh_database(services: TestServices, mode: StoreMode | None) -> Iterator[str]:
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(services.admin_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    url = _with_database(services.admin_url, name)
    try:
        migrate(url, mode=mode)
        yield url
    finally:
        with psycopg.connect(services.admin_url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def database_url(services: TestServices) -> Iterator[str]:
    """A fresh migrated database in the server's default mode."""
    yield from _fresh_database(services, None)


@pytest.fixture(params=[StoreMode.NATIVE, StoreMode.TIMESCALEDB], ids=["native", "timescaledb"])
def any_mode_database_url(
    request: pytest.FixtureRequest, services: TestServices, timescaledb_available: bool
) -> Iterator[str]:
    """A fresh database in each storage mode; the TimescaleDB one skips where not installed."""
    if request.param is StoreMode.TIMESCALEDB and not timescaledb_available:
        pytest.skip("timescaledb extension not installed (or not preloaded) in this PostgreSQL")
    yield from _fresh_database(services, request.param)


@pytest.fixture
def native_database_url(services: TestServices) -> Iterator[str]:
    """A fresh database on native partitioning, whatever the server could do."""
    yield from _fresh_database(services, StoreMode.NATIVE)


@pytest.fixture
def timescale_database_url(services: TestServices, timescaledb_available: bool) -> Iterator[str]:
    if not timescaledb_available:
        pytest.skip("timescaledb extension not installed (or not preloaded) in this PostgreSQL")
    yield from _fresh_database(services, StoreMode.TIMESCALEDB)


@dataclass
class MqttTarget:
    host: str
    port: int
    prefix: str
    local: LocalServices | None = None

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def auth(self, role: str) -> MqttAuth | None:
        """The broker account of a service role (ingest, alerts, sim) on the test broker."""
        return self.local.service_auth(role) if self.local else None

    @property
    def tls_port(self) -> int:
        assert self.local is not None, "needs the suite's own broker"
        port = self.local.load_state().mqtt_tls_port
        assert port is not None
        return port


@pytest.fixture
def mqtt(services: TestServices) -> MqttTarget:
    host, port = services.mqtt_host_port
    return MqttTarget(host, port, f"t{uuid.uuid4().hex[:10]}", services.local)


@pytest.fixture
def civic_env(
    monkeypatch: pytest.MonkeyPatch, database_url: str, mqtt: MqttTarget, tmp_path: Path
) -> tuple[str, MqttTarget]:
    """Point the ``civic`` command (run in-process) at this test's database and topics."""
    monkeypatch.setenv("CIVIC_DATABASE_URL", database_url)
    monkeypatch.setenv("CIVIC_MQTT_URL", mqtt.url)
    monkeypatch.setenv("CIVIC_TOPIC_PREFIX", mqtt.prefix)
    if mqtt.local is not None:
        # The suite's broker: its accounts, its password file, its command secret.
        monkeypatch.setenv("CIVIC_DATA_DIR", str(mqtt.local.data_dir))
    else:
        # An external broker is production to the platform: the secret must be configured.
        secret_file = tmp_path / "command.secret"
        load_command_secret(secret_file)
        monkeypatch.setenv("CIVIC_COMMAND_SECRET_FILE", str(secret_file))
    return database_url, mqtt
