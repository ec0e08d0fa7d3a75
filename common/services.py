"""Project-local PostgreSQL and Mosquitto on free ports inside a data directory.

Used by ``civic services``, the demo and the test suite, so a fresh Debian machine needs nothing
but this repository: missing Debian packages are installed when running as root, otherwise the
error says exactly what to install. PostgreSQL refuses to run as root, so as root its cluster is
owned by and run as the ``postgres`` system user that Debian's package creates.
"""

from __future__ import annotations

import glob
import hashlib
import json
import logging
import os
import shutil
import signal
import socket
import stat
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlsplit

from common.broker import SERVICE_ROLES, BrokerLimits, acl_text, new_secret, password_hash
from common.errors import CivicError
from common.mqtt import MqttAuth

log = logging.getLogger(__name__)

DEBIAN_PACKAGES = ("postgresql", "mosquitto", "mosquitto-clients")
DATABASE_NAME = "civic"
DATABASE_USER = "civic"
START_TIMEOUT_S = 30.0
TIMESCALEDB_ENV = "CIVIC_TIMESCALEDB"  # auto | on | off: preload the extension or not


class ServicesError(CivicError):
    """A local service could not be installed, started or reached."""


@dataclass
class ServicesState:
    """What ``up`` started, persisted as JSON so later commands find the ports."""

    pg_port: int | None = None
    mqtt_port: int | None = None  # plain MQTT on loopback: the platform's own services
    mqtt_tls_port: int | None = None  # MQTT over TLS: devices, each with its own password

    @property
    def database_url(self) -> str:
        return f"postgresql://{DATABASE_USER}@127.0.0.1:{self.pg_port}/{DATABASE_NAME}"

    @property
    def mqtt_url(self) -> str:
        return f"mqtt://127.0.0.1:{self.mqtt_port}"

    @property
    def mqtt_tls_url(self) -> str:
        return f"mqtts://localhost:{self.mqtt_tls_port}"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def _is_root() -> bool:
    return os.geteuid() == 0


def postgres_bindir() -> Path | None:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    if candidates:
        return Path(candidates[0]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def timescaledb_available(bindir: Path) -> bool:
    """True when the timescaledb extension is installed for this PostgreSQL build."""
    try:
        sharedir = subprocess.run(
            [str(bindir / "pg_config"), "--sharedir"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        version = bindir.parent.name
        sharedir = f"/usr/share/postgresql/{version}"
    return Path(sharedir, "extension", "timescaledb.control").exists()


def timescaledb_wanted(bindir: Path) -> bool:
    """Whether the local PostgreSQL preloads TimescaleDB, as ``CIVIC_TIMESCALEDB`` says:
    ``auto`` (the default) when the extension is installed, ``off`` never (to run the native
    partitioning path on a machine that has it), ``on`` always, failing where it is missing."""
    wanted = os.environ.get(TIMESCALEDB_ENV, "auto").strip().lower() or "auto"
    if wanted not in ("auto", "on", "off"):
        raise ServicesError(f"{TIMESCALEDB_ENV}={wanted!r}: use auto, on or off")
    if wanted == "off":
        return False
    installed = timescaledb_available(bindir)
    if wanted == "on" and not installed:
        raise ServicesError(
            f"{TIMESCALEDB_ENV}=on but the timescaledb extension is not installed for "
            f"the PostgreSQL in {bindir}"
        )
    return installed


def ensure_installed() -> None:
    """Install PostgreSQL and Mosquitto from Debian's packages when they are missing."""
    missing = []
    if postgres_bindir() is None:
        missing.append("postgresql")
    if shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists():
        missing += ["mosquitto", "mosquitto-clients"]
    if not missing:
        return
    if not _is_root():
        raise ServicesError(
            "missing packages; install them with: sudo apt-get install -y " + " ".join(missing)
        )
    log.info("installing Debian packages: %s", " ".join(missing))
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-q"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-q", *missing], check=True, env=env)


def mosquitto_binary() -> str:
    found = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(found).exists():
        raise ServicesError("mosquitto not found; install it with: apt-get install -y mosquitto")
    return found


def _reachable_by_others(path: Path) -> bool:
    """Every folder above ``path`` lets other users through (o+x)."""
    return all(parent.stat().st_mode & stat.S_IXOTH for parent in path.parents if parent.exists())


def _postgres_data_dir(data_dir: Path) -> Path:
    """As root, the cluster runs as ``postgres``, who must reach its data directory; a checkout
    under a private home (e.g. /root) cannot host it, so it lives in /var/tmp instead."""
    preferred = data_dir / "pg"
    if not _is_root() or _reachable_by_others(preferred):
        return preferred
    digest = hashlib.sha1(str(data_dir).encode()).hexdigest()[:12]
    return Path("/var/tmp") / f"civic-pg-{digest}"


class LocalServices:
    """PostgreSQL + Mosquitto owned by this project, living under ``data_dir``."""

    def __init__(
        self,
        data_dir: Path,
        *,
        limits: BrokerLimits | None = None,
        tls_port: int | None = None,
        tls_bind: str = "127.0.0.1",
    ) -> None:
        self.data_dir = data_dir.resolve()
        self.state_file = self.data_dir / "services.json"
        self.pg_dir = _postgres_data_dir(self.data_dir)
        self.mqtt_dir = self.data_dir / "mqtt"
        self.limits = limits or BrokerLimits()
        self.preferred_tls_port = tls_port  # e.g. 8883; a free port when None or taken
        # Loopback by default so a development machine does not offer its broker to the
        # network; CIVIC_MQTT_TLS_BIND=0.0.0.0 lets real devices in.
        self.tls_bind = tls_bind

    # --- state -----------------------------------------------------------------------------
    def load_state(self) -> ServicesState:
        if self.state_file.exists():
            return ServicesState(**json.loads(self.state_file.read_text()))
        return ServicesState()

    def _save_state(self, state: ServicesState) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.state_file.write_text(json.dumps(asdict(state)))

    # --- lifecycle -------------------------------------------------------------------------
    def up(self) -> ServicesState:
        ensure_installed()
        state = self.load_state()
        state.pg_port = self._postgres_up(state.pg_port)
        state.mqtt_port, state.mqtt_tls_port = self._mosquitto_up(
            state.mqtt_port, state.mqtt_tls_port
        )
        self._save_state(state)
        return state

    def down(self) -> None:
        self.stop_postgres()
        self.stop_mosquitto()

    def status(self) -> dict[str, object]:
        state = self.load_state()
        pg_up = state.pg_port is not None and port_open(state.pg_port)
        mqtt_up = state.mqtt_port is not None and port_open(state.mqtt_port)
        return {
            "postgresql": {"running": pg_up, "url": state.database_url if pg_up else None},
            "mosquitto": {
                "running": mqtt_up,
                "url": state.mqtt_url if mqtt_up else None,
                "devices_url": state.mqtt_tls_url if mqtt_up else None,
                "ca_file": str(self.ca_file),
            },
            "data_dir": str(self.data_dir),
        }

    # --- PostgreSQL ------------------------------------------------------------------------
    def _as_postgres_user(self, argv: list[str]) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *argv] if _is_root() else argv

    def _run_pg(self, argv: list[str]) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            self._as_postgres_user(argv), capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            raise ServicesError(f"{' '.join(argv[:2])} failed: {result.stderr.strip()}")
        return result

    def _postgres_up(self, port: int | None) -> int:
        bindir = postgres_bindir()
        if bindir is None:
            raise ServicesError("PostgreSQL not found; install it with: apt-get install postgresql")
        pid_file = self.pg_dir / "postmaster.pid"
        # (PostgreSQL listens on 127.0.0.1 only; see _init_cluster.)
        if port is not None and pid_file.exists() and port_open(port):
            return port
        if not (self.pg_dir / "PG_VERSION").exists():
            self._init_cluster(bindir)
        if port is None or port_open(port):
            port = free_port()
        log.info("starting PostgreSQL on 127.0.0.1:%d (data %s)", port, self.pg_dir)
        self._run_pg(
            [
                str(bindir / "pg_ctl"),
                "start",
                "-w",
                "-t",
                str(int(START_TIMEOUT_S)),
                "-D",
                str(self.pg_dir),
                "-l",
                str(self.pg_dir / "server.log"),
                "-o",
                self._server_options(bindir, port),
            ]
        )
        self._create_database(port)
        return port

    @staticmethod
    def _server_options(bindir: Path, port: int) -> str:
        options = f"-p {port}"
        # Decided at each start, so installing the extension later needs only a restart.
        if timescaledb_wanted(bindir):
            options += " -c shared_preload_libraries=timescaledb -c timescaledb.telemetry_level=off"
        return options

    def _init_cluster(self, bindir: Path) -> None:
        self.pg_dir.mkdir(parents=True, exist_ok=True)
        if _is_root():
            shutil.chown(self.pg_dir, "postgres", "postgres")
            self.pg_dir.chmod(0o700)
        self._run_pg(
            [
                str(bindir / "initdb"),
                "-D",
                str(self.pg_dir),
                "-U",
                DATABASE_USER,
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-locale",
            ]
        )
        settings = [
            "listen_addresses = '127.0.0.1'",
            f"unix_socket_directories = '{self.pg_dir}'",
            "max_connections = 200",
            "shared_buffers = '256MB'",
            "max_wal_size = '2GB'",
            "timezone = 'UTC'",
        ]
        with (self.pg_dir / "postgresql.conf").open("a") as conf:
            conf.write("\n# civic services\n" + "\n".join(settings) + "\n")

    def _create_database(self, port: int) -> None:
        import psycopg

        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                with psycopg.connect(
                    f"postgresql://{DATABASE_USER}@127.0.0.1:{port}/postgres", autocommit=True
                ) as conn:
                    exists = conn.execute(
                        "SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE_NAME,)
                    ).fetchone()
                    if not exists:
                        conn.execute(f"CREATE DATABASE {DATABASE_NAME}")
                    return
            except psycopg.OperationalError as exc:
                if time.monotonic() > deadline:
                    raise ServicesError(f"PostgreSQL did not accept connections: {exc}") from exc
                time.sleep(0.2)

    def stop_postgres(self) -> None:
        bindir = postgres_bindir()
        if bindir is None or not (self.pg_dir / "postmaster.pid").exists():
            return
        log.info("stopping PostgreSQL (data %s)", self.pg_dir)
        self._run_pg([str(bindir / "pg_ctl"), "stop", "-w", "-m", "fast", "-D", str(self.pg_dir)])

    def start_postgres(self) -> None:
        state = self.load_state()
        state.pg_port = self._postgres_up(state.pg_port)
        self._save_state(state)

    # --- Mosquitto -------------------------------------------------------------------------
    @property
    def _mqtt_pid_file(self) -> Path:
        return self.mqtt_dir / "mosquitto.pid"

    def _mosquitto_pid(self) -> int | None:
        try:
            pid = int(self._mqtt_pid_file.read_text().strip())
            os.kill(pid, 0)
        except (OSError, ValueError):
            return None
        return pid

    @property
    def ca_file(self) -> Path:
        return self.mqtt_dir / "tls" / "ca.crt"

    @property
    def accounts_file(self) -> Path:
        return self.mqtt_dir / "accounts.json"

    @property
    def device_passwords_file(self) -> Path:
        return self.mqtt_dir / "devices.passwd"

    def service_passwords(self) -> dict[str, str]:
        """Each service role's broker password, made once and kept (0600) in the data dir."""
        accounts: dict[str, str] = {}
        if self.accounts_file.exists():
            accounts = json.loads(self.accounts_file.read_text())
        missing = [role for role in SERVICE_ROLES if role not in accounts]
        if missing:
            accounts.update({role: new_secret() for role in missing})
            self.mqtt_dir.mkdir(parents=True, exist_ok=True)
            write_private(self.accounts_file, json.dumps(accounts, indent=2) + "\n")
        return accounts

    def service_auth(self, role: str) -> MqttAuth:
        """How the service ``role`` (ingest, alerts, sim) logs in to the local broker."""
        if role not in SERVICE_ROLES:
            raise ServicesError(f"no broker account for {role!r}: one of {sorted(SERVICE_ROLES)}")
        return MqttAuth(SERVICE_ROLES[role].username, self.service_passwords()[role])

    def device_auth(self, device_id: str, password: str) -> MqttAuth:
        """How a device logs in: its own password, over TLS, checking the local CA."""
        return MqttAuth(device_id, password, ca_file=self.ca_file)

    def write_device_passwords(self, hashes: dict[str, str]) -> bool:
        """Replace the devices the broker accepts (device id -> ``$7$`` hash) and have a
        running broker reload them; a device left out is refused from its next connect and a
        connected one is disconnected. True when a running broker was told."""
        self.mqtt_dir.mkdir(parents=True, exist_ok=True)
        text = "".join(f"{device}:{hashed}\n" for device, hashed in sorted(hashes.items()))
        write_private(self.device_passwords_file, text)
        self._write_broker_passwords()
        return self.reload_mosquitto()

    def _write_broker_passwords(self) -> None:
        """The broker's one password file: the services' accounts, then the devices'."""
        services = "".join(
            f"{SERVICE_ROLES[role].username}:{password_hash(password)}\n"
            for role, password in sorted(self.service_passwords().items())
            if role in SERVICE_ROLES
        )
        devices = (
            self.device_passwords_file.read_text() if self.device_passwords_file.exists() else ""
        )
        write_private(self.mqtt_dir / "broker.passwd", services + devices)

    def reload_mosquitto(self) -> bool:
        """SIGHUP: Mosquitto re-reads password and ACL files without dropping sessions."""
        pid = self._mosquitto_pid()
        if pid is None:
            return False
        os.kill(pid, signal.SIGHUP)
        return True

    def _write_security_files(self) -> tuple[Path, Path, Path]:
        from common.tls import ensure_server_cert  # cryptography: only when starting a broker

        tls_dir = self.mqtt_dir / "tls"
        ca, cert, key = ensure_server_cert(tls_dir)
        self._write_broker_passwords()
        (self.mqtt_dir / "acl").write_text(acl_text())
        return ca, cert, key

    def _mosquitto_up(self, port: int | None, tls_port: int | None) -> tuple[int, int]:
        running = self._mosquitto_pid() is not None
        conf = self.mqtt_dir / "mosquitto.conf"
        if running and port is not None and tls_port is not None and port_open(port):
            if conf.exists() and conf.read_text() == self._mosquitto_conf(port, tls_port):
                return port, tls_port
            self.stop_mosquitto()  # an older, less secure configuration: restart on this one
        if port is None or port_open(port):
            port = free_port()
        tls_port = self._pick_tls_port(tls_port, port)
        self.mqtt_dir.mkdir(parents=True, exist_ok=True)
        self._write_security_files()
        conf.write_text(self._mosquitto_conf(port, tls_port))
        log.info(
            "starting Mosquitto on 127.0.0.1:%d and TLS %s:%d (data %s)",
            port,
            self.tls_bind,
            tls_port,
            self.mqtt_dir,
        )
        subprocess.run(
            [mosquitto_binary(), "-c", str(conf), "-d"],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while not (port_open(port) and port_open(tls_port, self._tls_probe_host)):
            if time.monotonic() > deadline:
                raise ServicesError(f"Mosquitto did not listen on {port}; see {self.mqtt_dir}/log")
            time.sleep(0.05)
        return port, tls_port

    @property
    def _tls_probe_host(self) -> str:
        return "127.0.0.1" if self.tls_bind in ("0.0.0.0", "") else self.tls_bind

    def _pick_tls_port(self, tls_port: int | None, plain_port: int) -> int:
        for candidate in (tls_port, self.preferred_tls_port):
            if candidate and candidate != plain_port and not port_open(candidate):
                return candidate
        while True:
            candidate = free_port()
            if candidate != plain_port:
                return candidate

    def _mosquitto_conf(self, port: int, tls_port: int) -> str:
        tls_dir = self.mqtt_dir / "tls"
        lines = [
            "# Generated by civic services; see common/broker.py for why each limit is set.",
            # One set of accounts and one ACL for every listener. Not per_listener_settings:
            # with it, Mosquitto 2.0 denies every message to a persistent session restored
            # after a restart until its client reconnects (the session has no listener yet),
            # which would lose telemetry queued for ingest across a broker restart.
            "allow_anonymous false",
            f"password_file {self.mqtt_dir}/broker.passwd",
            f"acl_file {self.mqtt_dir}/acl",
            # Persistent sessions survive a broker restart: queued QoS 1 telemetry for an
            # offline ingestor is written to disk (and at every clean shutdown).
            "persistence true",
            f"persistence_location {self.mqtt_dir}/",
            "autosave_interval 10",
            *self.limits.lines(),
            "set_tcp_nodelay true",
            f"pid_file {self._mqtt_pid_file}",
            f"log_dest file {self.mqtt_dir}/mosquitto.log",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "",
            "# The platform's own services: plain MQTT, reachable from this machine only.",
            f"listener {port} 127.0.0.1",
            f"max_connections {self.limits.max_connections}",
            "",
            "# Devices: TLS with the project's CA, and the username as client id so one device",
            "# cannot take over another's session.",
            f"listener {tls_port} {self.tls_bind}",
            "use_username_as_clientid true",
            f"cafile {tls_dir}/ca.crt",
            f"certfile {tls_dir}/server.crt",
            f"keyfile {tls_dir}/server.key",
            "tls_version tlsv1.2",
            f"max_connections {self.limits.max_connections}",
        ]
        if _is_root():
            # Otherwise it drops to the 'mosquitto' user, who cannot write our data dir.
            lines.insert(1, "user root")
        return "\n".join(lines) + "\n"

    def stop_mosquitto(self) -> None:
        pid = self._mosquitto_pid()
        if pid is None:
            return
        log.info("stopping Mosquitto (pid %d)", pid)
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + START_TIMEOUT_S
        while self._mosquitto_pid() is not None and time.monotonic() < deadline:
            time.sleep(0.05)

    def start_mosquitto(self) -> None:
        state = self.load_state()
        state.mqtt_port, state.mqtt_tls_port = self._mosquitto_up(
            state.mqtt_port, state.mqtt_tls_port
        )
        self._save_state(state)


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read, replacing it atomically."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    tmp.replace(path)


def parse_mqtt_url(url: str) -> tuple[str, int]:
    """Host and port of ``mqtt://host:port`` (plain) or ``mqtts://host:port`` (TLS)."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "tcp", "mqtts", "ssl", ""):
        raise ServicesError(f"unsupported MQTT URL scheme {parts.scheme!r} (use mqtt://host:port)")
    default = 8883 if parts.scheme in ("mqtts", "ssl") else 1883
    return parts.hostname or "127.0.0.1", parts.port or default
